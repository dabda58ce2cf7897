#!/usr/bin/env python3
"""Attach, read or detach the veth-bug emulator on container veths (host kit).

    condition attach --obj FILE --veth NETNS:IFNAME [--veth ...]
    condition stats  --veth NETNS:IFNAME [...]      packets seen / marked verified
    condition detach --veth NETNS:IFNAME [...]

NETNS is a network namespace path (/run/netns/x or /proc/PID/ns/net). The
emulator sits at tc ingress of the container side of the veth (the `rcv`
device of veth_xmit). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

try:
    from badsum import hostnet as hn
except ImportError:  # inside the host kit
    import hostnet as hn  # type: ignore[no-redef]

PREF = 7
STATS_MAP = "bs_vb_stats"


def _in(netns: str, *cmd: str, check: bool = True):
    return hn.sh("nsenter", f"--net={netns}", *cmd, check=check)


def _veths(specs: list[str]) -> list[tuple[str, str]]:
    out = []
    for spec in specs:
        netns, _, ifname = spec.rpartition(":")
        if not netns or not ifname:
            raise hn.HostError(f"bad --veth {spec!r}: want NETNS_PATH:IFNAME")
        out.append((netns, ifname))
    return out


def _attached(netns: str, ifname: str) -> str:
    return _in(netns, "tc", "filter", "show", "dev", ifname, "ingress", "pref", str(PREF), check=False).stdout


def attach(obj: str, veths: list[tuple[str, str]]) -> dict:
    if not Path(obj).exists():
        raise hn.HostError(f"{obj} is missing: build the emulator first (playbooks/prepare.yml does)")
    changed = False
    for netns, ifname in veths:
        if "badsum_vethbug" in _attached(netns, ifname):
            continue
        if "clsact" not in _in(netns, "tc", "qdisc", "show", "dev", ifname).stdout:
            _in(netns, "tc", "qdisc", "add", "dev", ifname, "clsact")
        _in(netns, "tc", "filter", "add", "dev", ifname, "ingress", "pref", str(PREF),
            "bpf", "da", "obj", obj, "sec", "tc")  # fmt: skip
        changed = True
    return {"changed": changed}


def stats(veths: list[tuple[str, str]]) -> dict:
    seen = marked = 0
    for netns, ifname in veths:
        map_id = hn.attached_maps(_attached(netns, ifname)).get(STATS_MAP)
        if map_id is None:
            continue
        values = [struct.unpack("<Q", v)[0] for v in hn.map_values(map_id)]
        seen += values[0]
        marked += values[1]
    return {"changed": False, "packets_seen": seen, "packets_marked_verified": marked}


def detach(veths: list[tuple[str, str]]) -> dict:
    changed = False
    for netns, ifname in veths:
        if "badsum_vethbug" in _attached(netns, ifname):
            _in(netns, "tc", "filter", "del", "dev", ifname, "ingress", "pref", str(PREF), check=False)
            changed = True
    return {"changed": changed}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["attach", "stats", "detach"])
    p.add_argument("--obj", default="/var/lib/badsum/badsum_vethbug.bpf.o")
    p.add_argument("--veth", action="append", default=[], help="NETNS_PATH:IFNAME (repeatable)")
    a = p.parse_args()
    actions = {"attach": lambda v: attach(a.obj, v), "stats": stats, "detach": detach}
    return hn.report("condition", lambda: actions[a.action](_veths(a.veth)))


if __name__ == "__main__":
    sys.exit(main())
