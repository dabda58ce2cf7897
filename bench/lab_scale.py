#!/usr/bin/env python3
"""Benchmark: `badsum lab up` and `down` at growing sizes; seconds and idle memory per host.

For each size, each run brings a lab of its own up from nothing and takes it
down again, both through the `badsum` command as a user runs it (interpreter
start included). Between the two the lab sits idle for a moment, then its
memory is read: the lab cgroup's charge (every node's sshd, its tmpfs files,
the kernel memory charged to it) and the summed PSS of its processes. The
switch is counted in the totals, not in the number of hosts. After the
memory, the lab must report healthy (every sshd answers). Prints median /
min / max per size, and the cost per host, which should stay flat as the
lab grows. Root only.

    .venv/bin/python bench/lab_scale.py [--sizes 10,50,100,200] [--runs 3] [--lab bscale]
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

from badsum.lab import cgroups  # noqa: E402
from badsum.lab.spec import MAX_HOSTS, validate_lab_id  # noqa: E402

MIB = 2**20


def badsum(*args: str) -> float:
    """Run `badsum ARGS` from the checkout; its wall time in seconds."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "badsum", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"`badsum {' '.join(args)}` failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return wall


def pss_bytes(lab: str) -> int:
    """Proportional set size of the lab's processes: shared pages (sshd's code) counted once in all."""
    total = 0
    for pid in cgroups.pids(lab):
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue  # ended meanwhile
        total += next(int(line.split()[1]) * 1024 for line in rollup.splitlines() if line.startswith("Pss:"))
    return total


def unhealthy(lab: str) -> list[str]:
    """What `badsum lab status` finds wrong with the lab: its nodes whose sshd does not answer, or the lab itself."""
    proc = subprocess.run(
        [sys.executable, "-m", "badsum", "lab", "status", "--lab", lab, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode not in (0, 1):  # 1: a lab that is not healthy, which is what this asks
        raise RuntimeError(f"badsum lab status: {proc.stderr.strip()}")
    report = json.loads(proc.stdout)
    if not report:
        return [f"lab {lab} (not found)"]
    bad = [n["name"] for n in report[0].get("nodes", []) if not all(n[k] for k in ("netns", "mount_ns", "sshd"))]
    return bad or ([] if report[0]["healthy"] else [f"lab {lab}"])


def run_once(lab: str, hosts: int, inventory: Path, settle: float) -> dict[str, float]:
    badsum("lab", "down", "--lab", lab)  # nothing of an earlier run may count
    up = badsum("lab", "up", "--lab", lab, "--hosts", str(hosts), "--write-inventory", str(inventory))
    time.sleep(settle)
    memory = cgroups.memory_bytes(lab) or 0
    pss = pss_bytes(lab)
    if bad := unhealthy(lab):
        raise SystemExit(f"lab {lab} with {hosts} hosts is up, but not healthy: {', '.join(bad)}")
    down = badsum("lab", "down", "--lab", lab)
    return {"up": up, "down": down, "memory": memory, "pss": pss}


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    median, low, high = statistics.median(values), min(values), max(values)
    return f"{fmt.format(median)} ({fmt.format(low)}-{fmt.format(high)})"


def report(hosts: int, runs: list[dict[str, float]]) -> str:
    up = [r["up"] for r in runs]
    down = [r["down"] for r in runs]
    per_host = [r["up"] / hosts * 1000 for r in runs]
    down_per_host = [r["down"] / hosts * 1000 for r in runs]
    memory = [r["memory"] / hosts / MIB for r in runs]
    pss = [r["pss"] / hosts / MIB for r in runs]
    return (
        f"{hosts:>5}  {spread(up):>19}  {spread(per_host, '{:.1f}'):>19}  {spread(down):>19}  "
        f"{spread(down_per_host, '{:.1f}'):>19}  {spread(memory):>19}  {spread(pss):>19}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,50,100,200", help="comma-separated numbers of hosts")
    parser.add_argument("--runs", type=int, default=3, help="up/down cycles per size")
    parser.add_argument("--lab", default="bscale", help="lab id of the benchmark's own (default bscale)")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds idle before memory is read")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    validate_lab_id(args.lab)
    sizes = [int(s) for s in args.sizes.split(",")]
    if not all(1 <= s <= MAX_HOSTS for s in sizes) or args.runs < 1:
        raise SystemExit(f"sizes must be between 1 and {MAX_HOSTS}, runs at least 1")
    print(f"lab {args.lab}, {args.runs} runs per size, {os.cpu_count()} CPUs; median (min-max)")
    print(
        f"{'hosts':>5}  {'up s':>19}  {'up ms/host':>19}  {'down s':>19}  {'down ms/host':>19}  "
        f"{'cgroup MiB/host':>19}  {'PSS MiB/host':>19}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for hosts in sizes:
                runs = [run_once(args.lab, hosts, Path(tmp) / "inventory", args.settle) for _ in range(args.runs)]
                print(report(hosts, runs), flush=True)
        finally:
            subprocess.run(
                [sys.executable, "-m", "badsum", "lab", "down", "--lab", args.lab],
                cwd=ROOT,
                capture_output=True,
                check=False,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
