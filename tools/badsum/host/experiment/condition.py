"""A cell's kernel condition, and the emulators behind the emulated ones.

    condition apply  --name vulnerable|workaround|patched --kernel-fixed auto|yes|no [--veth NETNS:IFNAME ...]
    condition stats  --veth NETNS:IFNAME [...]     packets the emulator saw / marked verified
    condition detach --veth NETNS:IFNAME [...]

The 2020 bug (--bug vxlan-nat, on host A: the node whose NAT rewrites the
outer VXLAN packets) takes --iface (host A's NIC), --vxlan-dev and --peer
instead of --veth; see the end of this docstring.

patched is the kernel as it is. vulnerable is the kernel itself where it
lacks the fix ("real"); on a kernel with the fix, the two removed lines of
veth_xmit() are put back by the emulator (shared/programs/vethbug.bpf.c, "emulated") at
tc ingress of the container side of each veth: the `rcv` device whose
NETIF_F_RXCSUM those lines consulted. workaround is vulnerable, plus `rx off`
on those veths (the badsum_workaround role, the way an operator does it).

NETNS is a network namespace path (/run/netns/x or /proc/PID/ns/net).

The 2020 bug (vxlan-nat topology): before ea64d8d6c675 ("netfilter: nat:
never update the UDP checksum when it's 0", Linux 5.7; stable 5.6.13,
5.4.41, 4.19.123, 4.14.181) NAT "updated" the zero outer UDP checksum of a
VXLAN packet whose skb was CHECKSUM_PARTIAL (for the inner TCP), and the
receiving node dropped it. patched is the kernel as it is; vulnerable is the
kernel itself where it lacks the fix, else the unfixed udp_manip_pkt()
emulated by shared/programs/vxlannat.bpf.c at tc egress of host A's NIC
(after NAT), armed for --seconds and inert after them, touching only the
cell's own outer packets (UDP to the overlay's port, from --vxlan-dev's local
address to --peer, with --vxlan-dev's VNI: a host's own overlay on the same
port is left alone); workaround is vulnerable plus `ethtool -K <vxlan device>
tx-checksum-ip-generic off`, the workaround flannel's and Calico's users
applied. `stats` adds what A's conntrack says: how many outer flows NAT
rewrote (the hazard exercised or not).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import struct
import time

from ..shared import bpf, kernels, net
from ..shared.common import HostError, Parser, sh

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


# -- the 2020 bug: NAT and a zero outer UDP checksum ------------------------------------------

VX_PREF = 17
VX_PROGRAM = "badsum_vxlannat"
VX_CFG = struct.Struct("<QH2xI4s4s")  # struct bs_vx_cfg: expire_ns (CLOCK_MONOTONIC), port, VNI, saddr, daddr
VX_EVENT = struct.Struct("<QIIHHH10x")  # struct bs_vx_event (32 bytes): ns, old/new saddr, old/new sport, written
VX_STATS = ("tunnel", "zero_csum", "partial", "natted", "rewritten", "expired", "not_partial", "other")
VX_MAX_SECONDS = 3600
HW_CSUM = "tx-checksum-ip-generic"
# The ctmark the vxlan-nat topology puts on the cell's outer flows (topology/vxlan_nat.py MARK): the flows
# counted are the cell's, not those of an overlay the host has of its own to the same peer and port.
CELL_CT_MARK = "0x3000/0x3000"


def nat_fix(release: str) -> bool:
    """Whether the kernel has ea64d8d6c675: the fleet's release table (mainline 5.7 and the stable backports
    5.6.13, 5.4.41, 4.19.123, 4.14.181), one place for both. A distribution kernel older than 5.7 is unknown
    there, so not fixed here: say badsum_experiment_kernel_fixed=yes for one that carries it."""
    return kernels.has_nat_fix(release)


def overlay_scope(vxlan_dev: str, port: int, peer: str) -> dict:
    """What the emulator may touch: the cell's device's VNI and local address, its port, the peer's address."""
    links = net.ip_json("-d", "link", "show", "dev", vxlan_dev)
    info = ((links[0].get("linkinfo") or {}) if links else {}).get("info_data") or {}
    if not links or (links[0].get("linkinfo") or {}).get("info_kind") != "vxlan" or "id" not in info:
        raise HostError(f"{vxlan_dev} is not a vxlan device here: the emulator is scoped by its VNI")
    if info.get("port", port) != port:
        raise HostError(f"{vxlan_dev} sends to port {info.get('port')}, not the overlay's {port}")
    try:
        saddr, daddr = ipaddress.IPv4Address(info.get("local", "")), ipaddress.IPv4Address(peer)
    except ValueError:
        raise HostError(f"the emulator needs {vxlan_dev}'s IPv4 local address and the peer's (--peer): "
                        f"{info.get('local')!r}, {peer!r}") from None  # fmt: skip
    return {"vni": int(info["id"]), "saddr": str(saddr), "daddr": str(daddr), "port": port}


