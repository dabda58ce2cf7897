#!/usr/bin/env python3
"""Benchmark: the guard under a storm of new containers - its CPU, and whether it protects every one.

Each run brings up a lab of one emulated host of its own, and on that host
(inside its namespaces and cgroup, as a fleet host's own processes are)
starts the guard daemon (`guard run`, from a built kit, as remediate starts
it), waits for its first pass, then makes containers the way Docker and
Mesos do, at a steady rate: a process in a network namespace of its own (`unshare --net
sleep`), a veth pair made in this namespace and one end moved into the
container's. When the last one is made, it waits until the guard has turned
rx-checksumming off on every container end (bounded), and reads the guard's
own CPU time (utime + stime) over the whole storm. Then everything goes:
the guard, the containers (their namespaces with them), the host ends, and
the lab.

Prints, over the runs, median / min / max of: the guard's CPU as a share of
one core while the storm lasted, the seconds until the last veth was
protected after the last one was made, the passes it made, and how many
veths it protected (all of them, or the run fails). Root only.

    .venv/bin/python bench/guard.py [--veths 1000] [--seconds 10] [--runs 3] [--lab bguard]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # the package, before any installed one

from badsum import hostkit  # noqa: E402
from badsum.host.shared import netlink  # noqa: E402
from badsum.lab import enter  # noqa: E402
from badsum.lab.spec import STATE_ROOT, validate_lab_id  # noqa: E402

HOST_PREFIX = "bsbench"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rx_off(pid: int) -> bool:
    with netlink.inside(f"/proc/{pid}/ns/net"):
        return not netlink.rx_checksumming("eth0")


def storm(veths: int, seconds: float, kit: Path, state: Path) -> dict:
    """One storm, on the emulated host this process runs in (--inside): the guard, the containers, the figures."""
    guard = subprocess.Popen(
        [sys.executable, "-I", str(kit), "guard", "run", "--state-dir", str(state), "--interval", "60"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    containers: list[subprocess.Popen] = []
    try:
        deadline = time.monotonic() + 10
        while not (state / "guard.pid").exists():
            if guard.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the guard did not start: {guard.stderr.read().decode() if guard.stderr else ''}")
            time.sleep(0.02)
        cpu0, start = cpu_seconds(guard.pid), time.monotonic()
        for n in range(veths):
            due = start + n * seconds / veths
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            box = subprocess.Popen(["unshare", "--net", "sleep", "600"])
            containers.append(box)
            ref = f"/proc/{box.pid}/ns/net"
            while os.stat(ref).st_ino == netlink.inode():  # until unshare has made the namespace
                time.sleep(0.0005)
            fd = os.open(ref, os.O_RDONLY)
            try:
                netlink.add_veth(f"{HOST_PREFIX}{n}", "eth0", peer_netns_fd=fd)
            finally:
                os.close(fd)
        made = time.monotonic()
        pending = list(containers)
        while pending and time.monotonic() < made + 30:
            pending = [b for b in pending if not rx_off(b.pid)]
            if pending:
                time.sleep(0.05)
        protected_after = time.monotonic() - made
        cpu = cpu_seconds(guard.pid) - cpu0
        wall = time.monotonic() - start
        status = json.loads((state / "guard.json").read_text())
        return {
            "cpu_share": cpu / wall,
            "protected_after": protected_after,
            "passes": status["passes"],
            "protected": len(containers) - len(pending),
            "made": len(containers),
        }
    finally:
        guard.send_signal(signal.SIGTERM)
        guard.wait(timeout=10)
        for box in containers:
            box.kill()
        for box in containers:
            box.wait()
        for n in range(len(containers)):
            netlink.delete_link(f"{HOST_PREFIX}{n}")  # gone with its peer's namespace, mostly already


def one_run(lab: str, veths: int, seconds: float) -> dict:
    """A lab of one host, the storm inside it, the lab gone."""
    badsum("lab", "down", "--lab", lab)
    with tempfile.TemporaryDirectory(prefix="badsum-bench-guard-") as inventory:
        badsum("lab", "up", "--lab", lab, "--hosts", "1", "--write-inventory", inventory)
        try:
            kit = STATE_ROOT / lab / "lib" / "bin" / "badsum-host.pyz"
            kit.parent.mkdir(parents=True, exist_ok=True)
            kit.write_bytes(hostkit.build())
            state = STATE_ROOT / lab / "lib" / "remediation" / "bench"
            inner = [sys.executable, str(Path(__file__).resolve()), "--inside", str(kit), str(state)]
            inner += ["--veths", str(veths), "--seconds", str(seconds)]
            argv, join = enter.command(lab, "host1", inner)
            run = subprocess.run(argv, preexec_fn=join, capture_output=True, text=True, check=False, timeout=900)
            if run.returncode != 0:
                raise SystemExit(f"the storm failed: {run.stderr.strip()[-2000:]}")
            return json.loads(run.stdout.strip().splitlines()[-1])
        finally:
            badsum("lab", "down", "--lab", lab)


def badsum(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "badsum", *args], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"`badsum {' '.join(args)}` failed: {proc.stderr.strip() or proc.stdout.strip()}")


def summary(values: list[float], fmt: str) -> str:
    median, low, high = (fmt.format(v) for v in (statistics.median(values), min(values), max(values)))
    return f"median {median} (min {low}, max {high})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--veths", type=int, default=1000, help="containers made during the storm (1-5000)")
    ap.add_argument("--seconds", type=float, default=10.0, help="how long the storm lasts (1-600)")
    ap.add_argument("--runs", type=int, default=3, help="runs (1-50)")
    ap.add_argument("--lab", default="bguard", help="the id of the bench's own lab of one host")
    ap.add_argument("--inside", nargs=2, metavar=("KIT", "STATE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inside:  # this process runs on the lab's host: one storm
        print(json.dumps(storm(args.veths, args.seconds, Path(args.inside[0]), Path(args.inside[1]))))
        return 0
    problems = []
    if not 1 <= args.veths <= 5000:
        problems.append(f"--veths {args.veths}: allowed 1-5000")
    if not 1 <= args.seconds <= 600:
        problems.append(f"--seconds {args.seconds:g}: allowed 1-600")
    if not 1 <= args.runs <= 50:
        problems.append(f"--runs {args.runs}: allowed 1-50")
    try:
        validate_lab_id(args.lab)
    except Exception as exc:
        problems.append(str(exc))
    if os.geteuid() != 0:
        problems.append("root only: the guard and the containers need it")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    results = []
    for run in range(1, args.runs + 1):
        r = one_run(args.lab, args.veths, args.seconds)
        results.append(r)
        print(
            f"run {run}: {r['made']} containers in {args.seconds:g} s, guard CPU {100 * r['cpu_share']:.1f} % "
            f"of a core, {r['passes']} passes, all protected {r['protected_after']:.2f} s after the last "
            f"({r['protected']}/{r['made']})",
            flush=True,
        )
        if r["protected"] != r["made"]:
            print(f"FAILED: {r['made'] - r['protected']} veths kept rx on", file=sys.stderr)
            return 1
    print(f"\nguard under {args.veths} new containers in {args.seconds:g} s, {args.runs} runs:")
    print("  CPU (share of one core):    " + summary([100 * r["cpu_share"] for r in results], "{:.1f} %"))
    print("  last veth protected after:  " + summary([r["protected_after"] for r in results], "{:.2f} s"))
    print("  passes:                     " + summary([r["passes"] for r in results], "{:.0f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
