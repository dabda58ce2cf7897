"""A run's record, run.json: what was planned, on which hosts, started how, by which badsum.

experiment.yml hands the plan and the hosts' facts to `badsum run-info` (an
internal command), which writes it here; the workshop's batched runs write
the same record for each seat (badsum.workshop.runs).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from badsum.analysis import results
from badsum.version import version


def controller_command_line() -> list[str]:
    """The ansible-playbook (or badsum) command that started this run: the nearest such ancestor."""
    pid = os.getppid()
    while pid > 1:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        words = [w.decode(errors="replace") for w in argv if w]
        if any(Path(w).name in ("ansible-playbook", "badsum") for w in words[:2]):
            return words
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return []


def host_record(facts: dict | None, groups: list[str]) -> dict:
    facts = facts or {}
    state = facts.get("state") or {}
    versions = facts.get("versions", {})
    return {
        "groups": groups,
        "kernel": facts.get("kernel", "unknown"),
        "distribution": facts.get("distribution", "unknown"),
        "versions": [f"{k}: {v}" for k, v in versions.items()],
        "service_manager": facts.get("service_manager"),
        "state_before": state,
    }


def write_run_info(run_dir: Path, info: dict) -> Path:
    """run.json from what experiment.yml knows (plan, host names, facts, groups); latest points at the run."""
    names = info.pop("host_names", [])
    records = zip(info.pop("host_facts", []), info.pop("host_groups", []), strict=True)
    info["hosts"] = {name: host_record(*rec) for name, rec in zip(names, records, strict=True)}
    info["command_line"] = controller_command_line()
    info["started"] = time.time()
    info["badsum_version"] = version()
    results.atomic_write(run_dir / "run.json", json.dumps(info, indent=1))
    (run_dir / "raw").mkdir(exist_ok=True)
    results.point_latest(run_dir)
    return run_dir / "run.json"
