"""Synthetic runs for tests that need result files but no lab."""

from __future__ import annotations

import json
from pathlib import Path

from badsum.analysis import results
from badsum.host.shared import framing

SETTINGS = {
    "badsum_experiment_topologies": ["bare", "mesos"],
    "badsum_experiment_conditions": ["vulnerable", "patched"],
    "badsum_experiment_backend": "ebpf",
    "badsum_experiment_pattern": "random",
    "badsum_experiment_rate": 10.0,
    "badsum_experiment_port": 5001,
    "badsum_experiment_conntrack_checksum": "",
    "badsum_experiment_count": 4,
    "badsum_experiment_interval": 1.0,
    "badsum_experiment_size": 100,
    "badsum_experiment_corruption_window": "evidence",
    "badsum_experiment_corruption_start_in": 1.5,
    "badsum_experiment_corruption_duration": 2.5,
    "badsum_experiment_corruption_margin": 2,
    "badsum_experiment_min_corrupted": 3,
}
WINDOW = {"mode": "evidence", "start_in": 1.5, "duration": 2.5, "target": 5}


def run_record(run_dir: Path, cells: list[tuple[str, str]]) -> dict:
    return {
        "plan": {
            "run_id": run_dir.name,
            "run_dir": str(run_dir),
            "settings": SETTINGS,
            "window": WINDOW,
            "cells": [{"topology": t, "condition": c, "name": f"{t}-{c}", "server": "host2"} for t, c in cells],
            "servers": {
                "host2": {
                    "client": "host1",
                    "corruptor": "switch",
                    "corruption_iface": "p2",
                    "corruption_hook": "egress",
                    "cells": [],
                }
            },
        },
        "hosts": {"host2": {"kernel": "6.18", "groups": ["servers"], "state_before": {}}},
        "command_line": ["ansible-playbook", "reproduce.yml"],
        "inventory": ["inventories/local"],
        "embedded_lab": True,
    }


def make_raw(
    run_dir: Path,
    topology: str = "bare",
    condition: str = "patched",
    *,
    flip: bool = False,
    corrupted: int | None = 7,
    csum: int = 7,
) -> Path:
    """A cell's raw directory as the experiment leaves it: 4 messages, one bit flipped if asked."""
    raw = run_dir / "raw" / f"{topology}-{condition}"
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
    namespaces = {"host": "self"} if topology == "bare" else {"host": "self", "container": "/run/netns/x"}
    before = {ns: {"TcpInCsumErrors": 3, "ConntrackInvalid": 0} for ns in namespaces}
    after = {ns: {"TcpInCsumErrors": 3 + (csum if ns == "host" else 0), "ConntrackInvalid": 0} for ns in namespaces}
    record = run_record(run_dir, [(topology, condition)])
    meta = results.cell_meta(
        record,
        f"{topology}-{condition}",
        {"path": "test", "namespaces": namespaces},
        {"kind": "real", "kernel": "6.18", "kernel_has_fix": True},
    )
    files = {
        "cell.json": meta,
        "client.json": {"messages": msgs, "error": None},
        "serve.json": {"counters": before},
        "recv.json": {"chunks": [[11.0, len(stream) // 2], [16.0, len(stream)]], "counters": after},
        "corruption.json": {
            "backend": "ebpf",
            "window_start": 11.5,
            "window_end": 14.0,
            "window_closed_by": "evidence",
            "stats": {"corrupted_packets": corrupted, "target": 5, "events": []},
        },
    }
    for name, data in files.items():
        (raw / name).write_text(json.dumps(data))
    return raw


def make_run(tmp: Path) -> Path:
    """A judged run of three cells: bare/patched, mesos/vulnerable (corrupt), mesos/patched."""
    run = tmp / "results" / "run1"
    cells = [("bare", "patched", False), ("mesos", "vulnerable", True), ("mesos", "patched", False)]
    for topology, condition, flip in cells:
        raw = make_raw(run, topology, condition, flip=flip, csum=0 if flip else 7)
        results.write_result(results.build_cell_result(raw), run)
    (run / "run.json").write_text(json.dumps(run_record(run, [(t, c) for t, c, _ in cells])))
    return run
