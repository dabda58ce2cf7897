"""A fleet run as JUnit XML: one test case per host of the plan, as CI systems (Jenkins, GitLab) and AWX users read it.

    <testsuites name tests failures errors skipped time>
      <testsuite name="badsum fleet PHASE[ --check]" tests failures errors skipped time timestamp hostname>
        <properties> run_id, phase, check_mode, run_dir </properties>
        <testcase classname="badsum.fleet.PHASE[.check]" name="HOST" time="SECONDS">
          <error|failure type message>details</...>      only where the host fails the run
          <system-out>status, risk before and after, action, reason, changes</system-out>

A host fails its test case exactly where it makes `badsum fleet` exit
non-zero: an error where the run could not do its job on it (unreachable, not
reached, an unreadable record), a failure where it did and the outcome is bad
(its call failed; an audit found it exposed; a remediation left it exposed).
A check-mode run is marked in the suite's name, its properties and each test
case's class name; an exposed host that check mode would remediate passes.

Host names and reasons are untrusted text (an interface name can be any
bytes): every string goes through badsum.host.shared.metrics.printable, so the
document is well-formed XML 1.0 whatever they hold.
"""

from __future__ import annotations

import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping

from badsum.host.shared.metrics import printable

MAX_MESSAGE = 1000  # the message attribute (one line in a CI's list); the element's text has it all
MAX_CHANGES = 200


def verdict(plan: Mapping, row: Mapping) -> tuple[str, str, str] | None:
    """(error|failure, type, message) for a host that fails the run; None for one that passes."""
    status, reason = row["status"], row["reason"]
    if status == "not reached":
        return "error", "not-reached", f"not reached: {reason}"
    if status == "unusable":
        return "error", "unusable-record", reason
    if status != "ok":
        unreachable = reason.startswith("unreachable")
        return ("error", "unreachable", reason) if unreachable else ("failure", "failed", reason)
    if plan["playbook"] == "remediate" and row["risk_after"] == "exposed":
        return "failure", "still-exposed", f"still exposed: {reason}"
    if plan["playbook"] == "audit" and row["risk"] == "exposed":
        return "failure", "exposed", f"exposed: {reason}"
    return None


def _details(row: Mapping, record: Mapping | None) -> str:
    lines = [f"{k}: {row[k]}" for k in ("status", "risk", "risk_after", "kernel", "action", "reason") if row[k] != ""]
    changes = (record or {}).get("changes") or []
    lines += [f"change: {c}" for c in changes[:MAX_CHANGES]]
    if len(changes) > MAX_CHANGES:
        lines.append(f"... and {len(changes) - MAX_CHANGES} more changes (hosts/<host>.json has them all)")
    return "\n".join(lines) + "\n"


def xml(plan: Mapping, rows: list[dict], records: Mapping[str, dict | None], now: float) -> bytes:
    """The document; `rows` are the report's, one per host of the plan, in its order."""
    check = bool(plan.get("check_mode"))
    phase = plan["playbook"]
    suite_name = f"badsum fleet {phase}{' --check' if check else ''}"
    classname = f"badsum.fleet.{phase}{'.check' if check else ''}"
    cases, counts, total = [], {"failure": 0, "error": 0}, 0.0
    for host, row in zip(plan["hosts"], rows, strict=True):
        record = records.get(host)
        seconds = float((record or {}).get("seconds") or 0.0)
        total += seconds
        case = ET.Element("testcase", classname=classname, name=row["host"], time=f"{seconds:.3f}")
        found = verdict(plan, row)
        if found:
            tag, kind, message = found
            counts[tag] += 1
            text = printable(message)
            ET.SubElement(case, tag, type=kind, message=text[:MAX_MESSAGE]).text = text
        ET.SubElement(case, "system-out").text = printable(_details(row, record))
        cases.append(case)
    attrs = {
        "tests": str(len(rows)),
        "failures": str(counts["failure"]),
        "errors": str(counts["error"]),
        "skipped": "0",
        "time": f"{total:.3f}",
    }
    root = ET.Element("testsuites", name=suite_name, **attrs)
    suite = ET.SubElement(
        root,
        "testsuite",
        name=suite_name,
        **attrs,
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)),
        hostname=printable(socket.gethostname()),
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("run_id", plan["run_id"]),
        ("phase", phase),
        ("check_mode", str(check).lower()),
        ("run_dir", plan.get("run_dir", "")),
    ):
        ET.SubElement(properties, "property", name=name, value=printable(value))
    suite.extend(cases)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
