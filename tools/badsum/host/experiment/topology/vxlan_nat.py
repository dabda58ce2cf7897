"""A flannel-style VXLAN overlay with kube-proxy's masquerade, as in the 2020 incident.

kubernetes#88986, flannel#1279, calico#3145: a node (host A) connects to a
ClusterIP whose pod runs on another node (host B), across a VXLAN overlay.
Both ends are built the way flannel's vxlan backend builds them
(pkg/backend/vxlan/device.go, vxlan_network.go): a vxlan device, on UDP
port 8472, no learning, the outer UDP checksum 0 (`noudpcsum`, what a
device made without IFLA_VXLAN_UDP_CSUM was on the 2020 kernels), its
address a /32, and for the other node a permanent neighbour entry, a
permanent FDB entry and an onlink route to its pod subnet. On host A,
kube-proxy's rules before kubernetes#92035: service traffic is marked and
marked packets are masqueraded with --random-fully; the mark is still on the
skb when the vxlan device sends it again as the outer UDP packet, so the
outer packet is masqueraded too - which is what let the unfixed kernel's NAT
"update" a checksum of 0.

Everything is the cell's own, so that it can run on a host with an overlay
and a kube-proxy of its own (the fleet's canary, a production node):

- the VNI is badsum's (0xb5b5b5), not flannel's 1 or Calico's 4096: the
  kernel takes a second vxlan device on port 8472 beside flannel.1 (one UDP
  socket, demultiplexed by VNI) but refuses a second VNI 1 there, and a
  collect-metadata device on the port (Cilium's) refuses ours altogether;
- the mark is badsum's (0x3000), not kube-proxy's 0x4000: the host's own
  KUBE-POSTROUTING neither masquerades the cell's packets nor (after
  kubernetes#92035) clears their mark, and the cell's MASQUERADE never sees
  the host's marked packets; the cell's outer flows carry it in conntrack
  too (CONNMARK), so that only they are counted and flushed;
- the jumps into OUTPUT and POSTROUTING carry badsum's comment and are the
  only change outside badsum's chains; nothing else of the firewall is
  snapshotted or restored (a restore would undo what the host's kube-proxy
  wrote meanwhile);
- no route is replaced: a route of the host's within the pod CIDR, or an
  overlay's route covering it, makes `up` refuse instead.

    side server (host B): the overlay's end, and the pod (a network namespace
                          behind a bridge and a veth, as the CNI bridge plugin makes it)
    side client (host A): the overlay's end, the route to the ClusterIP and the
                          kube-proxy-shaped rules in badsum's own nat chains

The pair's pod CIDR (a /29 or larger) is split: its first /30 is host B's
pod subnet, its second /30 host A's; the ClusterIP is in the second. Every
name is badsum's own (bsflannel.1, bscni0, BADSUM-KUBE-*), the masquerade
matches only traffic to the pod subnet and to host B's VXLAN port, and
`down` removes what `up` made on either side, the firewall and forwarding
put back as they were found.
"""

from __future__ import annotations

import ipaddress
import json

from ...shared import net as hn
from ...shared.common import STATE, HostError, atomic_write, sh
from .. import firewall

OPTIONS = {
    "address": "host B's data IPv4 address",
    "iface": "host B's data interface",
    "client_address": "host A's data IPv4 address (the other end of the overlay)",
    "client_iface": "host A's data interface",
    "pod_cidr": "the pair's pod CIDR (a /29 or larger: host B's pod subnet, host A's, the ClusterIP)",
    "side": "server (host B, the default) or client (host A): which end to wire",
}
NEEDS = ("address", "iface", "client_address", "client_iface", "pod_cidr")

DEVICE = "bsflannel.1"  # flannel's flannel.<VNI>, under a name of badsum's
VNI = 0xB5B5B5  # badsum's: no overlay's default (flannel 1, Calico 4096; Cilium's device takes every VNI)
VXLAN_PORT = 8472  # the kernel's default vxlan port, which flannel uses
NETNS = "badsum-vxpod"
BRIDGE = "bscni0"
HOST_VETH = "bsvxveth0"
# The cell's masquerade mark: kube-proxy's rule shape with bits of badsum's own (kube-proxy uses 0x4000 and
# 0x8000, Cilium 0x0f00 and the upper half, Calico the upper half, Istio 0x539): also its outer flows' ctmark.
MARK = "0x3000/0x3000"
COMMENT = ["-m", "comment", "--comment", "badsum vxlan-nat cell"]
CHAINS = ("BADSUM-KUBE-SERVICES", "BADSUM-KUBE-MARK-MASQ", "BADSUM-KUBE-SEP", "BADSUM-KUBE-POSTROUTING")
JUMPS = (("OUTPUT", "BADSUM-KUBE-SERVICES"), ("POSTROUTING", "BADSUM-KUBE-POSTROUTING"))
SERVER_FORWARD = STATE / "vxlan-nat-forward.json"
SIDE_STATE = {"server": STATE / "vxlan-nat-server.json", "client": STATE / "vxlan-nat-client.json"}


