#!/usr/bin/env python3
"""Benchmark: embedded-lab up/down time and the time of one experiment cell.

Prints figures; asserts nothing (timings belong here, not in tests).
Uses its own lab id, so a user's lab0 is left alone. Root only.

    .venv/bin/python bench/lab_and_cell.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAB = "bench"
BIN = Path(sys.executable).parent


def badsum(*args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "badsum", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


def lab_up_time(inventory: Path) -> float:
    badsum("lab", "down", "--lab", LAB)
    start = time.perf_counter()
    badsum("lab", "up", "--lab", LAB, "--inventory", str(inventory))
    # `up` returns once every sshd accepts; check one handshake-ready port to be sure
    status = json.loads(badsum("lab", "status", "--lab", LAB, "--json"))[0]
    assert status["healthy"], status
    with socket.create_connection((_host_addr(inventory), 22), timeout=2):
        pass
    return time.perf_counter() - start


def _host_addr(inventory: Path) -> str:
    return (inventory / ".ssh" / "known_hosts").read_text().split()[0]


def cell_time(inventory: Path, results: Path) -> tuple[float, float, dict]:
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    start = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), "playbooks/experiment.yml",
         "-e", f"badsum_lab_id={LAB}", "-e", f"badsum_results_dir={results}",
         "-e", '{"badsum_experiment_topologies": ["bare"], "badsum_experiment_conditions": ["patched"]}'],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(proc.stdout[-3000:])
    cell = json.loads(next((results / "latest").glob("*-*.json")).read_text())
    return wall, float(cell["cell_finished"]) - float(cell["cell_started"]), cell


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    ups, walls, cells = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        inventory = Path(tmp) / "inv"
        inventory.mkdir()
        (inventory / "group_vars").mkdir()
        (inventory / "group_vars" / "all.yml").write_text(
            (ROOT / "inventories/local/group_vars/all.yml").read_text()
        )
        try:
            for i in range(args.repeat):
                ups.append(lab_up_time(inventory))
                wall, cell, result = cell_time(inventory, Path(tmp) / f"results{i}")
                walls.append(wall)
                cells.append(cell)
                print(
                    f"run {i + 1}: lab up {ups[-1]:.2f} s, experiment playbook {wall:.1f} s, "
                    f"cell {cell:.1f} s, verdict {result['verdict']} ({result['corrupted_packets']} pkts)"
                )
        finally:
            start = time.perf_counter()
            badsum("lab", "down", "--lab", LAB)
            down = time.perf_counter() - start
    print(f"lab up (2 hosts + switch, sshd reachable): median {statistics.median(ups):.2f} s")
    print(f"lab down: {down:.2f} s")
    print(f"one cell (set-up to verdict): median {statistics.median(cells):.1f} s")
    print(f"experiment playbook (prepare + cell + table): median {statistics.median(walls):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