def apply_vxlannat(
    name: str, kernel_fixed: str, iface: str, vxlan_dev: str, port: int, seconds: float, peer: str
) -> dict:
    release = os.uname().release
    has_fix = nat_fix(release) if kernel_fixed == "auto" else kernel_fixed == "yes"
    emulate = name in ("vulnerable", "workaround") and has_fix
    scope = overlay_scope(vxlan_dev, port, peer) if emulate else {}
    changed = attach_vxlannat(iface, scope, seconds)["changed"] if emulate else False
    if name == "workaround":
        # what the operators did (flannel's docs, Calico's ChecksumOffloadBroken): the stack then
        # finishes the inner checksum before vxlan, the skb is no longer CHECKSUM_PARTIAL
        sh("ethtool", "-K", vxlan_dev, HW_CSUM, "off")
        changed = True
    feature = net.features(vxlan_dev).get(HW_CSUM, {}).get("on")
    return {
        "changed": changed,
        "name": name,
        "bug": "vxlan-nat",
        "kind": "emulated" if emulate else "real",
        "kernel": release,
        "kernel_has_fix": has_fix,
        "emulated_on": iface if emulate else "",
        "emulator_scope": scope,
        "vxlan_dev": vxlan_dev,
        HW_CSUM: "on" if feature else "off",
    }


def attach_vxlannat(iface: str, scope: dict, seconds: float) -> dict:
    """The emulator on iface's egress, touching only the scope's packets (overlay_scope: VNI, addresses, port)."""
    if not 0 < seconds <= VX_MAX_SECONDS:
        raise HostError(f"--seconds must be in (0, {VX_MAX_SECONDS}], got {seconds:g}")
    obj = bpf.object_path("vxlannat")
    if not obj.exists():
        raise HostError(f"the emulator {obj} is not built: run the condition role's build (prepare.yml does)")
    net.ensure_clsact(iface)
    net.attach_bpf(iface, "egress", VX_PREF, str(obj))
    maps = net.attached_maps(net.filters(iface, "egress", VX_PREF))
    if "bs_vx_cfg" not in maps:
        net.delete_filter(iface, "egress", VX_PREF)
        raise HostError(f"the emulator on {iface} has no configuration map: {sorted(maps)}")
    # armed until a deadline on the program's own clock: inert after it, whatever happens to us
    cfg = VX_CFG.pack(
        time.monotonic_ns() + int(seconds * 1e9),
        scope["port"],
        scope["vni"],
        ipaddress.IPv4Address(scope["saddr"]).packed,
        ipaddress.IPv4Address(scope["daddr"]).packed,
    )
    sh("bpftool", "map", "update", "id", str(maps["bs_vx_cfg"]), "key", "hex", "00", "00", "00", "00",
       "value", "hex", *[f"{b:02x}" for b in cfg])  # fmt: skip
    return {"changed": True}


