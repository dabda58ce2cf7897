#!/usr/bin/env python3
"""Benchmark: a VM lab from nothing to SSH on every guest, and back to nothing.

Each run is `badsum lab up --provider qemu --kernel K` (host1, host2 and the
switch booted side by side) and `badsum lab down`. Prints the wall time of
each, and the slowest guest's time from QEMU start to a root login over SSH,
as median / min / max. Needs `make kernels` first. Root only.

    .venv/bin/python bench/vm_boot.py [--runs 3] [--kernel unfixed|fixed] [--init busybox|systemd] [--lab vmb]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # the package, before any installed one

from badsum.lab.spec import LabError  # noqa: E402
from badsum.vm import guest, provider  # noqa: E402
from badsum.vm.spec import VmLabSpec  # noqa: E402


def stats(values: list[float]) -> str:
    return f"median {statistics.median(values):6.1f} s   min {min(values):6.1f} s   max {max(values):6.1f} s"


def badsum(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "badsum", *args], cwd=ROOT, check=True, capture_output=True, timeout=900)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kernel", choices=["unfixed", "fixed"], default="unfixed")
    parser.add_argument("--init", choices=list(guest.INITS), default=guest.DEFAULT_INIT, help="the guests' PID 1")
    parser.add_argument("--lab", default="vmb", help="a VM lab id of the benchmark's own (vm...)")
    args = parser.parse_args()
    if not 1 <= args.runs <= 20:
        parser.error(f"--runs {args.runs}: allowed: 1 to 20")
    try:
        VmLabSpec(args.lab, 2, 0)  # checks the id, and that it is a VM lab's (vm...)
    except LabError as exc:
        parser.error(f"--lab: {exc}")
    ups, downs, guests = [], [], []
    badsum("lab", "down", "--lab", args.lab)
    with tempfile.TemporaryDirectory(prefix="badsum-vm-bench-") as tmp:
        for n in range(args.runs):
            ups.append(
                badsum(
                    "lab",
                    "up",
                    "--provider",
                    "qemu",
                    "--kernel",
                    args.kernel,
                    "--init",
                    args.init,
                    "--lab",
                    args.lab,
                    "--write-inventory",
                    str(Path(tmp) / "inventory"),
                )
            )
            state = provider.store().load(args.lab) or {}
            boot = {name: node["boot_seconds"] for name, node in state.get("nodes", {}).items()}
            guests.append(max(boot.values()))
            downs.append(badsum("lab", "down", "--lab", args.lab))
            print(f"run {n + 1}: up {ups[-1]:.1f} s (guests to SSH: {boot}), down {downs[-1]:.1f} s", flush=True)
    release = state.get("kernel_record", {}).get("release")
    print(f"accelerator: {state.get('accel')}, kernel: {release}, init: {state.get('init')}")
    print(f"lab up            {stats(ups)}")
    print(f"slowest guest     {stats(guests)}")
    print(f"lab down          {stats(downs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
