"""A fleet run's outcome: one record per host, then the table, CSV, JSON, Markdown and an HTML page.

The fleet playbooks write results/fleet/<run>/hosts/<host>.json as each host
finishes (plan.json first, with the hosts the run targeted), so a run that
stopped half way - a failed batch - still has its report: a host without a
record is shown as `not reached`. Beside the pages, what operators' tools
read: junit.xml (badsum.fleet.junit), metrics/<host>.prom and fleet.prom
(badsum.fleet.textfiles) and the counts AWX shows (badsum.fleet.stats).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections import Counter
from pathlib import Path

import jinja2

from badsum.files import atomic_write
from badsum.fleet import junit, stats, textfiles
from badsum.host.shared import metrics
from badsum.version import version

TEMPLATES = Path(__file__).parent / "templates"
# The audit's classes, worst first: the host kit's list (its textfile has a gauge for each).
RISKS = metrics.RISKS
COLUMNS = (
    "host",
    "status",
    "risk",
    "risk_after",
    "vxlan_risk",
    "vxlan_risk_after",
    "kernel",
    "vulnerable",
    "container_veths",
    "rx_on",
    "runtimes",
    "action",
    "reason",
)


def _audit_row(audit: dict | None) -> dict:
    if not audit:
        return {
            "risk": "",
            "vxlan_risk": "",
            "kernel": "",
            "vulnerable": "",
            "container_veths": "",
            "rx_on": "",
            "runtimes": "",
        }
    probe = audit.get("probe") or {}
    how = f"probe: {probe['verdict']} ({probe['kind']})" if probe.get("verdict") else audit.get("decided_by", "")
    return {
        "risk": audit.get("risk", ""),
        "vxlan_risk": (audit.get("vxlan") or {}).get("risk", ""),
        "kernel": f"{audit['kernel']['release']} ({audit['kernel']['status']})",
        "vulnerable": f"{audit.get('vulnerable', '')} - {how}",
        "container_veths": audit.get("container_veths", ""),
        "rx_on": audit.get("container_veths_rx_on", ""),
        "runtimes": " ".join(sorted(audit.get("runtimes", {}))) or "-",
    }


def row(host: str, record: dict | None) -> dict:
    """One host's line: its risk before, after (remediation, rollback), what was done, and why."""
    if record is None:
        return {
            **dict.fromkeys(COLUMNS, ""),
            "host": metrics.printable(host),
            "status": "not reached",
            "reason": "no record: unreachable, or in a batch the rollout never started",
        }
    before = _audit_row(record.get("audit"))
    after = record.get("after") or {}
    line = {
        "status": record.get("status", ""),
        **before,
        "risk_after": after.get("risk", ""),
        "vxlan_risk_after": (after.get("vxlan") or {}).get("risk", ""),
        "action": record.get("action", ""),
        "reason": record.get("error") or after.get("reason") or (record.get("audit") or {}).get("reason", ""),
    }
    # What the host said is untrusted text (interface names are bytes): shown escaped, never a crash.
    return {k: metrics.printable(v) if isinstance(v, str) else v for k, v in {"host": host, **line}.items()}


def read(run_dir: Path) -> tuple[dict, dict[str, dict]]:
    """The plan, and each host's record (an unreadable one says so)."""
    plan = json.loads((run_dir / "plan.json").read_text())
    records = {}
    for path in sorted((run_dir / "hosts").glob("*.json")):
        try:
            records[path.stem] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            records[path.stem] = {"status": "unusable", "error": f"unreadable record: {exc}"}
    return plan, records


def load(run_dir: Path) -> tuple[dict, list[dict]]:
    plan, records = read(run_dir)
    return plan, [row(host, records.get(host)) for host in plan["hosts"]]


def counts(rows: list[dict], key: str) -> dict[str, int]:
    return dict(Counter(r[key] or "-" for r in rows).most_common())


