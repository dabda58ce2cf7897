"""A host's record of a fleet run, made from what its one host-kit call returned.

badsum.kit.run (with its `record` option) makes each host's record here, on
the controller, in that host's own worker as soon as its call (audit show,
remediate rollout, remediate rollback) returns, failed or unreachable alike:
no later step reads every host's variables back. The report
(badsum.fleet.report) reads nothing else.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path

from badsum.files import atomic_write
from badsum.fleet import PHASES
from badsum.version import version


def _dict(value: object) -> dict:
    """A mapping the call returned, or {} where it returned nothing (None, '', a failed call's absence)."""
    return dict(value) if isinstance(value, Mapping) and value else {}


def problem(result: Mapping, error: str) -> str:
    """Why the host failed ('' when it did not): unreachable, or the step's own message."""
    if result.get("unreachable"):
        return f"unreachable: {result.get('msg', '')}"
    return error or ""


def record(
    host: str, phase: str, result: Mapping | None, error: str = "", check_mode: bool = False, seconds: float = 0.0
) -> dict:
    """The record; `seconds`: how long the host's call took (JUnit's time)."""
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {', '.join(PHASES)} (got {phase!r})")
    result = _dict(result)
    why = problem(result, error)
    rec: dict = {"host": host, "phase": phase, "badsum_version": version()}  # which badsum wrote it
    if phase != "audit":
        rec["check_mode"] = check_mode
    rec |= {"status": "failed" if why else "ok", "error": why, "changed": bool(result.get("changed"))}
    # When the call ended (the metrics' timestamp), and the host's own textfile (badsum.host.shared.metrics), if any.
    rec |= {"finished_at": round(time.time(), 3), "seconds": round(seconds, 3)}
    rec["textfile"] = _dict(result.get("textfile"))
    if phase == "audit":
        rec |= {"action": "audited", "audit": result if "risk" in result else {}}
    elif phase == "remediate":
        rec |= {
            "action": result.get("action", "failed"),
            "changes": _dict(result.get("apply")).get("changes") or [],
            "verify": _dict(result.get("verify")),
            "audit": _dict(result.get("before")),
            "after": _dict(result.get("after")),
        }
    else:
        changes = result.get("changes") or []
        done = "would restore" if check_mode else "restored"
        rec |= {
            "action": result.get("msg") or f"{done} {len(changes)} changes",
            "changes": changes,
            "gone": result.get("gone") or [],
            "after": _dict(result.get("after")),
        }
    return rec


def save(run_dir: Path, records: dict[str, dict]) -> list[str]:
    """Each host's record as hosts/<host>.json (rewritten only when it changed); the hosts written."""
    written = []
    for host, record in records.items():
        if "/" in host or host.startswith("."):
            raise ValueError(f"a host name that cannot be a file name: {host!r}")
        path = run_dir / "hosts" / f"{host}.json"
        text = json.dumps(record, indent=1, default=str)
        if not path.exists() or path.read_text() != text:
            atomic_write(path, text)  # which makes hosts/ if need be
            written.append(host)
    return written


def state(record: Mapping | None) -> dict | None:
    """The audit that describes the host as the run left it; None when the run cannot tell.

    An audit's own; a remediation's or rollback's audit after (a host the
    rollout left alone has its audit there too); in check mode nothing
    changed, so a remediation's audit before. A call that failed half way has
    no audit after: its host is unknown.
    """
    if not record:
        return None
    if record.get("phase") == "audit":
        return _dict(record.get("audit")) or None
    if record.get("after"):
        return _dict(record["after"])
    if record.get("check_mode") and record.get("phase") == "remediate":
        return _dict(record.get("audit")) or None
    return None
