"""A fleet run's counts as AWX job artifacts: the data the report hands to ansible.builtin.set_stats.

AWX shows a job's set_stats data as the job's artifacts and passes them on,
as extra variables, to the next job of a workflow. So every name is a
badsum_fleet_* output that badsum.kit.fleet_plan accepts without taking it
for a setting (badsum.fleet.settings.OUTPUTS), and none is a setting's name
(an audit's run id must not become the next job's).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from badsum.fleet.records import state
from badsum.host.shared.metrics import RISKS, UNKNOWN, VXLAN_RISKS

P = "badsum_fleet_"
RUN = P + "run"  # which run the counts are of: run_id, phase, check_mode, run_dir
# Hosts targeted; whose call succeeded; failed (unreachable ones included, as a batch counts them) and of
# those unreachable; with no record (a batch the rollout never started); changed (check mode: would change).
COUNTS = ("hosts", "ok", "failed", "unreachable", "not_reached", "changed")


def risk_key(klass: str) -> str:
    """badsum_fleet_risk_<class>: how many hosts the run left in that class (underscores: Jinja can read them)."""
    return f"{P}risk_{klass.replace('-', '_')}"


def vxlan_risk_key(klass: str) -> str:
    """badsum_fleet_vxlan_risk_<class>: the same count for the second hazard (badsum.host.fleet.vxlan)."""
    return f"{P}vxlan_risk_{klass.replace('-', '_')}"


KEYS = (
    RUN,
    *(P + c for c in COUNTS),
    *(risk_key(c) for c in (*RISKS, UNKNOWN)),
    *(vxlan_risk_key(c) for c in (*VXLAN_RISKS, UNKNOWN)),
)


def data(plan: Mapping, records: Mapping[str, dict | None]) -> dict:
    """The artifacts: every count present (0 included), so a workflow can rely on each name."""
    counts: Counter[str] = Counter(
        {P + c: 0 for c in COUNTS}
        | {risk_key(c): 0 for c in (*RISKS, UNKNOWN)}
        | {vxlan_risk_key(c): 0 for c in (*VXLAN_RISKS, UNKNOWN)}
    )
    for host in plan["hosts"]:
        rec = records.get(host)
        counts[P + "hosts"] += 1
        audit = state(rec) or {}
        counts[risk_key(audit["risk"] if audit.get("risk") in RISKS else UNKNOWN)] += 1
        hazard = audit.get("vxlan") if isinstance(audit.get("vxlan"), dict) else {}
        counts[vxlan_risk_key(hazard["risk"] if hazard.get("risk") in VXLAN_RISKS else UNKNOWN)] += 1
        if rec is None:
            counts[P + "not_reached"] += 1
            continue
        if rec.get("status") == "ok":
            counts[P + "ok"] += 1
        else:
            counts[P + "failed"] += 1
            counts[P + "unreachable"] += str(rec.get("error", "")).startswith("unreachable:")
        counts[P + "changed"] += bool(rec.get("changed"))
    run = {
        "run_id": plan["run_id"],
        "phase": plan["playbook"],
        "check_mode": bool(plan.get("check_mode")),
        "run_dir": plan.get("run_dir", ""),
    }
    return {RUN: run, **{k: counts[k] for k in KEYS[1:]}}
