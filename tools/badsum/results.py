"""Per-cell result files: built from a cell's raw measurements, read back for tables.

Layout of a run:

    results/<run-id>/raw/<topology>-<condition>/   what Ansible collected from the hosts
    results/<run-id>/<topology>-<condition>.json   one result per cell (this module)
    results/latest -> <run-id>
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from badsum import analyzer, verdict

SCHEMA = 1
TOPOLOGIES = ("bare", "mesos", "kubernetes", "docker-ipv6", "docker-nat")
CONDITIONS = ("vulnerable", "workaround", "patched")
MAX_EVENTS = 64


class ResultError(ValueError):
    """A result or raw file that cannot be used; the message names the file and field."""


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultError(f"{path}: missing") from None
    except json.JSONDecodeError as exc:
        raise ResultError(f"{path}: not valid JSON ({exc})") from None


def _field(data: dict, key: str, path: Path) -> Any:
    if key not in data:
        raise ResultError(f"{path}: field {key!r} is missing")
    return data[key]


def counter_deltas(before: dict, after: dict, match: str = "CsumErrors") -> dict[str, dict[str, int]]:
    deltas: dict[str, dict[str, int]] = {}
    for ns, counters in after.items():
        base = before.get(ns, {})
        deltas[ns] = {
            name: int(value) - int(base.get(name, 0)) for name, value in counters.items() if match in name
        }
    return deltas


def build_cell_result(raw: Path, min_corrupted: int = verdict.DEFAULT_MIN_CORRUPTED) -> dict:
    """Everything the verdict and the report need, from one cell's raw directory."""
    meta = _load_json(raw / "meta.json")
    client = _load_json(raw / "client.json")
    recv = _load_json(raw / "recv.json")
    corruption = _load_json(raw / "corruption.json")
    before = _load_json(raw / "counters_before.json")
    after = _load_json(raw / "counters_after.json")
    condition = _load_json(raw / "condition.json") if (raw / "condition.json").exists() else {}
    capture = _load_json(raw / "capture.json") if (raw / "capture.json").exists() else None
    sent = (raw / "sent.bin").read_bytes()
    received = (raw / "recv.bin").read_bytes() if (raw / "recv.bin").exists() else b""

    stats = _field(corruption, "stats", raw / "corruption.json")
    corrupted = stats.get("corrupted_packets")
    if corrupted is None and capture:
        # netem keeps no count: the bad checksums seen at host B's NIC are the count.
        at_b = [c["incorrect"] for name, c in capture.items() if name.startswith("host-b-")]
        corrupted = at_b[0] if at_b else None
    window_start = _field(corruption, "window_start", raw / "corruption.json")
    window_end = _field(corruption, "window_end", raw / "corruption.json")

    stream = analyzer.analyze_stream(
        sent,
        received,
        _field(client, "messages", raw / "client.json"),
        _field(recv, "chunks", raw / "recv.json"),
    )
    csum = counter_deltas(before, after)
    csum_total = sum(sum(c.values()) for c in csum.values())
    conntrack = {
        ns: d.get("ConntrackInvalid", 0)
        for ns, d in counter_deltas(before, after, "Conntrack").items()
        if "ConntrackInvalid" in after.get(ns, {})
    }
    counts = {s: stream.count(s) for s in ("intact", "corrupt", "missing")}
    offsets = {int(m["seq"]): int(m["offset"]) for m in client["messages"]}
    held = analyzer.held_messages(stream.messages, window_end)
    decided, reason = verdict.decide(
        verdict.Evidence(counts["corrupt"], counts["missing"], corrupted, csum_total), min_corrupted
    )
    if client.get("error"):
        reason += f" (client: {client['error']})"
    return {
        "schema": SCHEMA,
        **{k: meta[k] for k in meta},
        "corrupted_packets": corrupted,
        "corruption": {
            "backend": corruption.get("backend"),
            "pattern": corruption.get("pattern"),
            "rate": corruption.get("rate"),
            "iface": corruption.get("iface"),
            "hook": corruption.get("hook"),
            "window_start": window_start,
            "window_end": window_end,
            "matched_packets": stats.get("matched_packets"),
            "counted_by": stats.get("counted_by"),
            "events": stats.get("events", [])[:MAX_EVENTS],
        },
        "emulator": condition.get("emulator"),
        "capture": _capture_summary(capture),
        "csum_errors": csum,
        "csum_errors_total": csum_total,
        "conntrack_invalid": conntrack,
        "messages": {"sent": len(stream.messages), **counts},
        "corrupt_messages": [
            {
                "seq": m.seq,
                "stream_offset": offsets.get(m.seq, 0),
                "bit_diffs": [list(d) for d in m.bit_diffs],
            }
            for m in stream.messages
            if m.status == "corrupt"
        ],
        "timeline": [
            {"seq": m.seq, "sent": m.sent, "arrived": m.arrived, "status": m.status} for m in stream.messages
        ],
        "held_messages": held,
        "delivered_after_corruption_stopped": counts["missing"] == 0 and bool(stream.messages),
        "stream": {
            "sent_bytes": stream.sent_bytes,
            "received_bytes": stream.received_bytes,
            "differing_bytes": stream.differing_bytes,
            "identical": sent == received,
        },
        "framing": {
            "frames": stream.frames,
            "digest_ok": stream.frames_digest_ok,
            "digest_bad": stream.frames_digest_bad,
            "skipped_bytes": stream.skipped_bytes,
        },
        "client": {k: client.get(k) for k in ("connected", "sent_done", "drained", "drained_at", "error")},
        "server": {k: recv.get(k) for k in ("command", "exit_code", "timed_out", "ended")},
        "verdict": decided,
        "verdict_reason": reason,
        "cell_finished": time.time(),
    }


def _capture_summary(capture: dict | None) -> dict | None:
    """Pcap files, bad-checksum counts per capture point, and tcpdump's own lines for a few."""
    if not capture:
        return None
    return {
        "files": [c["file"] for c in capture.values()],
        "incorrect_by_point": {name: c["incorrect"] for name, c in capture.items()},
        "incorrect": [line for c in capture.values() for line in c["samples"]][:8],
    }


def error_result(meta: dict, reason: str) -> dict:
    """A cell whose set-up or run failed: reported, never silently dropped."""
    return {
        "schema": SCHEMA,
        **meta,
        "verdict": verdict.ERROR,
        "verdict_reason": reason,
        "corrupted_packets": None,
        "messages": None,
    }


def write_result(result: dict, run_dir: Path) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / f"{result['topology']}-{result['condition']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1, sort_keys=False))
    tmp.rename(path)
    latest = run_dir.parent / "latest"
    if latest.is_symlink() or not latest.exists():
        if latest.is_symlink():
            latest.unlink()
        os.symlink(run_dir.name, latest)
    return path


def load_run(run_dir: Path) -> tuple[list[dict], list[str]]:
    """All cell results of a run (files named <topology>-<condition>.json), and one error line
    per file that could not be used."""
    cells, problems = [], []
    for path in sorted(run_dir.glob("*-*.json")):
        try:
            data = _load_json(path)
            for key in ("topology", "condition", "verdict"):
                _field(data, key, path)
            cells.append(data)
        except ResultError as exc:
            problems.append(str(exc))
    return cells, problems