def plan(o) -> dict:
    """Every address both ends use, from the pair's pod CIDR alone (so each end knows the other's)."""
    try:
        cidr = ipaddress.IPv4Network(o.pod_cidr, strict=False)
        ipaddress.IPv4Address(o.address)
        ipaddress.IPv4Address(o.client_address)
    except ValueError as exc:
        raise HostError(f"vxlan-nat needs IPv4 addresses and a pod CIDR: {exc}") from None
    if cidr.prefixlen > 29:
        raise HostError(f"vxlan-nat needs a pod CIDR of /29 or larger, got {o.pod_cidr}")
    n = cidr.network_address
    return {
        "server_subnet": f"{n}/30",
        "server_vtep": str(n),  # flannel: the subnet's .0 as a /32 on the vxlan device
        "gateway": str(n + 1),
        "pod": str(n + 2),
        "client_subnet": f"{n + 4}/30",
        "client_vtep": str(n + 4),
        "service": str(n + 6),  # the ClusterIP
    }


def vtep_mac(address: str) -> str:
    """A locally administered MAC from the node's address: each end can name the other's."""
    return "02:b5:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(address).packed)


def _mtu(iface: str) -> int:
    link = hn.require_link(iface, "data interface")
    return int(link.get("mtu", 1500))


def _foreign_routes(prefix: str, ours: dict) -> list[str]:
    """The host's routes a cell's route to `prefix` would take over or cut into: any within it that is not
    one of ours (our device and gateway), and any overlay's covering it (a vxlan device's)."""

    def mine(r: dict) -> bool:
        return r.get("dev") == ours.get("dev") and r.get("gateway") == ours.get("gateway")

    found = [r for r in hn.ip_json("route", "show", "root", prefix) if not mine(r)]
    vxlans = {link["ifname"] for link in hn.ip_json("-d", "link", "show", "type", "vxlan")} - {DEVICE}
    found += [r for r in hn.ip_json("route", "show", "match", prefix)
              if r.get("dst") not in ("default", prefix) and r.get("dev") in vxlans]  # fmt: skip
    return [f"{r.get('dst')} dev {r.get('dev')}" + (f" via {r['gateway']}" if r.get("gateway") else "") for r in found]


def _check_routes(*routes: tuple[str, str | None, str]) -> None:
    """Before anything is made: the cell's routes (prefix, gateway, device) must replace none of the host's."""
    for prefix, via, dev in routes:
        clash = _foreign_routes(prefix, {"dev": dev, "gateway": via})
        if clash:
            raise HostError(f"vxlan-nat: the host already routes {prefix} ({'; '.join(clash)}): choose a pod CIDR "
                            "(badsum_pod_cidr) that no route of the host's touches")  # fmt: skip


def _overlay(local: str, iface: str, own_vtep: str, peer: str, peer_vtep: str, peer_subnet: str) -> bool:
    """The vxlan device and flannel's three entries for the other node (idempotent)."""
    changed = False
    if not hn.link_exists(DEVICE):
        sh(
            "ip", "link", "add", DEVICE, "address", vtep_mac(local), "mtu", str(_mtu(iface) - 50), "type", "vxlan",
            "id", str(VNI), "local", local, "dev", iface, "nolearning", "dstport", str(VXLAN_PORT), "noudpcsum",
        )  # fmt: skip
        sh("ip", "addr", "add", f"{own_vtep}/32", "dev", DEVICE)
        sh("ip", "link", "set", DEVICE, "up")
        changed = True
    sh("ip", "neigh", "replace", peer_vtep, "lladdr", vtep_mac(peer), "dev", DEVICE, "nud", "permanent")
    sh("bridge", "fdb", "replace", vtep_mac(peer), "dev", DEVICE, "dst", peer, "self", "permanent")
    sh("ip", "route", "replace", peer_subnet, "via", peer_vtep, "dev", DEVICE, "onlink")  # checked: none of the host's
    return changed


