#!/usr/bin/env python3
"""Benchmark: the full 15-cell matrix, repeated; agreement between runs and wall time.

Each run is `ansible-playbook reproduce.yml` from lab up to the outcome table,
testinfra suites included, on a lab of its own that is created fresh for
every run. Prints figures and how many cells agreed across the runs. Root only.

    .venv/bin/python bench/matrix_repeat.py [--runs 5] [--hosts 16]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from badsum.lab.spec import DEFAULT_HOSTS  # noqa: E402

BIN = Path(sys.executable).parent
LAB = "bmat"


def run_once(workdir: Path, hosts: int, index: int) -> tuple[float, dict[tuple[str, str], str]]:
    inventory = workdir / f"inv{index}"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "group_vars" / "all.yml").write_text((ROOT / "inventories/local/group_vars/all.yml").read_text())
    subprocess.run(
        [sys.executable, "-m", "badsum", "lab", "down", "--lab", LAB], cwd=ROOT, check=True, capture_output=True
    )
    results = workdir / f"results{index}"
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    start = time.perf_counter()
    proc = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(inventory),
            "reproduce.yml",
            "-e",
            f"badsum_lab_id={LAB}",
            "-e",
            f"badsum_lab_hosts={hosts}",
            "-e",
            f"badsum_experiment_results_dir={results}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(proc.stdout[-3000:])
    cells = {}
    for path in (results / "latest").glob("*-*.json"):
        cell = json.loads(path.read_text())
        cells[(cell["topology"], cell["condition"])] = cell["verdict"]
    return wall, cells


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--hosts", type=int, default=DEFAULT_HOSTS, help="lab hosts (pairs = hosts / 2)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    walls, tables = [], []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for i in range(args.runs):
                wall, cells = run_once(Path(tmp), args.hosts, i)
                walls.append(wall)
                tables.append(cells)
                corrupt = sorted(f"{t}/{c}" for (t, c), v in cells.items() if v == "corrupt-delivered")
                print(f"run {i + 1}: {wall:.1f} s, {len(cells)} cells, corrupt-delivered: {', '.join(corrupt)}")
        finally:
            subprocess.run(
                [sys.executable, "-m", "badsum", "lab", "down", "--lab", LAB],
                cwd=ROOT,
                capture_output=True,
                check=False,
            )
    keys = sorted(set().union(*tables))
    agreeing = [k for k in keys if len({t.get(k) for t in tables}) == 1]
    print(f"cells agreeing across {args.runs} runs: {len(agreeing)}/{len(keys)}")
    for k in keys:
        if k not in agreeing:
            print(f"  disagree {k[0]}/{k[1]}: {Counter(t.get(k) for t in tables)}")
    print(
        f"full matrix, lab up to outcome table ({args.hosts // 2} pairs): "
        f"median {statistics.median(walls):.1f} s, min {min(walls):.1f} s, max {max(walls):.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
