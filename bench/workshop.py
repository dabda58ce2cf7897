#!/usr/bin/env python3
"""Benchmark: a workshop of N students - up, idle memory per lab, N baseline cells at once, down.

For each size N, each run is `badsum workshop up --students N`, then every
student's service asked at once for `lab run bare patched` (as the `lab`
command asks it, with the student's token), then `badsum workshop down`.
Prints median / min / max of: up (wall), memory per lab at rest (the lab's
cgroup), the service's memory, the N cells (wall, and how many came out
clean), down. Root only; takes down any workshop that is up first.

    .venv/bin/python bench/workshop.py [--sizes 5 10 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from badsum.lab import cgroups  # noqa: E402
from badsum.workshop import room  # noqa: E402

PORT_BASE, DASHBOARD = 43200, 48082  # out of the way of a real workshop's defaults


def badsum(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "badsum", *args], cwd=ROOT, check=True, capture_output=True, timeout=1800)
    return time.perf_counter() - start


def ask(seat: room.Seat, body: dict) -> dict:
    request = urllib.request.Request(
        f"http://{seat.service_address}:{room.API_PORT}/api",
        data=json.dumps(body).encode(),
        headers={"X-Lab-Token": seat.token},
    )
    with urllib.request.urlopen(request, timeout=1800) as answer:
        return json.loads(answer.read())


def one_run(students: int) -> dict[str, float]:
    badsum("workshop", "down")
    up = badsum(
        "workshop",
        "up",
        "--students",
        str(students),
        "--hours",
        "1",
        "--listen",
        "127.0.0.1",
        "--port-base",
        str(PORT_BASE),
        "--dashboard-port",
        str(DASHBOARD),
    )
    try:
        plan = room.load()
        assert plan is not None
        time.sleep(2)  # at rest: sshd started, nothing running
        per_lab = [cgroups.memory_bytes(seat.student) or 0 for seat in plan.students]
        service = cgroups.memory_bytes("workshop") or 0
        start = time.perf_counter()
        with ThreadPoolExecutor(students) as pool:
            answers = list(
                pool.map(
                    lambda s: ask(s, {"action": "run", "args": {"topology": "bare", "condition": "patched"}}),
                    plan.students,
                )
            )
        cells = time.perf_counter() - start
        clean = sum(a["ok"] and "verdict: clean" in a["text"] for a in answers)
    finally:
        down = badsum("workshop", "down")
    return {
        "up_s": up,
        "lab_mib": statistics.mean(per_lab) / 2**20,
        "service_mib": service / 2**20,
        "cells_s": cells,
        "clean": clean,
        "down_s": down,
    }


def stats(values: list[float], unit: str) -> str:
    return f"median {statistics.median(values):7.1f} {unit}  min {min(values):7.1f}  max {max(values):7.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for students in args.sizes:
        runs = [one_run(students) for _ in range(args.runs)]
        print(f"{students} students, {args.runs} runs")
        print(f"  up                     {stats([r['up_s'] for r in runs], 's')}")
        print(f"  memory per lab, idle   {stats([r['lab_mib'] for r in runs], 'MiB')}")
        print(f"  service memory         {stats([r['service_mib'] for r in runs], 'MiB')}")
        print(
            f"  {students} bare cells at once {stats([r['cells_s'] for r in runs], 's')}"
            f"   clean: {min(r['clean'] for r in runs)}-{max(r['clean'] for r in runs)} of {students}"
        )
        print(f"  down                   {stats([r['down_s'] for r in runs], 's')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