def outer_flows(peer: str, port: int) -> dict:
    """Host A's outer flows of the cell (its ctmark) to the peer's VXLAN port, from conntrack: how many NAT rewrote."""
    if not peer:
        return {}
    out = sh("conntrack", "-L", "-p", "udp", "--orig-dst", peer, "--orig-port-dst", str(port), "--mark", CELL_CT_MARK,
             check=False).stdout  # fmt: skip
    flows, rewritten = 0, []
    for line in out.splitlines():
        words = [f.split("=", 1) for f in line.split() if "=" in f]
        sports = [v for k, v in words if k == "sport"]
        dports = [v for k, v in words if k == "dport"]
        srcs = [v for k, v in words if k == "src"]
        dsts = [v for k, v in words if k == "dst"]
        if len(sports) < 2 or len(srcs) < 2:
            continue
        flows += 1
        # reply tuple's destination is the original source after NAT
        if (srcs[0], sports[0]) != (dsts[1], dports[1]):
            rewritten.append(f"{srcs[0]}:{sports[0]} -> {dsts[1]}:{dports[1]}")
    return {"outer_flows": flows, "outer_flows_natted": len(rewritten), "natted_sample": rewritten[:5]}


def stats_vxlannat(iface: str, peer: str, port: int) -> dict:
    result: dict = {"bug": "vxlan-nat", **outer_flows(peer, port)}
    maps = net.attached_maps(net.filters(iface, "egress", VX_PREF)) if iface else {}
    if not maps:
        return {**result, "emulator_attached": False}
    counts = [struct.unpack("<Q", v)[0] for v in net.map_values(maps["bs_vx_stats"])]
    expire, _port, vni, _saddr, _daddr = VX_CFG.unpack(net.map_values(maps["bs_vx_cfg"])[0])
    events = []
    for raw in net.map_values(maps["bs_vx_events"]):
        ns, _osrc, _nsrc, osport, nsport, written = VX_EVENT.unpack(raw)
        if ns:  # ports and checksum as on the wire (network order)
            events.append({"ns": ns, "sport": f"{int.from_bytes(osport.to_bytes(2, 'little'), 'big')}->"
                           f"{int.from_bytes(nsport.to_bytes(2, 'little'), 'big')}",
                           "written": "0x" + written.to_bytes(2, "little").hex()})  # fmt: skip
    events.sort(key=lambda e: e["ns"])
    return {
        **result,
        "emulator_attached": True,
        "armed": expire > time.monotonic_ns(),
        "vni": vni,
        "counts": dict(zip(VX_STATS, counts, strict=False)),
        "last_rewrites": events[-5:],
    }


def detach_vxlannat(iface: str) -> dict:
    changed = net.delete_filter(iface, "egress", VX_PREF)
    if changed:
        net.release_clsact(iface)
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
    a.add_argument("--vxlan-dev", default="", help="vxlan-nat: host A's vxlan device (the workaround's)")
    a.add_argument("--seconds", type=float, default=120, help="vxlan-nat: the emulator's life, armed")
    for name in ("stats", "detach"):
        sub.add_parser(name, help=f"{name} the emulator").add_argument(
            "--veth", action="append", default=[], help="NETNS_PATH:IFNAME (repeatable)"
        )
    for action in sub.choices.values():
        action.add_argument("--bug", choices=["veth", "vxlan-nat"], default="veth", help="which incident's bug")
        action.add_argument("--iface", default="", help="vxlan-nat: host A's NIC, where the emulator sits")
        action.add_argument("--peer", default="", help="vxlan-nat: host B's address (its outer flows)")
        action.add_argument("--tunnel-port", type=int, default=8472, help="vxlan-nat: the overlay's UDP port")
    return p


def run(args: argparse.Namespace) -> dict:
    if args.bug == "vxlan-nat":
        if not args.iface:
            raise HostError("--bug vxlan-nat needs --iface (host A's NIC)")
        if args.action == "apply":
            if not args.vxlan_dev or not args.peer:
                raise HostError("--bug vxlan-nat needs --vxlan-dev and --peer (the emulator's scope)")
            return apply_vxlannat(args.name, args.kernel_fixed, args.iface, args.vxlan_dev, args.tunnel_port,
                                  args.seconds, args.peer)  # fmt: skip
        if args.action == "stats":
            return stats_vxlannat(args.iface, args.peer, args.tunnel_port)
        return detach_vxlannat(args.iface)
    if args.action != "apply" and not args.veth:
        raise HostError(f"condition {args.action} needs --veth NETNS_PATH:IFNAME")
    pairs = veths(args.veth)
    if args.action == "apply":
        return apply(args.name, args.kernel_fixed, pairs)
    return {"stats": stats, "detach": detach}[args.action](pairs)
