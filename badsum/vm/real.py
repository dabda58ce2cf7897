"""The real table: the 5 x 3 cells measured on real kernels, beside the emulated table, cell by cell.

vulnerable and workaround are the unfixed kernel itself (a VM lab booting
6.1.192-badsum-unfixed; workaround = rx off on the container veths), patched
is the fixed kernel (the same source with the fix). Each is reproduce.yml,
unchanged, on a VM lab's inventory; the two runs' cells are then put
together in one run directory (its report compares it with an emulated run
and marks every cell where they differ).

    badsum reproduce-real [--compare RUN | --no-compare] [--backend ebpf|netem] [--topologies ...]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from badsum import topologies
from badsum.analysis import incident, results

PROJECT = Path(__file__).resolve().parents[2]
TOPOLOGIES = list(topologies.names())  # the topology catalogue's, in the table's order
# Which kernel measures which condition for real (see kernel/README.md, "Real or emulated").
PARTS = {"unfixed": ["vulnerable", "workaround"], "fixed": ["patched"]}
LABS = {"unfixed": "vmru", "fixed": "vmrf"}
RUN_TIMEOUT = 3600  # a VM cell takes ~50 s under TCG: 10 cells, with room


def _env() -> dict[str, str]:
    bin_dir = Path(sys.executable).parent
    return dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"))


def _badsum(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "badsum", *args],
        cwd=PROJECT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _playbook(inventory: Path, extra: dict, log: Path) -> int:
    with log.open("w") as out:
        return subprocess.run(
            [
                str(Path(sys.executable).parent / "ansible-playbook"),
                "-i",
                str(inventory),
                "reproduce.yml",
                "-e",
                json.dumps(extra),
            ],
            cwd=PROJECT,
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=RUN_TIMEOUT,
            check=False,
        ).returncode


def measure(variant: str, out: Path, topologies: list[str], backend: str | None, extra_vars: dict) -> dict:
    """One kernel's part: its VM lab up, reproduce.yml for its conditions, the lab down (also on failure)."""
    lab = LABS[variant]
    _badsum("lab", "down", "--lab", lab)
    with tempfile.TemporaryDirectory(prefix=f"badsum-{lab}-") as inventory:
        started = time.monotonic()
        up = _badsum("lab", "up", "--provider", "qemu", "--kernel", variant, "--lab", lab, "--inventory", inventory)
        booted = time.monotonic() - started
        if up.returncode != 0:
            raise RuntimeError(f"the {variant} VM lab did not come up: {(up.stderr or up.stdout).strip()[-800:]}")
        try:
            extra = {
                **extra_vars,
                "badsum_experiment_topologies": topologies,
                "badsum_experiment_conditions": PARTS[variant],
                "badsum_experiment_results_dir": str(out / "parts"),
                "badsum_experiment_run_id": variant,
            }
            if backend:
                extra["badsum_experiment_backend"] = backend
            started = time.monotonic()
            rc = _playbook(Path(inventory), extra, out / "parts" / f"{variant}.log")
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
    conditions = [c for variant in PARTS for c in PARTS[variant]]
    order = ["vulnerable", "workaround", "patched"]
    plan = [
        {"topology": t, "condition": c, "name": f"{t}-{c}", "server": "host2"}
        for t in topologies
        for c in sorted(conditions, key=order.index)
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


def problems_of(cells: list[dict], topologies: list[str]) -> list[str]:
    """Every way the real table falls short: a cell missing, not measured for real, or off the incident's table."""
    found = {(c["topology"], c["condition"]): c for c in cells}
    problems = []
    for topology in topologies:
        for condition in ("vulnerable", "workaround", "patched"):
            cell = found.get((topology, condition))
            if cell is None:
                problems.append(f"{topology}/{condition}: no result")
            elif cell.get("condition_kind") != "real":
                problems.append(f"{topology}/{condition}: {cell.get('condition_kind')}, not real")
            elif cell["verdict"] != incident.expected(topology, condition):
                problems.append(
                    f"{topology}/{condition}: {cell['verdict']}, the incident says "
                    f"{incident.expected(topology, condition)}"
                )
    return problems


def reproduce_real(
    results_dir: Path, topologies: list[str], backend: str | None, compare: Path | None, extra_vars: dict | None = None
) -> int:
    from badsum import report
    from badsum.analysis import summary

    out = results_dir / time.strftime("real-%Y%m%d-%H%M%S")
    (out / "parts").mkdir(parents=True)
    started = time.monotonic()
    parts = {}
    for variant in PARTS:
        print(
            f"{variant} kernel: VM lab {LABS[variant]} up, then {', '.join(PARTS[variant])} x "
            f"{len(topologies)} topologies (log: {out / 'parts' / (variant + '.log')})",
            flush=True,
        )
        parts[variant] = measure(variant, out, topologies, backend, extra_vars or {})
        print(f"  booted in {parts[variant]['lab_up_seconds']} s, ran in {parts[variant]['run_seconds']} s", flush=True)
    cells = merge(out, parts, topologies)
    built = report.build(out, compare)
    problems = problems_of(cells, topologies)
    print(summary.table(cells, results.planned_cells(out)))
    print(f"real table: {out} ({time.monotonic() - started:.0f} s); report {built['html']}")
    for problem in problems:
        print(f"  DIFFERS: {problem}")
    return 1 if problems else 0
