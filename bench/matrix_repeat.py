#!/usr/bin/env python3
"""Benchmark: the full 15-cell matrix, repeated: does every run give the incident's table?

Each run is `ansible-playbook reproduce.yml` up to the outcome table, testinfra
suites included, on a lab of its own: made fresh for every run (default), or
made once and left up between runs (--lab-up, what a user sees run after
run). Prints, per run, its wall time and whether its table is the incident's;
then how many runs gave the incident's table, how many cells were
inconclusive (and why), why the corruption windows closed, how long they
stayed open, and the wall time (median/min/max). A failed run is counted and
the bench goes on. Exit status 0 only when every run gave the incident's
table. Root only.

With --preset (e.g. presets/vxlan-2020.yml, the 2020 row) each run is given
`-e @PRESET`, the cells are those the preset asks for, and for the 2020
cells it prints the connect times and host B's UdpInCsumErrors per
condition (median/min/max).

    .venv/bin/python bench/matrix_repeat.py [--runs 5] [--hosts 12] [--lab-up] [--preset FILE] [--lab ID]
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
from collections import Counter, defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # the package, before any installed one

from badsum.analysis import incident  # noqa: E402
from badsum.lab.spec import DEFAULT_HOSTS, MAX_HOSTS  # noqa: E402

BIN = Path(sys.executable).parent
LAB = "bmat"
CELLS = 15


def lab(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "badsum", "lab", *args], cwd=ROOT, check=True, capture_output=True)


def inventory(workdir: Path) -> Path:
    path = workdir / "inventory"
    (path / "group_vars").mkdir(parents=True, exist_ok=True)
    (path / "group_vars" / "all.yml").write_text((ROOT / "inventories/local/group_vars/all.yml").read_text())
    return path


def run_once(inv: Path, results: Path, hosts: int, preset: str = "") -> tuple[float, int, list[dict]]:
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    argv = [str(BIN / "ansible-playbook"), "-i", str(inv), "reproduce.yml", "-e", f"badsum_lab_id={LAB}"]
    argv += ["-e", f"badsum_lab_hosts={hosts}", "-e", f"badsum_experiment_results_dir={results}"]
    argv += ["-e", f"@{preset}"] if preset else []
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        (results / "ansible-playbook.log").parent.mkdir(parents=True, exist_ok=True)
        (results / "ansible-playbook.log").write_text(proc.stdout + proc.stderr)
    cells = [json.loads(p.read_text()) for p in sorted((results / "latest").glob("*-*.json"))]
    return wall, proc.returncode, cells


def main() -> int:
    global LAB
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--hosts", type=int, default=DEFAULT_HOSTS, help="lab hosts (pairs = hosts / 2)")
    parser.add_argument("--lab-up", action="store_true", help="make the lab once and keep it up between runs")
    parser.add_argument("--preset", default="", help="a preset file given to every run (-e @FILE)")
    parser.add_argument("--lab", default="bmat", help="the lab's id (default bmat)")
    parser.add_argument("--logs", default="", help="keep each failed run's ansible-playbook log in this directory")
    args = parser.parse_args()
    LAB = args.lab
    expected_cells = CELLS
    if args.preset:
        asked = yaml.safe_load((ROOT / args.preset).read_text()) or {}
        topologies = asked.get("badsum_experiment_topologies", [None] * 5)
        expected_cells = len(topologies) * len(asked.get("badsum_experiment_conditions", [None] * 3))
    if not 1 <= args.runs <= 1000:
        parser.error(f"--runs {args.runs}: allowed 1-1000")
    if not 2 <= args.hosts <= MAX_HOSTS or args.hosts % 2:
        parser.error(f"--hosts {args.hosts}: allowed an even number from 2 to {MAX_HOSTS}")
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    walls: list[float] = []
    matched, failed = 0, 0
    inconclusive: list[str] = []
    closed_by: Counter[str] = Counter()
    open_for: list[float] = []
    connects: dict[str, list[float]] = defaultdict(list)
    udp_errors: dict[str, list[int]] = defaultdict(list)
    verdicts: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        inv = inventory(Path(tmp))
        lab("down", "--lab", LAB)
        try:
            if args.lab_up:
                lab("up", "--lab", LAB, "--hosts", str(args.hosts), "--write-inventory", str(inv))
            for i in range(args.runs):
                if not args.lab_up:
                    lab("down", "--lab", LAB)
                results = Path(tmp) / f"results{i}"
                wall, rc, cells = run_once(inv, results, args.hosts, args.preset)
                walls.append(wall)
                wrong = incident.mismatches(cells) + ([] if len(cells) == expected_cells else [f"{len(cells)} cells"])
                ok = rc == 0 and not wrong
                matched += ok
                failed += rc != 0
                for c in cells:
                    verdicts[f"{c['topology']}/{c['condition']}: {c['verdict']}"] += 1
                    if c.get("overlay"):
                        key = f"{c['topology']}/{c['condition']} ({c.get('condition_kind')})"
                        if c.get("connect_s") is not None:
                            connects[key].append(c["connect_s"])
                        if c["overlay"].get("udp_csum_errors") is not None:
                            udp_errors[key].append(c["overlay"]["udp_csum_errors"])
                    if c.get("bug") == "vxlan-nat":
                        continue  # the injector plays no part in the 2020 row
                    window = c.get("corruption") or {}
                    closed_by[window.get("window_closed_by") or "none"] += 1
                    if window.get("window_start") and window.get("window_end"):
                        open_for.append(window["window_end"] - window["window_start"])
                    if c["verdict"] == "inconclusive":
                        inconclusive.append(f"run {i + 1} {c['topology']}/{c['condition']}: {c['verdict_reason']}")
                what = "the incident's table" if ok else f"rc {rc}, OFF: {'; '.join(wrong) or 'see its log'}"
                print(f"run {i + 1}: {wall:.1f} s, {what}", flush=True)
                if rc != 0:
                    log = (results / "ansible-playbook.log").read_text()
                    if args.logs:
                        Path(args.logs).mkdir(parents=True, exist_ok=True)
                        (Path(args.logs) / f"run{i + 1}.log").write_text(log)
                    print("  " + log[-1500:].replace("\n", "\n  "))
        finally:
            down = [sys.executable, "-m", "badsum", "lab", "down", "--lab", LAB]
            subprocess.run(down, cwd=ROOT, capture_output=True, check=False)
    how = "lab up" if args.lab_up else "a fresh lab each run"
    print(
        f"\nreproduce.yml{' -e @' + args.preset if args.preset else ''} x {args.runs}, {args.hosts // 2} pairs, {how}"
    )
    print(f"  runs with the incident's table: {matched}/{args.runs} (failed runs: {failed})")
    print(f"  inconclusive cells: {len(inconclusive)}")
    for line in inconclusive:
        print(f"    {line}")
    print(f"  corruption windows closed by: {', '.join(f'{k} {v}' for k, v in closed_by.most_common())}")
    if open_for:
        q = statistics.quantiles(open_for, n=100) if len(open_for) > 1 else [open_for[0]] * 99
        print(
            f"  windows open: median {statistics.median(open_for):.2f} s, p99 {q[98]:.2f} s, max {max(open_for):.2f} s"
        )
    for cell, n in sorted(verdicts.items()):
        print(f"  {cell}: {n}")
    for cell, values in sorted(connects.items()):
        errors = udp_errors.get(cell, [])
        line = f"  {cell}: connect median {statistics.median(values):.3f} s"
        line += f", min {min(values):.3f}, max {max(values):.3f}"
        if errors:
            line += f"; UdpInCsumErrors at host B: total {sum(errors)}, per cell {min(errors)}-{max(errors)}"
        print(line)
    print(f"  wall per run: median {statistics.median(walls):.1f} s, min {min(walls):.1f} s, max {max(walls):.1f} s")
    return 0 if matched == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
