#!/usr/bin/env python3
"""Benchmark: `make reproduce` with the embedded lab up, end to end, and its phases.

Each run is the README's own command on a lab that is already up (the lab
stays up between runs, as it does for a user). Prints the wall time of the
whole command and of each phase - lab up (a no-op here; a fresh lab is timed
on its own), prepare, the cells, the report and the testinfra suites (those
two run side by side) - as median / min / max over the runs, and checks the
table each run produced. Root only.

    .venv/bin/python bench/reproduce.py [--runs 3] [--hosts 12]
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # the package, before any installed one

from badsum.analysis import incident, results  # noqa: E402
from badsum.lab.spec import DEFAULT_HOSTS  # noqa: E402

PHASES = {  # phase -> the plays (reproduce.yml's own names) it is made of
    "settings": ["Check the settings"],
    "lab up": ["Bring up the embedded lab"],
    "prepare": ["Plan the run", "Prepare the hosts", "Record the run"],
    "cells": ["Run the cells"],
    "report + testinfra": ["Show the outcome"],
}
TASKS = {"report": "Wait for the report", "testinfra": "Run the testinfra suites on the run's results and the hosts"}


def stats(values: list[float]) -> str:
    return f"median {statistics.median(values):6.1f} s   min {min(values):6.1f} s   max {max(values):6.1f} s"


def enabled_callbacks() -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "ansible.cfg")
    return [name.strip() for name in cfg.get("defaults", "callbacks_enabled", fallback="").split(",") if name.strip()]


def run_once(results_dir: Path) -> tuple[float, dict[str, float], list[str]]:
    with tempfile.NamedTemporaryFile(suffix=".json") as phases_file:
        callbacks = ",".join([*enabled_callbacks(), "badsum.kit.phases"])  # replaces ansible.cfg's list
        env = dict(os.environ, ANSIBLE_CALLBACKS_ENABLED=callbacks, BADSUM_PHASES_FILE=phases_file.name)
        start = time.perf_counter()
        proc = subprocess.run(
            ["make", "reproduce", f"ARGS=-e badsum_experiment_results_dir={results_dir}"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"make reproduce failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
        data = json.loads(Path(phases_file.name).read_text())
    plays = {p["name"]: p["end"] - p["start"] for p in data["plays"]}
    phases = {phase: sum(plays.get(name, 0.0) for name in names) for phase, names in PHASES.items()}
    phases["  of which testinfra"] = (
        data["tasks"][TASKS["testinfra"]]["end"] - data["tasks"][TASKS["testinfra"]]["start"]
    )
    phases["ansible-playbook"] = data["total"]
    cells, _ = results.load_run(results_dir / "latest")
    return wall, phases, incident.mismatches(cells) + ([] if len(cells) == 15 else [f"{len(cells)} cells"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hosts", type=int, default=DEFAULT_HOSTS, help="the lab's hosts (pairs = hosts / 2)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    badsum = [str(ROOT / ".venv/bin/badsum"), "lab"]
    subprocess.run([*badsum, "down"], cwd=ROOT, check=True, capture_output=True)
    start = time.perf_counter()
    subprocess.run([*badsum, "up", "--hosts", str(args.hosts)], cwd=ROOT, check=True, capture_output=True)
    print(f"fresh lab up (badsum lab up, {args.hosts} hosts + switch): {time.perf_counter() - start:.1f} s")
    walls, phases, wrong = [], {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            wall, these, mismatched = run_once(Path(tmp) / f"results{i}")
            walls.append(wall)
            for name, value in these.items():
                phases.setdefault(name, []).append(value)
            wrong += mismatched
            print(f"run {i + 1}: {wall:.1f} s{'' if not mismatched else '  OFF THE TABLE: ' + '; '.join(mismatched)}")
    print(f"\nmake reproduce, lab up ({args.hosts // 2} pairs), {args.runs} runs")
    print(f"  {'end to end':22} {stats(walls)}")
    for name, values in phases.items():
        print(f"  {name:22} {stats(values)}")
    print(f"  the incident's table in every run: {'yes' if not wrong else 'NO'}")
    return 0 if not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
