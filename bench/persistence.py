#!/usr/bin/env python3
"""Measurement: would a udev rule or a systemd .link file keep new container veths at rx off?

The fleet's persistence is the guard and the chained CNI plugin; udev was the
obvious alternative (the issue's facts). This boots a VM lab (real Debian
userspace, real systemd-udevd, the lab kernel) and, on host1, for each
mechanism in turn - the rule

    ACTION=="add", SUBSYSTEM=="net", ENV{ID_NET_DRIVER}=="veth", RUN+="/usr/sbin/ethtool -K %k rx off"

and the .link file ([Match] Driver=veth, [Link] ReceiveChecksumOffload=false,
sorted before 99-default.link) - makes --trials veth pairs each of three ways,
lets udev settle, and counts the container ends left at rx off:

    kept     the pair made and left in the host namespace (does the mechanism work at all?)
    docker   made in the host namespace, one end moved into a container's at once
             (Docker, Mesos; `ip -batch`: both steps from one process, as a runtime's netlink calls)
    cni      made inside the container's namespace, the host end moved out (the CNI bridge plugin)

Prints protected/trials per way and mechanism. Needs `make kernels`. Root only.

    .venv/bin/python bench/persistence.py [--trials 20] [--kernel unfixed|fixed] [--lab vmpst]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # the package, before any installed one

from badsum.lab.spec import LabError, validate_lab_id  # noqa: E402
from badsum.vm import boot, provider  # noqa: E402
from badsum.vm.spec import VmLabSpec  # noqa: E402

# The two mechanisms as the facts give them: the file on the guest, its content.
MECHANISMS = {
    # after 80-net-setup-link.rules, which sets ID_NET_DRIVER
    "udev rule": (
        "/etc/udev/rules.d/81-badsum-rx-off.rules",
        'ACTION=="add", SUBSYSTEM=="net", ENV{ID_NET_DRIVER}=="veth", RUN+="/usr/sbin/ethtool -K %k rx off"\n',
    ),
    # only the first matching .link file applies: before 99-default.link
    ".link file": (
        "/etc/systemd/network/10-badsum-veth.link",
        "[Match]\nDriver=veth\n\n[Link]\nReceiveChecksumOffload=false\n",
    ),
}

# Runs on the guest (python3 -), as root: argv = path, content, trials. Prints one JSON line.
GUEST = r"""
import json, os, subprocess, sys, time
path, content, trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
NS = "bspst"

def sh(*cmd, stdin=None, check=True):
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=check, timeout=30)

def rx_off(ifname, netns=None):
    cmd = (["ip", "netns", "exec", netns] if netns else []) + ["ethtool", "-k", ifname]
    out = sh(*cmd, check=False).stdout
    return "rx-checksumming: off" in out

os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path, "w") as f:
    f.write(content)
udevd = subprocess.Popen(["/lib/systemd/systemd-udevd"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    deadline = time.monotonic() + 10
    while sh("udevadm", "control", "--ping", check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise SystemExit("systemd-udevd did not answer within 10 s")
        time.sleep(0.1)
    sh("ip", "netns", "add", NS)
    counts = {"kept": 0, "docker": 0, "cni": 0}
    for i in range(trials):
        sh("ip", "link", "add", f"pk{i}", "type", "veth", "peer", "name", f"pkc{i}")
        sh("ip", "-batch", "-", stdin=f"link add pd{i} type veth peer name pdc{i}\nlink set pdc{i} netns {NS}\n")
        sh("ip", "-n", NS, "-batch", "-", stdin=f"link add pcc{i} type veth peer name pc{i}\nlink set pc{i} netns 1\n")
        sh("udevadm", "settle", "--timeout=10")
        counts["kept"] += rx_off(f"pkc{i}")
        counts["docker"] += rx_off(f"pdc{i}", NS)
        counts["cni"] += rx_off(f"pcc{i}", NS)
        for name in (f"pk{i}", f"pd{i}", f"pc{i}"):
            sh("ip", "link", "del", name, check=False)
    print(json.dumps({"trials": trials, "protected": counts,
                      "udev": sh("udevadm", "--version").stdout.strip()}))
finally:
    udevd.kill()
    udevd.wait()
    sh("ip", "netns", "del", NS, check=False)
    os.unlink(path)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--kernel", choices=["unfixed", "fixed"], default="unfixed")
    parser.add_argument("--lab", default="vmpst", help="a lab id of the measurement's own")
    args = parser.parse_args()
    if not 1 <= args.trials <= 500:
        parser.error(f"--trials {args.trials}: allowed: 1 to 500 veth pairs per way")
    try:
        validate_lab_id(args.lab)
    except LabError as exc:
        parser.error(f"--lab: {exc}")
    provider.down(args.lab)  # what an earlier, killed measurement left
    with tempfile.TemporaryDirectory(prefix="badsum-persistence-") as tmp:
        inventory = Path(tmp) / "inventory"
        try:
            provider.up(args.lab, args.kernel, inventory)
            state = provider.store().load(args.lab)
            assert state, "the VM lab left no state"
            node = VmLabSpec(args.lab, state["hosts"], state["slot"]).host(1)
            rows = []
            for mechanism, (path, content) in MECHANISMS.items():
                command = ["python3", "-", path, shlex.quote(content), str(args.trials)]
                proc = subprocess.run(
                    boot.ssh_argv(inventory, node.mgmt_v4, *command),
                    input=GUEST,
                    capture_output=True,
                    text=True,
                    timeout=1200,
                    check=False,
                )
                if proc.returncode != 0:
                    raise SystemExit(f"the {mechanism} measurement failed: {proc.stderr[-2000:]}")
                rows.append({"mechanism": mechanism, **json.loads(proc.stdout.strip().splitlines()[-1])})
        finally:
            provider.down(args.lab)
    n = args.trials
    print(f"kernel {args.kernel}, systemd-udevd {rows[0]['udev']}, {n} veth pairs per way")
    print(f"{'':<11} {'kept on the host':>17} {'docker/mesos':>13} {'cni bridge':>11}   (container end at rx off)")
    for row in rows:
        p = row["protected"]
        print(f"{row['mechanism']:<11} {p['kept']:>11}/{n:<5} {p['docker']:>7}/{n:<5} {p['cni']:>5}/{n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
