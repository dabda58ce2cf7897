"""A cell's kernel condition on host B, and the veth-bug emulator behind the emulated one.

    condition apply  --name vulnerable|workaround|patched --kernel-fixed auto|yes|no [--veth NETNS:IFNAME ...]
    condition stats  --veth NETNS:IFNAME [...]     packets the emulator saw / marked verified
    condition detach --veth NETNS:IFNAME [...]

patched is the kernel as it is. vulnerable is the kernel itself where it
lacks the fix ("real"); on a kernel with the fix, the two removed lines of
veth_xmit() are put back by the emulator (shared/programs/vethbug.bpf.c, "emulated") at
tc ingress of the container side of each veth: the `rcv` device whose
NETIF_F_RXCSUM those lines consulted. workaround is vulnerable, plus `rx off`
on those veths (the badsum_workaround role, the way an operator does it).

NETNS is a network namespace path (/run/netns/x or /proc/PID/ns/net).
"""

from __future__ import annotations

import argparse
import os
import struct

from ..shared import bpf, kernels, net
from ..shared.common import HostError, Parser

PREF = 7
STATS_MAP = "bs_vb_stats"
PROGRAM = "badsum_vethbug"


def veths(specs: list[str]) -> list[tuple[str, str]]:
    out = []
    for spec in specs:
        netns, _, ifname = spec.rpartition(":")
        if not netns or not ifname:
            raise HostError(f"bad --veth {spec!r}: want NETNS_PATH:IFNAME")
        out.append((netns, ifname))
    return out


def apply(name: str, kernel_fixed: str, pairs: list[tuple[str, str]]) -> dict:
    release = os.uname().release
    has_fix = kernels.has_fix(release) if kernel_fixed == "auto" else kernel_fixed == "yes"
    emulate = name in ("vulnerable", "workaround") and has_fix
    changed = attach(pairs)["changed"] if emulate and pairs else False
    return {
        "changed": changed,
        "name": name,
        "kind": "emulated" if emulate else "real",
        "kernel": release,
        "kernel_has_fix": has_fix,
        "emulated_veths": len(pairs) if emulate else 0,
    }


def attach(pairs: list[tuple[str, str]]) -> dict:
    obj = bpf.object_path("vethbug")
    if not obj.exists():
        raise HostError(f"the emulator {obj} is not built: run the condition role's build (prepare.yml does)")
    changed = False
    for netns, ifname in pairs:
        if PROGRAM in net.filters(ifname, "ingress", PREF, netns):
            continue
        net.ensure_clsact(ifname, netns)
        net.attach_bpf(ifname, "ingress", PREF, str(obj), netns)
        changed = True
    return {"changed": changed}


def stats(pairs: list[tuple[str, str]]) -> dict:
    seen = marked = 0
    attached = 0
    for netns, ifname in pairs:
        map_id = net.attached_maps(net.filters(ifname, "ingress", PREF, netns)).get(STATS_MAP)
        if map_id is None:
            continue
        attached += 1
        values = [struct.unpack("<Q", v)[0] for v in net.map_values(map_id)]
        seen += values[0]
        marked += values[1]
    if attached < len(pairs):
        raise HostError(f"the emulator is attached to {attached} of {len(pairs)} veths: its counts are incomplete")
    return {"packets_seen": seen, "packets_marked_verified": marked}


def detach(pairs: list[tuple[str, str]]) -> dict:
    changed = False
    for netns, ifname in pairs:
        changed |= net.delete_filter(ifname, "ingress", PREF, netns)
    return {"changed": changed}


def build_parser() -> Parser:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    a = sub.add_parser("apply", help="put the host in a condition (attach the emulator where it is emulated)")
    a.add_argument("--name", choices=["vulnerable", "workaround", "patched"], required=True)
    a.add_argument(
        "--kernel-fixed",
        choices=["auto", "yes", "no"],
        required=True,
        help="does this kernel have the fix (auto: from its release)",
    )
    a.add_argument("--veth", action="append", default=[], help="NETNS_PATH:IFNAME (repeatable)")
    for name in ("stats", "detach"):
        sub.add_parser(name, help=f"{name} the emulator").add_argument(
            "--veth", action="append", required=True, help="NETNS_PATH:IFNAME (repeatable)"
        )
    return p


def run(args: argparse.Namespace) -> dict:
    pairs = veths(args.veth)
    if args.action == "apply":
        return apply(args.name, args.kernel_fixed, pairs)
    return {"stats": stats, "detach": detach}[args.action](pairs)
