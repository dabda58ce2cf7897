"""Per-cell result files: what a cell was, what was measured, and the verdict.

Layout of a run:

    results/<run-id>/run.json                      the run's record: settings, plan, hosts
    results/<run-id>/raw/<topology>-<condition>/   the cell's evidence, as the hosts returned it:
        cell.json                 what the cell was (from the plan, the topology, the condition)
        client.json  sent.bin     the client's record and the exact stream it sent
        serve.json                counters read before the server started
        recv.json    recv.bin     the server's record, counters after, and what nc printed
        corruption.json           what the injector did
        emulator.json             what the veth-bug emulator did (emulated conditions); for an
                                  overlay (vxlan-nat), host A's NAT of the outer flows and the
                                  2020 emulator's counts
        *.pcap                    packet captures (where asked; decoded in client.json and recv.json)
    results/<run-id>/<topology>-<condition>.json   one result per cell (this module)
    results/latest -> <run-id>

A cell can be judged again from its raw directory alone (`badsum analyze`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from badsum import topologies
from badsum.analysis import analyzer, verdict
from badsum.files import atomic_write

SCHEMA = 2
MAX_EVENTS = 64


class ResultError(ValueError):
    """A result or evidence file that cannot be used; the message names the file and field."""


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultError(f"{path}: not valid JSON ({exc})") from None


def field(data: Any, key: str, path: Path) -> Any:
    if not isinstance(data, dict):
        raise ResultError(f"{path}: not a JSON object")
    if key not in data:
        raise ResultError(f"{path}: field {key!r} is missing")
    return data[key]


# -- what a cell was ---------------------------------------------------------------------


def cell_meta(run: dict, cell_name: str, topology: dict | None, condition: dict | None) -> dict:
    """The description every result carries, from the run's record and what the cell set up."""
    plan = run["plan"]
    cell = next((c for c in plan["cells"] if c["name"] == cell_name), None)
    if cell is None:
        raise ResultError(f"cell {cell_name!r} is not in the run's plan ({plan['run_id']})")
    pair = plan["servers"][cell["server"]]
    s = plan["settings"]
    p = "badsum_experiment_"
    server_info = run.get("hosts", {}).get(cell["server"], {})
    record = topologies.catalogue().get(cell["topology"])
    bug = record.bug if record else "veth"
    return {
        "run_id": plan["run_id"],
        "cell": cell_name,
        "topology": cell["topology"],
        "condition": cell["condition"],
        "bug": bug,
        "incident": topologies.INCIDENTS[bug],
        "condition_kind": (condition or {}).get("kind", "unknown"),
        "kernel": (condition or {}).get("kernel") or server_info.get("kernel", "unknown"),
        "kernel_has_fix": (condition or {}).get("kernel_has_fix"),
        "backend": s[p + "backend"],
        "pattern": s[p + "pattern"],
        "rate": s[p + "rate"],
        "client_host": pair["client"],
        "server_host": cell["server"],
        "corruptor_host": pair["corruptor"],
        "corruption_iface": pair["corruption_iface"],
        "corruption_hook": pair["corruption_hook"],
        "port": s[p + "port"],
        "embedded_lab": bool(run.get("embedded_lab")),
        "conntrack_checksum": s[p + "conntrack_checksum"],
        "traffic": {"count": s[p + "count"], "interval": s[p + "interval"], "size": s[p + "size"]},
        # Runs before the evidence window had a fixed one (target 0).
        "window": plan.get("window")
        or {
            "mode": "fixed",
            "start_in": s[p + "corruption_start_in"],
            "duration": s[p + "corruption_duration"],
            "target": 0,
        },
        "min_corrupted": s[p + "min_corrupted"],
        "path": (topology or {}).get("path"),
        "namespaces": (topology or {}).get("namespaces"),
    }


# -- what was measured ---------------------------------------------------------------------


def counter_deltas(before: dict, after: dict, match: str) -> dict[str, dict[str, int]]:
    """Deltas of the counters whose name contains `match`, per namespace read both times."""
    deltas: dict[str, dict[str, int]] = {}
    for ns, counters in after.items():
        if ns not in before:
            continue
        deltas[ns] = {
            name: int(value) - int(before[ns].get(name, 0)) for name, value in counters.items() if match in name
        }
    return deltas