def kube_proxy_rules(p: dict, o) -> list[list[str]]:
    """kube-proxy's shape before kubernetes#92035, in badsum's chains, matching the lab's traffic only."""
    svc = ["-d", f"{p['service']}/32", "-p", "tcp", "--dport", str(o.port)]
    marked = ["-m", "mark", "--mark", MARK]
    masq = [*marked, "-j", "MASQUERADE", "--random-fully"]
    outer = ["-d", f"{o.address}/32", "-p", "udp", "--dport", str(VXLAN_PORT)]
    return [
        ["BADSUM-KUBE-SERVICES", *svc, "-j", "BADSUM-KUBE-MARK-MASQ"],
        ["BADSUM-KUBE-SERVICES", *svc, "-j", "BADSUM-KUBE-SEP"],
        ["BADSUM-KUBE-MARK-MASQ", "-j", "MARK", "--set-xmark", MARK],
        ["BADSUM-KUBE-SEP", "-p", "tcp", "-j", "DNAT", "--to-destination", f"{p['pod']}:{o.port}"],
        # the cell's outer flows, marked in conntrack too: counted and flushed apart from the host's own
        ["BADSUM-KUBE-POSTROUTING", *outer, *marked, "-j", "CONNMARK", "--set-xmark", MARK],
        # kube-proxy's rule matched every marked packet; here only the inner packet to the
        # pod subnet and the outer packet to host B's VXLAN port (the same mark, still on it).
        ["BADSUM-KUBE-POSTROUTING", "-d", p["server_subnet"], *masq],
        ["BADSUM-KUBE-POSTROUTING", *outer, *masq],
    ]


def jump(builtin: str, chain: str) -> list[str]:
    return [builtin, *COMMENT, "-j", chain]


def _flush_outer_flows(peer: str) -> None:
    # Only this cell's outer flows (its ctmark): a cell counts the flows NAT rewrote from a clean table,
    # and the host's own overlay to the same peer and port keeps its flows.
    sh("conntrack", "-D", "-p", "udp", "--orig-dst", peer, "--orig-port-dst", str(VXLAN_PORT), "--mark", MARK,
       check=False)  # fmt: skip


def up_client(o, p: dict) -> dict:
    _check_routes((p["server_subnet"], p["server_vtep"], DEVICE), (f"{p['service']}/32", o.address, o.client_iface))
    changed = _overlay(o.client_address, o.client_iface, p["client_vtep"], o.address, p["server_vtep"],
                        p["server_subnet"])  # fmt: skip
    sh("ip", "route", "replace", f"{p['service']}/32", "via", o.address, "dev", o.client_iface)
    existing = sh("iptables", "-t", "nat", "-S").stdout
    if f"-N {CHAINS[0]}" not in existing:
        for chain in CHAINS:
            sh("iptables", "-t", "nat", "-N", chain)
        for rule in kube_proxy_rules(p, o):
            sh("iptables", "-t", "nat", "-A", *rule)
        for builtin, chain in JUMPS:
            sh("iptables", "-t", "nat", "-A", *jump(builtin, chain))
        changed = True
    _flush_outer_flows(o.address)
    atomic_write(SIDE_STATE["client"], json.dumps({"iface": o.client_iface, "service": p["service"],
                                                   "peer": o.address}))  # fmt: skip
    return {"changed": changed, "device": DEVICE, "service": p["service"], "vtep_mac": vtep_mac(o.client_address)}


