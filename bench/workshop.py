#!/usr/bin/env python3
"""Benchmark: a workshop of N students who all press `lab run` at once - how long until the last verdict.

For each size N, each run is `badsum workshop up --students N`, then every
student's service asked at the same moment for one cell (as the `lab`
command asks, with the student's token), then `badsum workshop down`.
Prints, per size, median / min / max over the runs of: up (wall), memory
per lab at rest, the service's memory, the time until the LAST of the N
verdicts arrived, and down; and whether every verdict was right (the
incident's table: badsum.analysis.incident). With --cells bare (the default)
every student runs bare/patched; with --cells mixed student k runs the k-th
of the 15 cells, so routed cells must come out corrupt-delivered. The
machine's load average is printed before and after each size (the figures
mean little on a machine that was busy). Root only; takes down any
workshop that is up first.

    .venv/bin/python bench/workshop.py [--sizes 5 10 20] [--runs 3] [--cells bare|mixed]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # the package, before any installed one

from badsum.analysis.incident import expected  # noqa: E402
from badsum.lab import cgroups  # noqa: E402
from badsum.specs import choices  # noqa: E402
from badsum.workshop import room  # noqa: E402

PORT_BASE, DASHBOARD = 43200, 48082  # out of the way of a real workshop's defaults
TOPOLOGIES = ("bare", "mesos", "kubernetes", "docker-ipv6", "docker-nat")
ALL_CELLS = [(t, c) for t in TOPOLOGIES for c in choices("badsum_experiment_conditions")]


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


def one_run(students: int, cells: str) -> dict[str, float]:
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
        wanted = [ALL_CELLS[k % len(ALL_CELLS)] if cells == "mixed" else ("bare", "patched") for k in range(students)]

        def press(k: int) -> tuple[dict, float]:
            topology, condition = wanted[k]
            answer = ask(plan.students[k], {"action": "run", "args": {"topology": topology, "condition": condition}})
            return answer, time.perf_counter()

        start = time.perf_counter()
        with ThreadPoolExecutor(students) as pool:
            answers = list(pool.map(press, range(students)))
        last = max(at for _, at in answers) - start
        right = 0
        for (answer, _), (topology, condition) in zip(answers, wanted, strict=True):
            got = answer.get("data", {}).get("cell", {}).get("verdict") if answer.get("ok") else None
            right += got == expected(topology, condition)
            if got != expected(topology, condition):
                print(f"    {topology}/{condition}: {got or answer.get('text', '')[-200:]!r}", file=sys.stderr)
    finally:
        down = badsum("workshop", "down")
    return {
        "up_s": up,
        "lab_mib": statistics.mean(per_lab) / 2**20,
        "service_mib": service / 2**20,
        "last_s": last,
        "right": right,
        "down_s": down,
    }


def stats(values: list[float], unit: str) -> str:
    return f"median {statistics.median(values):7.1f} {unit}  min {min(values):7.1f}  max {max(values):7.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cells", choices=("bare", "mixed"), default="bare")
    args = parser.parse_args()
    wrong = 0
    print(f"{os.cpu_count()} cores; cells: {args.cells}")
    for students in args.sizes:
        before = os.getloadavg()
        runs = [one_run(students, args.cells) for _ in range(args.runs)]
        after = os.getloadavg()
        print(f"{students} students, {args.runs} runs (load average before {before[0]:.2f}, after {after[0]:.2f})")
        print(f"  up                       {stats([r['up_s'] for r in runs], 's')}")
        print(f"  memory per lab, idle     {stats([r['lab_mib'] for r in runs], 'MiB')}")
        print(f"  service memory           {stats([r['service_mib'] for r in runs], 'MiB')}")
        print(
            f"  last of {students:2} verdicts       {stats([r['last_s'] for r in runs], 's')}"
            f"   right: {min(r['right'] for r in runs)}-{max(r['right'] for r in runs)} of {students}"
        )
        print(f"  down                     {stats([r['down_s'] for r in runs], 's')}")
        wrong += sum(students - r["right"] for r in runs)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
