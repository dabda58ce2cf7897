"""A flannel-style VXLAN overlay with kube-proxy's masquerade, as in the 2020 incident.

kubernetes#88986, flannel#1279, calico#3145: a node (host A) connects to a
ClusterIP whose pod runs on another node (host B), across a VXLAN overlay.
Both ends are built the way flannel's vxlan backend builds them
(pkg/backend/vxlan/device.go, vxlan_network.go): a vxlan device, VNI 1,
UDP port 8472, no learning, the outer UDP checksum 0 (`noudpcsum`, what a
device made without IFLA_VXLAN_UDP_CSUM was on the 2020 kernels), its
address a /32, and for the other node a permanent neighbour entry, a
permanent FDB entry and an onlink route to its pod subnet. On host A,
kube-proxy's rules before kubernetes#92035: service traffic is marked 0x4000
and marked packets are masqueraded with --random-fully; the mark is still on
the skb when the vxlan device sends it again as the outer UDP packet, so the
outer packet is masqueraded too - which is what let the unfixed kernel's NAT
"update" a checksum of 0.

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
VNI = 1
VXLAN_PORT = 8472  # the kernel's default vxlan port, which flannel uses
NETNS = "badsum-vxpod"
BRIDGE = "bscni0"
HOST_VETH = "bsvxveth0"
MARK = "0x4000/0x4000"  # kube-proxy's masquerade mark
CHAINS = ("BADSUM-KUBE-SERVICES", "BADSUM-KUBE-MARK-MASQ", "BADSUM-KUBE-SEP", "BADSUM-KUBE-POSTROUTING")
JUMPS = (("OUTPUT", "BADSUM-KUBE-SERVICES"), ("POSTROUTING", "BADSUM-KUBE-POSTROUTING"))
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
    sh("ip", "route", "replace", peer_subnet, "via", peer_vtep, "dev", DEVICE, "onlink")
    return changed


def kube_proxy_rules(p: dict, o) -> list[list[str]]:
    """kube-proxy's shape before kubernetes#92035, in badsum's chains, matching the lab's traffic only."""
    svc = ["-d", f"{p['service']}/32", "-p", "tcp", "--dport", str(o.port)]
    masq = ["-m", "mark", "--mark", MARK, "-j", "MASQUERADE", "--random-fully"]
    return [
        ["BADSUM-KUBE-SERVICES", *svc, "-j", "BADSUM-KUBE-MARK-MASQ"],
        ["BADSUM-KUBE-SERVICES", *svc, "-j", "BADSUM-KUBE-SEP"],
        ["BADSUM-KUBE-MARK-MASQ", "-j", "MARK", "--set-xmark", MARK],
        ["BADSUM-KUBE-SEP", "-p", "tcp", "-j", "DNAT", "--to-destination", f"{p['pod']}:{o.port}"],
        # kube-proxy's rule matched every marked packet; here only the inner packet to the
        # pod subnet and the outer packet to host B's VXLAN port (the same mark, still on it).
        ["BADSUM-KUBE-POSTROUTING", "-d", p["server_subnet"], *masq],
        ["BADSUM-KUBE-POSTROUTING", "-d", f"{o.address}/32", "-p", "udp", "--dport", str(VXLAN_PORT), *masq],
    ]


def _flush_outer_flows(peer: str) -> None:
    # Only this overlay's outer flows: a cell counts the flows NAT rewrote from a clean table.
    sh("conntrack", "-D", "-p", "udp", "--orig-dst", peer, "--orig-port-dst", str(VXLAN_PORT), check=False)


def up_client(o, p: dict) -> dict:
    changed = firewall.snapshot("vxlan-nat-client")
    changed |= _overlay(o.client_address, o.client_iface, p["client_vtep"], o.address, p["server_vtep"],
                        p["server_subnet"])  # fmt: skip
    sh("ip", "route", "replace", f"{p['service']}/32", "via", o.address, "dev", o.client_iface)
    existing = sh("iptables", "-t", "nat", "-S").stdout
    if f"-N {CHAINS[0]}" not in existing:
        for chain in CHAINS:
            sh("iptables", "-t", "nat", "-N", chain)
        for rule in kube_proxy_rules(p, o):
            sh("iptables", "-t", "nat", "-A", *rule)
        for builtin, chain in JUMPS:
            sh("iptables", "-t", "nat", "-A", builtin, "-j", chain)
        changed = True
    _flush_outer_flows(o.address)
    atomic_write(SIDE_STATE["client"], json.dumps({"iface": o.client_iface, "service": p["service"],
                                                   "peer": o.address}))  # fmt: skip
    return {"changed": changed, "device": DEVICE, "service": p["service"], "vtep_mac": vtep_mac(o.client_address)}


def up_server(o, p: dict) -> dict:
    changed = firewall.snapshot("vxlan-nat-server")
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
        while sh("iptables", "-t", "nat", "-D", builtin, "-j", chain, check=False).returncode == 0:
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
    changed |= firewall.restore("vxlan-nat-client")
    changed |= firewall.restore("vxlan-nat-server")
    for path in SIDE_STATE.values():
        path.unlink(missing_ok=True)
    return {"changed": changed}