def up_server(o, p: dict) -> dict:
    # forwarding on for the pod (a node has it on already); put back at down if it was off
    _check_routes((p["client_subnet"], p["client_vtep"], DEVICE), (p["server_subnet"], None, BRIDGE))
    changed = False
    if not SERVER_FORWARD.exists():
        forward = sh("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip()
        atomic_write(SERVER_FORWARD, json.dumps({"ip_forward": forward}))
        changed = True
    sh("sysctl", "-qw", "net.ipv4.ip_forward=1")
    changed |= _overlay(o.address, o.iface, p["server_vtep"], o.client_address, p["client_vtep"], p["client_subnet"])
    changed |= hn.ensure_netns(NETNS)
    if not hn.link_exists(BRIDGE):
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", f"{p['gateway']}/30", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        changed = True
    if not hn.link_exists("eth0", netns=NETNS):
        sh("ip", "-n", NETNS, "link", "set", "lo", "up")
        sh("ip", "link", "add", HOST_VETH, "type", "veth", "peer", "name", "eth0", "netns", NETNS)
        sh("ip", "link", "set", HOST_VETH, "master", BRIDGE, "up")
        sh("ip", "-n", NETNS, "addr", "add", f"{p['pod']}/30", "dev", "eth0")
        sh("ip", "-n", NETNS, "link", "set", "eth0", "up")
        sh("ip", "-n", NETNS, "route", "add", "default", "via", p["gateway"])
        changed = True
    atomic_write(SIDE_STATE["server"], json.dumps({"iface": o.iface}))
    return {
        "changed": changed,
        "path": (
            f"host A -> ClusterIP {p['service']} (kube-proxy DNAT, MASQUERADE --random-fully) -> {DEVICE} "
            f"(VXLAN {VXLAN_PORT}, outer UDP checksum 0) -> host B {DEVICE} -> bridge {BRIDGE} -> pod veth "
            f"{HOST_VETH} ({p['pod']})"
        ),
        "server_command": ["nsenter", f"--net=/run/netns/{NETNS}", "nc", "-l", "-p", str(o.port)],
        "target": p["service"],
        "namespaces": {"host": "self", "container": f"/run/netns/{NETNS}"},
        "container_veths": [{"netns": f"/run/netns/{NETNS}", "ifname": "eth0", "host_side": HOST_VETH}],
        # host A's end is wired by the client side of this module (roles/badsum_topology), not by routes
        "client_routes": [],
        # the outer packets as host B receives them (the capture the verdict reads), and where the
        # 2020 condition acts: host A's NIC (after NAT) and its vxlan device
        "tunnel": {"iface": o.iface, "port": VXLAN_PORT, "src": o.client_address},
        "overlay": {"device": DEVICE, "client_iface": o.client_iface, "port": VXLAN_PORT, "peer": o.address},
    }


def up(o) -> dict:
    p = plan(o)
    side = o.side or "server"
    if side not in SIDE_STATE:
        raise HostError(f"--side must be server or client, got {side!r}")
    return up_client(o, p) if side == "client" else up_server(o, p)


def _delete_link(name: str) -> bool:
    """Gone afterwards, whoever removed it (a veth vanishes with its peer's namespace)."""
    if not hn.link_exists(name):
        return False
    sh("ip", "link", "del", name, check=False)
    if hn.link_exists(name):
        raise HostError(f"could not delete {name}")
    return True


def down(o) -> dict:
    """Both ends' things that are on this host (each side keeps what up was told)."""
    changed = False
    client = SIDE_STATE["client"]
    if client.exists():
        kept = json.loads(client.read_text())
        # the 2020 condition's emulator sits on this NIC (tools/badsum/host/experiment/condition.py): it goes too
        from .. import condition

        changed |= condition.detach_vxlannat(kept["iface"])["changed"]
        sh("ip", "route", "del", f"{kept['service']}/32", check=False)
        _flush_outer_flows(kept["peer"])
    for builtin, chain in JUMPS:
        while sh("iptables", "-t", "nat", "-D", *jump(builtin, chain), check=False).returncode == 0:
            changed = True
    for chain in CHAINS:
        if sh("iptables", "-t", "nat", "-F", chain, check=False).returncode == 0:
            sh("iptables", "-t", "nat", "-X", chain, check=False)
            changed = True
    # The host's end of the pod's veth first (its peer goes with it): deleting the namespace
    # first would take the pair away asynchronously, racing the deletion of this end.
    for link in (HOST_VETH, BRIDGE, DEVICE):
        changed |= _delete_link(link)
    changed |= hn.delete_netns(NETNS)
    # Before issue 24's canary, up snapshotted the whole firewall and down restored it: gone (a restore
    # would undo what the host's kube-proxy wrote meanwhile); a snapshot an older kit left is still honoured.
    changed |= firewall.restore("vxlan-nat-client")
    changed |= firewall.restore("vxlan-nat-server")
    if SERVER_FORWARD.exists():
        sh("sysctl", "-qw", f"net.ipv4.ip_forward={json.loads(SERVER_FORWARD.read_text())['ip_forward']}")
        SERVER_FORWARD.unlink()
        changed = True
    for path in SIDE_STATE.values():
        path.unlink(missing_ok=True)
    return {"changed": changed}
