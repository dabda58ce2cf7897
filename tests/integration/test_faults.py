"""Interrupted runs: reproduce.yml and `badsum` commands killed at random points, then `badsum lab down`.

After every teardown nothing of the lab is left - namespace, link, mount,
cgroup, process (containers included, zombies excluded), BPF program,
inventory file - and every result already written is whole. The machine is
also compared whole with how it was before the run (tests/residue.py,
machine()): no new daemon hanging off PID 1, no new cgroup directory in any
hierarchy (a container escaping to /sys/fs/cgroup/*/docker would be one), no
new rule or tc filter in the root namespace. `make test-faults` runs
BADSUM_FAULT_KILLS=20 of them; `make test` a shorter loop.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ENV, ROOT, VENV_BIN, badsum, embedded_inventory
from residue import (
    badsum_programs,
    controller_files,
    lab_processes,
    leftovers,
    machine,
    machine_residue,
    results_intact,
)

KILLS = int(os.environ.get("BADSUM_FAULT_KILLS", "5"))
LAB = "ifault"
SIGNALS = [signal.SIGKILL, signal.SIGTERM, signal.SIGINT]
# What gets killed: the README's entry point, the progress front end, the lab provider alone.
COMMANDS = {
    "reproduce.yml": lambda inv, res: [
        str(VENV_BIN / "ansible-playbook"),
        "-i",
        str(inv),
        "reproduce.yml",
        "-e",
        f"badsum_lab_id={LAB}",
        "-e",
        f"badsum_experiment_results_dir={res}",
    ],
    "badsum reproduce": lambda inv, res: [
        str(VENV_BIN / "badsum"),
        "reproduce",
        "-i",
        str(inv),
        "-e",
        f"badsum_lab_id={LAB}",
        "-e",
        f"badsum_experiment_results_dir={res}",
    ],
    "badsum lab up": lambda inv, res: [
        sys.executable,
        "-m",
        "badsum",
        "lab",
        "up",
        "--lab",
        LAB,
        "--write-inventory",
        str(inv),
    ],
}
# Seconds into the command: reproduce.yml takes about 40 s with a fresh lab; lab up about 1 s.
WINDOW = {"reproduce.yml": (0.5, 50.0), "badsum reproduce": (0.5, 50.0), "badsum lab up": (0.05, 1.2)}


def plan(seed: int) -> list[tuple[str, signal.Signals, float]]:
    rng = random.Random(seed)
    kinds = ["reproduce.yml", "reproduce.yml", "badsum reproduce", "badsum lab up"]
    runs = []
    for i in range(KILLS):
        kind = kinds[i % len(kinds)]
        runs.append((kind, SIGNALS[i % len(SIGNALS)], round(rng.uniform(*WINDOW[kind]), 2)))
    return runs


@pytest.mark.parametrize(
    ("kind", "sig", "after"),
    plan(int(os.environ.get("BADSUM_FAULT_SEED", "2026"))),
    ids=lambda v: v.name if isinstance(v, signal.Signals) else str(v),
)
def test_an_interrupted_run_leaves_nothing_after_lab_down(tmp_path: Path, kind: str, sig, after: float) -> None:
    inventory = embedded_inventory(tmp_path / "inventory")
    results = tmp_path / "results"
    badsum("lab", "down", "--lab", LAB)
    programs = badsum_programs()
    before = machine()
    proc = subprocess.Popen(
        COMMANDS[kind](inventory, results),
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    seen: set[tuple[int, int]] = set()
    deadline = time.monotonic() + after
    while time.monotonic() < deadline and proc.poll() is None:
        seen |= lab_processes(LAB)  # containers too: they exist only while a Docker cell runs
        time.sleep(0.05)
    seen |= lab_processes(LAB)
    # The whole process group, as a terminal's Ctrl-C (SIGINT) or a supervisor (SIGTERM, SIGKILL) does.
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    seen |= lab_processes(LAB)
    down = badsum("lab", "down", "--lab", LAB, check=False)
    assert down.returncode == 0, down.stderr
    assert leftovers(LAB, seen, inventory, programs) + controller_files() == []
    # And from outside the lab's bookkeeping: no new daemon, cgroup, root-namespace rule or filter anywhere.
    assert machine_residue(before) == []
    assert (results_intact(results) if results.exists() else []) == []
