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
from collections.abc import Callable
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
    deadline = time.monotonic() + after
    interrupt(tmp_path, kind, sig, lambda results: time.monotonic() >= deadline)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name)
def test_a_run_interrupted_while_it_verifies_leaves_nothing(tmp_path: Path, sig: signal.Signals) -> None:
    """The testinfra suite runs on the controller from a worker of the playbook: it ends with the run (CI found it
    running on after the teardown)."""
    assert interrupt(tmp_path, "badsum reproduce", sig, verifying), "the run never reached its testinfra suites"


def verifying(results: Path) -> bool:
    """Whether the testinfra suites of the run writing to `results` are running."""
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"tests/testinfra" in argv and any(a.startswith(f"--badsum-run={results}".encode()) for a in argv):
            return True
    return False


def interrupt(tmp_path: Path, kind: str, sig: signal.Signals, until: Callable[[Path], bool]) -> bool:
    """Run `kind`, signal its process group once until(results) holds, take the lab down; nothing may be left.

    Whether until() held before the run ended by itself.
    """
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
    reached = False
    limit = time.monotonic() + 120  # a run takes about 40 s with a fresh lab
    while proc.poll() is None and time.monotonic() < limit and not (reached := until(results)):
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
    return reached