def table(plan: dict, rows: list[dict], limit: int = 40) -> str:
    """The terminal's table: one host per line, the first `limit` worst first, then the totals."""
    order = {r: i for i, r in enumerate(("not reached", "failed", "unusable"))}
    risk_order = {r: i for i, r in enumerate(RISKS)}
    shown = sorted(rows, key=lambda r: (order.get(r["status"], 9), risk_order.get(r["risk_after"] or r["risk"], 9)))
    cols = ("host", "status", "risk", "risk_after", "vxlan_risk", "container_veths", "rx_on", "runtimes", "action")
    width = {c: max([len(c), *(len(str(r[c])) for r in shown[:limit])]) for c in cols}
    lines = ["  ".join(c.ljust(width[c]) for c in cols)]
    lines += ["  ".join(str(r[c]).ljust(width[c]) for c in cols) for r in shown[:limit]]
    if len(shown) > limit:
        lines.append(f"... and {len(shown) - limit} more hosts (fleet.csv has every one)")
    lines.append(f"{plan['playbook']} {plan['run_id']}: {len(rows)} hosts; status {counts(rows, 'status')}")
    lines.append(f"vxlan risk before: {counts(rows, 'vxlan_risk')}")
    if plan["playbook"] != "audit":
        lines.append(f"vxlan risk after:  {counts(rows, 'vxlan_risk_after')}")
    lines.append(f"risk before: {counts(rows, 'risk')}")
    if plan["playbook"] != "audit":
        lines.append(f"risk after:  {counts(rows, 'risk_after')}")
    return "\n".join(lines)


def problems(plan: dict, rows: list[dict]) -> list[str]:
    """Why the run is a failure: a host that failed or was not reached, or stays exposed after remediation."""
    found = [f"{r['host']}: {r['status']} - {r['reason']}" for r in rows if r["status"] != "ok"]
    if plan["playbook"] == "remediate":
        found += [f"{r['host']}: still exposed - {r['reason']}" for r in rows if r["risk_after"] == "exposed"]
        # Only where the rollout was to act on it: badsum_fleet_vxlan_remediation (never: audit only; latent too).
        acted = metrics.VXLAN_REMEDIATION.get(
            str(plan.get("settings", {}).get("badsum_fleet_vxlan_remediation", "exposed")), ()
        )
        found += [
            f"{r['host']}: still exposed to the VXLAN hazard"
            for r in rows
            if r["vxlan_risk_after"] and r["vxlan_risk_after"] in acted
        ]
    return found


def write(run_dir: Path) -> dict:
    plan, records = read(run_dir)
    rows = [row(host, records.get(host)) for host in plan["hosts"]]
    now = time.time()
    files = textfiles.write(run_dir, plan, records, now)
    atomic_write(run_dir / "junit.xml", junit.xml(plan, rows, records, now))
    files["junit"] = str(run_dir / "junit.xml")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(run_dir / "fleet.csv", buf.getvalue())
    summary = {
        "run_id": plan["run_id"],
        "playbook": plan["playbook"],
        "badsum_version": plan.get("badsum_version") or version(),
        "hosts": len(rows),
        "status": counts(rows, "status"),
        "risk": counts(rows, "risk"),
        "risk_after": counts(rows, "risk_after"),
        "problems": problems(plan, rows),
        "stats": stats.data(plan, records),
        "files": files,
        "rows": rows,
    }
    atomic_write(run_dir / "fleet.json", json.dumps(summary, indent=1))
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html.j2"]),
        undefined=jinja2.StrictUndefined,
    )
    context = {
        **summary,
        "columns": COLUMNS,
        "built": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "settings": plan.get("settings", {}),
        "canary": plan.get("canary", ""),
    }
    atomic_write(run_dir / "report.html", env.get_template("fleet.html.j2").render(context))
    md = ["# badsum fleet " + plan["playbook"] + " " + plan["run_id"], "", f"badsum {summary['badsum_version']}", ""]
    md += ["```", table(plan, rows, 200), "```"]
    md += ["", "## Problems", ""] + [f"- {p}" for p in summary["problems"]] if summary["problems"] else []
    atomic_write(run_dir / "report.md", "\n".join(md) + "\n")
    return {
        "table": table(plan, rows),
        "problems": summary["problems"],
        "run_dir": str(run_dir),
        "stats": summary["stats"],
        "files": files,
    }
