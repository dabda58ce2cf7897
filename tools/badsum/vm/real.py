"""The real table: both incidents' cells measured on real kernels, beside the emulated table, cell by cell.

vulnerable and workaround are the unfixed kernel itself (a VM lab booting
6.1.192-badsum-unfixed, which lacks both incidents' fixes; workaround = rx
off on the container veths for 2016, tx-checksum-ip-generic off on host A's
vxlan device for 2020), patched is the fixed kernel (the same source with
the fixes). Which kernel measures which condition is the topology
catalogue's (Topology.real_with_fix), as the incident's verdict is
(Topology.expected). Each kernel's part is reproduce.yml, unchanged, on a VM
lab's inventory; the two runs' cells are then put together in one run
directory (its report compares it with an emulated run and marks every cell
where they differ).

    badsum reproduce-real [--compare RUN | --no-compare] [--backend ebpf|netem] [--topologies ...] [--json]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from badsum import ansible, paths, topologies
from badsum.analysis import incident, results
from badsum.analysis.summary import CONDITION_ORDER
from badsum.exitcodes import Exit
from badsum.version import version
from badsum.vm import kernel

# Every row of both incidents (2016, then 2020's vxlan-nat), in the table's order.
TOPOLOGIES = list(topologies.names())
LABS = {"unfixed": "vmru", "fixed": "vmrf"}
RUN_TIMEOUT = 3600  # a VM cell takes ~50 s under TCG: 12 cells, with room


def parts_of(names: list[str]) -> dict[str, list[str]]:
    """Which lab kernel measures which conditions for real (see kernel/README.md, "Real or emulated"):
    the catalogue's answer for each row, the same for every row of a run (one reproduce.yml per kernel)."""
    by_variant: dict[str, list[str]] = {}
    for condition in CONDITION_ORDER:
        wanted = {incident.real_with_fix(t, condition) for t in names}
        if len(wanted) != 1:
            raise ValueError(f"{condition}: these rows are real on different kernels ({', '.join(names)})")
        with_fix = wanted.pop()
        variant = next(v for v in kernel.VARIANTS if kernel.has_fix(v) == with_fix)
        by_variant.setdefault(variant, []).append(condition)
    return {v: by_variant[v] for v in kernel.VARIANTS if v in by_variant}