def build_cell_result(raw: Path) -> dict:
    """Everything the verdict and the report need, from one cell's raw directory."""
    meta = load_json(raw / "cell.json")
    client = load_json(raw / "client.json")
    serve = load_json(raw / "serve.json")
    recv = load_json(raw / "recv.json")
    corruption = load_json(raw / "corruption.json")
    emulator = load_json(raw / "emulator.json") if (raw / "emulator.json").exists() else None
    sent = (raw / "sent.bin").read_bytes() if (raw / "sent.bin").exists() else None
    if sent is None:
        raise ResultError(f"{raw / 'sent.bin'}: missing")
    received = (raw / "recv.bin").read_bytes() if (raw / "recv.bin").exists() else b""
    # Captures ran with the traffic: host A's with the client, host B's and the container's with the server.
    captures = {**(client.get("captures") or {}), **(recv.get("captures") or {})} or None

    before = field(serve, "counters", raw / "serve.json")
    after = field(recv, "counters", raw / "recv.json")
    # Every namespace on the path must have been read twice: a missing reading
    # is never a zero.
    for ns in meta.get("namespaces") or {"host": "self"}:
        for name, counters in (("serve.json", before), ("recv.json", after)):
            if ns not in counters:
                raise ResultError(f"{raw / name}: no counters for namespace {ns!r}")

    stats = field(corruption, "stats", raw / "corruption.json")
    corrupted = stats.get("corrupted_packets")
    if corrupted is None and captures:
        # netem keeps no count: the bad checksums seen at host B's NIC are the count.
        at_b = [c["incorrect"] for name, c in captures.items() if name.startswith("host-b-")]
        corrupted = at_b[0] if at_b else None
    window_start = field(corruption, "window_start", raw / "corruption.json")
    window_end = field(corruption, "window_end", raw / "corruption.json")
    closed_by = corruption.get("window_closed_by")

    messages = field(client, "messages", raw / "client.json")
    stream = analyzer.analyze_stream(sent, received, messages, field(recv, "chunks", raw / "recv.json"))
    csum = counter_deltas(before, after, "CsumErrors")
    csum_total = sum(sum(c.values()) for c in csum.values())
    conntrack = {
        ns: d["ConntrackInvalid"]
        for ns, d in counter_deltas(before, after, "Conntrack").items()
        if "ConntrackInvalid" in d
    }
    counts = {s: stream.count(s) for s in ("intact", "corrupt", "missing")}
    offsets = {int(m["seq"]): int(m["offset"]) for m in messages}
    held = analyzer.held_messages(stream.messages, window_end)
    overlay = None
    if meta.get("bug") == "vxlan-nat":
        overlay = overlay_evidence(client, captures, emulator, csum)
        decided, reason = verdict.decide_dropped(
            verdict.OverlayEvidence(
                counts["corrupt"],
                counts["missing"],
                overlay["connect_s"],
                overlay["udp_csum_errors"],
                overlay["bad_outer"],
                overlay["natted_flows"],
            )
        )
    else:
        decided, reason = verdict.decide(
            verdict.Evidence(counts["corrupt"], counts["missing"], corrupted, csum_total, closed_by),
            meta["min_corrupted"],
        )
    if client.get("error"):
        reason += f" (client: {client['error']})"
    return {
        "schema": SCHEMA,
        **meta,
        "corrupted_packets": corrupted,
        "corruption": {
            "backend": corruption.get("backend"),
            "pattern": corruption.get("pattern"),
            "rate": corruption.get("rate"),
            "iface": corruption.get("iface"),
            "hook": corruption.get("hook"),
            "window_start": window_start,
            "window_end": window_end,
            "window_closed_by": closed_by,
            "target": stats.get("target", corruption.get("target")),
            "matched_packets": stats.get("matched_packets"),
            "counted_by": stats.get("counted_by"),
            "events": stats.get("events", [])[:MAX_EVENTS],
        },
        "emulator": emulator,
        "overlay": overlay,
        "connect_s": client.get("connect_s"),
        "capture": _capture_summary(captures),
        "csum_errors": csum,
        "csum_errors_total": csum_total,
        "conntrack_invalid": conntrack,
        "messages": {"sent": len(stream.messages), **counts},
        "corrupt_messages": [
            {"seq": m.seq, "stream_offset": offsets.get(m.seq, 0), "bit_diffs": [list(d) for d in m.bit_diffs]}
            for m in stream.messages
            if m.status == "corrupt"
        ],
        "timeline": [{"seq": m.seq, "sent": m.sent, "arrived": m.arrived, "status": m.status} for m in stream.messages],
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
        "server": {k: recv.get(k) for k in ("command", "exit_code", "timed_out", "ended", "stderr")},
        "verdict": decided,
        "verdict_reason": reason,
        "cell_finished": time.time(),
    }


