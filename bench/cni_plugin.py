"""How long badsum-rx-off's ADD takes, chained after the real bridge plugin, under each injected fault.

    flock /run/badsum-dev.lock .venv/bin/python bench/cni_plugin.py [--calls 200] [--faults NAME ...]

For each fault (tests/faults/cnichain.py: ethtool or nsenter absent, ethtool
failing or hanging 60 s, python3 absent, hanging, exiting 1 or printing
garbage; and nothing broken), CALLS pod starts through a runtime-shaped caller
(bridge + host-local, then badsum-rx-off; DEL after each), in scratch network
namespaces that are removed afterwards. Prints badsum-rx-off's own latency per
fault: min, p50, p99, max, and how many calls did not return the previous
result. The issue's bar: p99 <= 1 s under every fault. Exit 1 when a fault
misses it or a call failed. Root only.
"""

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # the package, before any installed one
sys.path.insert(0, str(ROOT / "tests" / "faults"))

import cnichain  # noqa: E402

from badsum.host.fleet import cni  # noqa: E402

BAR = 1.0


def parse(argv: "list[str]") -> argparse.Namespace:
    known = list(cnichain.faults())
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=200, help="ADD calls per fault (1-10000; default 200)")
    p.add_argument("--faults", nargs="+", default=known, metavar="NAME", help=f"default all: {', '.join(known)}")
    args = p.parse_args(argv)
    if not 1 <= args.calls <= 10000:
        p.error(f"--calls={args.calls}: a number of calls from 1 to 10000")
    unknown = [f for f in args.faults if f not in known]
    if unknown:
        p.error(f"--faults: {', '.join(map(repr, unknown))} unknown; known: {', '.join(map(repr, known))}")
    if os.geteuid() != 0:
        p.error("run as root: the bench makes network namespaces and bind mounts")
    if not (cnichain.CNI_BIN / "bridge").exists():
        p.error(f"{cnichain.CNI_BIN}/bridge is missing: install containernetworking-plugins (make deps)")
    return args


def rank(sorted_values: "list[float]", q: float) -> float:
    """The nearest-rank percentile."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def run_fault(name: str, calls: int, work: Path) -> "tuple[list[float], int]":
    fault = cnichain.faults()[name]
    bins = cnichain.bin_dir(work / "bin", cni.plugin_source())
    (work / "logs").mkdir(mode=0o755)
    bridge = {"type": "bridge", "bridge": "bsbr0", "isGateway": True, "ipam": cnichain.ipam(work / "ipam")}
    chain = cnichain.Chain("bsbench", "1.0.0", [bridge, cnichain.badsum_entry(work / "logs" / "rx.jsonl")], bins)
    mounts = {cnichain.PLUGIN: fault.mounts(work / "fault")}
    seconds, bad = [], 0
    with cnichain.Namespaces() as ns:
        for i in range(calls):
            steps = chain.add(ns, b"eth0", f"bench-{i}", mounts=mounts)
            last = steps[-1]
            if last.plugin != cnichain.PLUGIN:
                raise SystemExit(f"{name}: the bridge plugin failed, not badsum-rx-off: {last.call}")
            seconds.append(last.call.seconds)
            try:
                ok = last.call.rc == 0 and last.call.json() == {**last.conf["prevResult"], "cniVersion": "1.0.0"}
            except ValueError:
                ok = False
            bad += not ok
            chain.delete(ns, b"eth0", f"bench-{i}", last.conf["prevResult"])
            fault.end_escaped()
    if fault.leftovers():
        raise SystemExit(f"{name}: processes of the fault outlived the calls: {fault.leftovers()}")
    return seconds, bad


def main(argv: "list[str]") -> int:
    args = parse(argv)
    print(
        f"badsum-rx-off ADD after bridge + host-local, {args.calls} calls per fault; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )
    print(f"{'fault':<34} {'min':>7} {'p50':>7} {'p99':>7} {'max':>7}  failed  (seconds)")
    missed = False
    started = time.monotonic()
    for name in args.faults:
        with tempfile.TemporaryDirectory(prefix="bscni-bench-") as tmp:
            seconds, bad = run_fault(name, args.calls, Path(tmp))
        s = sorted(seconds)
        p99 = rank(s, 0.99)
        missed = missed or p99 > BAR or bad > 0
        print(f"{name:<34} {s[0]:7.3f} {rank(s, 0.5):7.3f} {p99:7.3f} {s[-1]:7.3f}  {bad:>6}", flush=True)
    print(
        f"load average {os.getloadavg()[0]:.2f} at the end, {time.monotonic() - started:.0f} s in all; "
        f"bar: p99 <= {BAR:g} s under every fault: {'MISSED' if missed else 'met'}"
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