def _badsum(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """A `badsum lab` command in a process of its own: a VM lab's QEMUs outlive it in the lab's cgroups."""
    return subprocess.run(
        [sys.executable, "-m", "badsum", *args],
        cwd=paths.PROJECT,
        env=ansible.environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def measure(
    variant: str, conditions: list[str], out: Path, topologies: list[str], backend: str | None, extra_vars: dict
) -> dict:
    """One kernel's part: its VM lab up, reproduce.yml for its conditions, the lab down (also on failure)."""
    lab = LABS[variant]
    _badsum("lab", "down", "--lab", lab)
    with tempfile.TemporaryDirectory(prefix=f"badsum-{lab}-") as inventory:
        started = time.monotonic()
        up = _badsum(
            "lab", "up", "--provider", "qemu", "--kernel", variant, "--lab", lab, "--write-inventory", inventory
        )
        booted = time.monotonic() - started
        if up.returncode != 0:
            raise RuntimeError(f"the {variant} VM lab did not come up: {(up.stderr or up.stdout).strip()[-800:]}")
        try:
            extra = {
                **extra_vars,
                "badsum_experiment_topologies": topologies,
                "badsum_experiment_conditions": conditions,
                "badsum_experiment_results_dir": str(out / "parts"),
                "badsum_experiment_run_id": variant,
            }
            if backend:
                extra["badsum_experiment_backend"] = backend
            started = time.monotonic()
            log = out / "parts" / f"{variant}.log"
            rc = ansible.playbook("reproduce.yml", Path(inventory), extra, timeout=RUN_TIMEOUT, log=log).returncode
            return {
                "lab_up_seconds": round(booted, 1),
                "run_seconds": round(time.monotonic() - started, 1),
                "returncode": rc,
                "run_dir": str(out / "parts" / variant),
            }
        finally:
            _badsum("lab", "down", "--lab", lab, timeout=300)


def merge(out: Path, parts: dict[str, dict], topologies: list[str]) -> list[dict]:
    """Both parts' cells (and raw data) in `out`, and a run.json that plans all of them, in table order."""
    cells: list[dict] = []
    base: dict = {}
    hosts: dict = {}
    for variant, part in parts.items():
        run_dir = Path(part["run_dir"])
        found, _problems = results.load_run(run_dir) if run_dir.is_dir() else ([], [])
        for cell in found:
            name = f"{cell['topology']}-{cell['condition']}"
            shutil.copy(run_dir / f"{name}.json", out / f"{name}.json")
            if (run_dir / "raw" / name).is_dir():
                shutil.copytree(run_dir / "raw" / name, out / "raw" / name, dirs_exist_ok=True)
        cells += found
        part["kernel"] = next((c["kernel"] for c in found), None)
        if (run_dir / "run.json").exists():
            info = json.loads((run_dir / "run.json").read_text())
            base = base or info
            hosts |= {f"{host} ({variant} kernel)": data for host, data in info.get("hosts", {}).items()}
    conditions = [c for part in parts_of(topologies).values() for c in part]
    plan = [
        {"topology": t, "condition": c, "name": f"{t}-{c}", "server": "host2"}
        for t in topologies
        for c in sorted(conditions, key=CONDITION_ORDER.index)
    ]
    settings = {
        **base.get("plan", {}).get("settings", {}),
        "badsum_experiment_conditions": conditions,
        "badsum_experiment_topologies": topologies,
        "badsum_experiment_run_id": out.name,
        "badsum_experiment_results_dir": str(out.parent),
    }
    record = {
        **base,
        "badsum_version": version(),
        "hosts": hosts,
        "kind": "real kernels",
        "parts": parts,
        "plan": {
            "cells": plan,
            "run_id": out.name,
            "results_dir": str(out.parent),
            "run_dir": str(out),
            "settings": settings,
        },
    }
    results.atomic_write(out / "run.json", json.dumps(record, indent=1))
    return cells


def problems_of(cells: list[dict], topologies: list[str]) -> tuple[list[str], list[str]]:
    """Every way the real table falls short: cells missing or not measured for real (the run failed), and
    cells off the incident's table (a finding)."""
    found = {(c["topology"], c["condition"]): c for c in cells}
    failed, differ = [], []
    for topology in topologies:
        for condition in CONDITION_ORDER:
            cell = found.get((topology, condition))
            if cell is None:
                failed.append(f"{topology}/{condition}: no result")
            elif cell.get("condition_kind") != "real":
                failed.append(f"{topology}/{condition}: {cell.get('condition_kind')}, not real")
            elif cell["verdict"] != incident.expected(topology, condition):
                differ.append(
                    f"{topology}/{condition}: {cell['verdict']}, the incident says "
                    f"{incident.expected(topology, condition)}"
                )
    return failed, differ


def reproduce_real(
    results_dir: Path,
    topologies: list[str],
    backend: str | None,
    compare: Path | None,
    extra_vars: dict | None = None,
    as_json: bool = False,
) -> Exit:
    from badsum import report
    from badsum.analysis import summary

    say = sys.stderr if as_json else sys.stdout  # with --json, stdout is the summary alone
    out = results_dir / time.strftime("real-%Y%m%d-%H%M%S")
    (out / "parts").mkdir(parents=True)
    started = time.monotonic()
    parts = {}
    for variant, conditions in parts_of(topologies).items():
        print(
            f"{variant} kernel: VM lab {LABS[variant]} up, then {', '.join(conditions)} x "
            f"{len(topologies)} topologies (log: {out / 'parts' / (variant + '.log')})",
            file=say,
            flush=True,
        )
        parts[variant] = measure(variant, conditions, out, topologies, backend, extra_vars or {})
        print(
            f"  booted in {parts[variant]['lab_up_seconds']} s, ran in {parts[variant]['run_seconds']} s",
            file=say,
            flush=True,
        )
    cells = merge(out, parts, topologies)
    built = report.build(out, compare)
    failed, differ = problems_of(cells, topologies)
    status = Exit.FAILURE if failed else Exit.FINDING if differ else Exit.OK
    if as_json:
        keys = ("topology", "condition", "condition_kind", "verdict", "verdict_reason", "kernel")
        summary_ = {
            "run_dir": str(out),
            "report": built["html"],
            "parts": parts,
            "cells": [{k: c.get(k) for k in keys} for c in cells],
            "failed": failed,
            "differs": differ,
            "elapsed": round(time.monotonic() - started, 1),
            "exit_status": int(status),
            "badsum_version": version(),
        }
        print(json.dumps(summary_, indent=1, default=str))
        return status
    print(summary.table(cells, results.planned_cells(out)))
    print(f"real table: {out} ({time.monotonic() - started:.0f} s); report {built['html']}")
    for problem in failed:
        print(f"  FAILED: {problem}")
    for problem in differ:
        print(f"  DIFFERS: {problem}")
    return status