def overlay_evidence(client: dict, captures: dict | None, nat: dict | None, csum: dict) -> dict:
    """The 2020 verdict's inputs, each None where it was not measured (never a zero)."""
    tunnel = next((c["tunnel"] for c in (captures or {}).values() if "tunnel" in c), None)
    udp = [d["UdpInCsumErrors"] for d in csum.values() if "UdpInCsumErrors" in d]
    return {
        "connect_s": client.get("connect_s"),
        "udp_csum_errors": sum(udp) if udp else None,
        "bad_outer": tunnel["bad_udp_cksum"] if tunnel else None,
        "no_cksum_outer": tunnel["no_cksum"] if tunnel else None,
        "outer_packets": tunnel["packets"] if tunnel else None,
        "written": tunnel["written"] if tunnel else None,
        "samples": tunnel["samples"] if tunnel else [],
        "natted_flows": (nat or {}).get("outer_flows_natted"),
        "outer_flows": (nat or {}).get("outer_flows"),
        "natted_sample": (nat or {}).get("natted_sample", []),
    }


def _capture_summary(captures: dict | None) -> dict | None:
    """Pcap files, bad-checksum counts per capture point, and tcpdump's own lines for a few."""
    if not captures:
        return None
    return {
        "files": [c["file"] for c in captures.values()],
        "incorrect_by_point": {name: c["incorrect"] for name, c in captures.items()},
        "incorrect": [line for c in captures.values() for line in c["samples"]][:8],
    }


def error_result(meta: dict, reason: str) -> dict:
    """A cell whose set-up or run failed: reported with its cause, never silently dropped."""
    return {
        "schema": SCHEMA,
        **meta,
        "verdict": verdict.ERROR,
        "verdict_reason": reason,
        "corrupted_packets": None,
        "messages": None,
        "cell_finished": time.time(),
    }


def write_result(result: dict, run_dir: Path) -> Path:
    path = run_dir / f"{result['topology']}-{result['condition']}.json"
    atomic_write(path, json.dumps(result, indent=1))
    point_latest(run_dir)
    return path


def point_latest(run_dir: Path) -> None:
    latest = run_dir.parent / "latest"
    if latest.is_symlink() and os.readlink(latest) == run_dir.name:
        return
    if latest.exists() and not latest.is_symlink():
        return  # someone's own directory called latest: leave it alone
    tmp = run_dir.parent / f".latest.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.symlink(run_dir.name, tmp)
    tmp.rename(latest)


def load_run(run_dir: Path) -> tuple[list[dict], list[str]]:
    """All cell results of a run, and one line per file that could not be used."""
    cells, problems = [], []
    for path in sorted(run_dir.glob("*-*.json")):
        try:
            data = load_json(path)
            for key in ("topology", "condition", "verdict"):
                field(data, key, path)
            cells.append(data)
        except ResultError as exc:
            problems.append(str(exc))
    return cells, problems


def planned_cells(run_dir: Path) -> list[tuple[str, str]]:
    """The cells the run was asked for, in order (from run.json); [] when it has no record."""
    try:
        run = load_json(run_dir / "run.json")
        return [(c["topology"], c["condition"]) for c in run["plan"]["cells"]]
    except (ResultError, KeyError, TypeError):
        return []
