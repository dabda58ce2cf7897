"""RX checksum offload of container veths: the workaround Twitter and Mesos deployed.

    offload show --veth NETNS:IFNAME [...]                 driver and rx-checksumming of each
    offload set  --veth NETNS:IFNAME [...] --rx off|on [--check]

NETNS is a namespace path (/run/netns/x, /proc/PID/ns/net) or "self". The
side that matters is the container's: veth_xmit() consulted the receiving
device's NETIF_F_RXCSUM (Mesos ran `ethtool -K eth0 rx off` inside the
container). `set` refuses any device whose driver is not veth, so a physical
NIC is never changed, and reads the state back to verify it. With --check it
says what it would change and changes nothing.
"""

from __future__ import annotations

import argparse

from ..shared import net
from ..shared.common import HostError, Parser, in_netns, sh
from .condition import veths

FEATURE = "rx-checksumming"


def describe(netns: str, ifname: str) -> dict:
    if not net.device_exists(ifname, netns):
        raise HostError(f"{ifname} does not exist in {netns}")
    feats = net.features(ifname, netns)
    if FEATURE not in feats:
        raise HostError(f"ethtool shows no {FEATURE} for {ifname} in {netns}")
    return {
        "netns": netns,
        "ifname": ifname,
        "driver": net.driver(ifname, netns),
        "rx": "on" if feats[FEATURE]["on"] else "off",
    }


def show(pairs: list[tuple[str, str]]) -> dict:
    return {"veths": [describe(netns, ifname) for netns, ifname in pairs]}


def set_rx(pairs: list[tuple[str, str]], rx: str, check: bool) -> dict:
    before = [describe(netns, ifname) for netns, ifname in pairs]
    for dev in before:
        if dev["driver"] != "veth":
            raise HostError(
                f"{dev['ifname']} in {dev['netns']} is a {dev['driver'] or 'non-veth'} device, not a veth: "
                "badsum never changes the offloads of a physical NIC"
            )
    todo = [dev for dev in before if dev["rx"] != rx]
    changes = [{**dev, "rx_before": dev["rx"], "rx": rx} for dev in todo]
    if check:
        return {"changed": bool(todo), "changes": changes, "check_mode": True}
    for dev in todo:
        sh(*in_netns(dev["netns"], "ethtool", "--features", dev["ifname"], "rx", rx))
    wrong = [d for d in (describe(n, i) for n, i in pairs) if d["rx"] != rx]
    if wrong:
        raise HostError(f"rx-checksumming is still not {rx} on {', '.join(d['ifname'] for d in wrong)}")
    return {"changed": bool(todo), "changes": changes}


def build_parser() -> Parser:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    s = sub.add_parser("show", help="driver and rx-checksumming of each veth")
    t = sub.add_parser("set", help="set rx-checksumming (veths only)")
    t.add_argument("--rx", choices=["on", "off"], required=True)
    t.add_argument("--check", action="store_true", help="say what would change, change nothing")
    for a in (s, t):
        a.add_argument("--veth", action="append", required=True, help="NETNS_PATH:IFNAME (repeatable)")
    return p


def run(args: argparse.Namespace) -> dict:
    pairs = veths(args.veth)
    if args.action == "show":
        return show(pairs)
    return set_rx(pairs, args.rx, args.check)
