"""Synthetic runs for tests that need result files but no lab."""

from __future__ import annotations

import json
from pathlib import Path

from badsum import framing, results


def make_raw(tmp: Path, *, flip: bool = False, corrupted: int = 7, csum: int = 7) -> Path:
    raw = tmp / "raw" / "bare-patched"
    raw.mkdir(parents=True)
    stream, msgs = b"", []
    for i in range(4):
        frame = framing.encode(i, framing.payload_for(i, 100), 1)
        msgs.append({"seq": i, "offset": len(stream), "length": len(frame), "sent": 10.0 + i})
        stream += frame
    received = bytearray(stream)
    if flip:
        received[msgs[2]["offset"] + framing.HEADER_LEN + 3] ^= 0x80
    (raw / "sent.bin").write_bytes(stream)
    (raw / "recv.bin").write_bytes(bytes(received))
    files = {
        "meta.json": {
            "topology": "bare",
            "condition": "patched",
            "condition_kind": "real",
            "kernel": "6.18",
            "backend": "ebpf",
        },
        "client.json": {"messages": msgs, "error": None},
        "recv.json": {"chunks": [[11.0, len(stream) // 2], [16.0, len(stream)]]},
        "corruption.json": {
            "backend": "ebpf",
            "window_start": 11.5,
            "window_end": 14.0,
            "stats": {"corrupted_packets": corrupted, "events": []},
        },
        "counters_before.json": {"host": {"TcpInCsumErrors": 3, "ConntrackInvalid": 0}},
        "counters_after.json": {"host": {"TcpInCsumErrors": 3 + csum, "ConntrackInvalid": 0}},
    }
    for name, data in files.items():
        (raw / name).write_text(json.dumps(data))
    return raw


def make_run(tmp: Path) -> Path:
    run = tmp / "results" / "run1"
    for i, (topology, condition, flip) in enumerate(
        [("bare", "patched", False), ("mesos", "vulnerable", True), ("mesos", "patched", False)]
    ):
        raw = make_raw(tmp / f"raw{i}", flip=flip, csum=0 if flip else 7)
        meta = json.loads((raw / "meta.json").read_text())
        meta.update(topology=topology, condition=condition)
        (raw / "meta.json").write_text(json.dumps(meta))
        results.write_result(results.build_cell_result(raw), run)
    (run / "run.json").write_text(json.dumps({"hosts": {"host2": {"kernel": "6.18", "groups": ["servers"]}},
                                              "command_line": ["ansible-playbook", "reproduce.yml"],
                                              "inventory": ["inventories/local"]}))  # fmt: skip
    return run
