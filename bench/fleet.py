#!/usr/bin/env python3
"""Benchmark: the fleet playbooks on emulated fleets of 50, 100 and 200 hosts, in hosts per minute.

For each size: a lab of its own (bfleet), its containers (playbooks/fleet_lab.yml:
CNI pods, Mesos-style containers, Docker on one host in ten, nothing on the
rest), one warm-up audit, then, --runs times: audit.yml, remediate.yml (the
canary and its experiment cell included, default batches) and rollback.yml.
Prints each phase's wall time and hosts per minute as median / min / max, so
the growth of the cost with the fleet shows. Every run must succeed and leave
every host as the audit found it. Root only.

The warm-up is the emulation's own cost, printed apart: the first probe on an
emulated host compiles the veth-bug emulator (once per lab) and loads it into
that host's bpffs (once per host) - what a real unfixed kernel has built in.

    .venv/bin/python bench/fleet.py [--sizes 50 100 200] [--runs 3]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # the package, before any installed one

from badsum.lab.spec import MAX_HOSTS  # noqa: E402

BIN = Path(sys.executable).parent
LAB = "bfleet"
ENV = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
PHASES = ("audit", "remediate", "rollback")


def sh(*cmd: str, timeout: int = 3600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout, check=False)


def playbook(inventory: Path, name: str, results: Path, run_id: str) -> float:
    extra = json.dumps({"badsum_fleet_results_dir": str(results), "badsum_fleet_run_id": run_id})
    start = time.perf_counter()
    proc = sh(str(BIN / "ansible-playbook"), "-i", str(inventory), f"playbooks/{name}.yml", "-e", extra)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{name}.yml failed:\n{proc.stdout[-4000:]}")
    return took


def risks(results: Path, run_id: str, key: str) -> dict[str, int]:
    return json.loads((results / run_id / "fleet.json").read_text())[key]


def bench_size(size: int, runs: int, work: Path) -> dict[str, list[float]]:
    inventory = work / f"inv{size}"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "group_vars" / "all.yml").write_text((ROOT / "inventories/local/group_vars/all.yml").read_text())
    sh(sys.executable, "-m", "badsum", "lab", "down", "--lab", LAB)
    up = sh(
        sys.executable,
        "-m",
        "badsum",
        "lab",
        "up",
        "--lab",
        LAB,
        "--hosts",
        str(size),
        "--write-inventory",
        str(inventory),
    )
    if up.returncode != 0:
        raise SystemExit(f"lab up failed: {up.stderr}")
    try:
        lab = sh(str(BIN / "ansible-playbook"), "-i", str(inventory), "playbooks/fleet_lab.yml")
        if lab.returncode != 0:
            raise SystemExit(f"fleet_lab.yml failed:\n{lab.stdout[-4000:]}")
        times: dict[str, list[float]] = {p: [] for p in PHASES}
        results = work / f"results{size}"
        warm_up = playbook(inventory, "audit", results, "warm-up")
        print(f"  {size} hosts, warm-up audit (the emulator loaded on every host): {warm_up:.1f} s", flush=True)
        for n in range(runs):
            for phase in PHASES:
                times[phase].append(playbook(inventory, phase, results, f"{phase}-{n}"))
            before, after = risks(results, f"audit-{n}", "risk"), risks(results, f"rollback-{n}", "risk_after")
            if before != after:
                raise SystemExit(f"{size} hosts, run {n}: rolled back to {after}, the audit found {before}")
            print(
                f"  {size} hosts, run {n + 1}: "
                + ", ".join(f"{p} {times[p][-1]:.1f} s" for p in PHASES)
                + f"; risk {before}",
                flush=True,
            )
        return times
    finally:
        sh(sys.executable, "-m", "badsum", "lab", "down", "--lab", LAB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not all(2 <= n <= MAX_HOSTS for n in args.sizes):
        parser.error(f"--sizes {' '.join(map(str, args.sizes))}: allowed: 2 to {MAX_HOSTS} hosts each")
    if not 1 <= args.runs <= 20:
        parser.error(f"--runs {args.runs}: allowed: 1 to 20")
    if os.geteuid() != 0:
        raise SystemExit("root only: the lab builds network namespaces")
    table = {}
    with tempfile.TemporaryDirectory(prefix="badsum-bench-fleet-") as work:
        for size in args.sizes:
            table[size] = bench_size(size, args.runs, Path(work))
    print(f"\nfleet playbooks, {args.runs} runs each (wall seconds; hosts per minute = hosts / wall * 60)")
    print(f"{'hosts':>5}  {'phase':<9}  {'median':>7} {'min':>7} {'max':>7}   {'hosts/min (median, min-max)':<28}")
    for size, times in table.items():
        for phase, values in times.items():
            rates = sorted(size / t * 60 for t in values)
            print(
                f"{size:>5}  {phase:<9}  {statistics.median(values):7.1f} {min(values):7.1f} {max(values):7.1f}"
                f"   {statistics.median(rates):6.0f} ({rates[0]:.0f}-{rates[-1]:.0f})"
            )


if __name__ == "__main__":
    main()
