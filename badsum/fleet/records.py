"""A host's record of a fleet run, made from what its one host-kit call returned.

The playbooks register each host's call (audit show, remediate rollout,
remediate rollback) and, where it failed, the failing step's own message;
badsum.kit.fleet_record turns them into records here, for a whole batch in
one step on the controller (building them in a task per host cost a worker
per host). The report (badsum.fleet.report) reads nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping

from badsum.fleet import PHASES


def _dict(value: object) -> dict:
    """A mapping the call returned, or {} where it returned nothing (None, '', a failed call's absence)."""
    return dict(value) if isinstance(value, Mapping) and value else {}


def problem(result: Mapping, error: str) -> str:
    """Why the host failed ('' when it did not): unreachable, or the step's own message."""
    if result.get("unreachable"):
        return f"unreachable: {result.get('msg', '')}"
    return error or ""


def record(host: str, phase: str, result: Mapping | None, error: str = "", check_mode: bool = False) -> dict:
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {', '.join(PHASES)} (got {phase!r})")
    result = _dict(result)
    why = problem(result, error)
    rec: dict = {"host": host, "phase": phase}
    if phase != "audit":
        rec["check_mode"] = check_mode
    rec |= {"status": "failed" if why else "ok", "error": why}
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
