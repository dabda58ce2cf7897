"""Mesos' network/port_mapping isolator, as it wired a container (port_mapping.cpp).

The container has its own network namespace and a veth, but carries the
host's IP and MAC address. On the host's NIC, ingress u32 filters send the
container's ports into the veth (mirred egress redirect) and mirror ARP and
ICMP to it; everything the container sends is redirected out of the NIC.
Differences from Mesos: one container with an explicit port list instead of
a port range split into masks, no ephemeral-port slice, no HTB/fq_codel
egress shaping (not needed for the bug, and fq_codel is missing on some
kernels), and no redirect to lo for traffic to the host's own IP.
"""

from __future__ import annotations

from ...shared import net as hn
from ...shared.common import STATE, atomic_write, sh
from .. import firewall

OPTIONS = {"iface": "host B's data NIC", "address": "host B's data IPv4 address (the container shares it)"}
NEEDS = ("iface", "address")
NETNS = "badsum-mesos"
VETH = "mesos0"  # host side; Mesos named it veth<pid>
# Above the corruption injector's 49 on a shared NIC: it damages first, then
# these redirect the damaged packets into the container.
PREF_PORTS = 100  # one filter per port from here
PREF_ARP = 90
PREF_ICMP = 91
PREF_OUT = 100
CLSACT_MARKER = STATE / "mesos-clsact"
ANY = ["u32", "match", "u32", "0", "0"]
ICMP = ["protocol", "ip", "u32", "match", "ip", "protocol", "1", "0xff"]


def redirect_to(dev: str) -> list[str]:
    return ["action", "mirred", "egress", "redirect", "dev", dev]


def mirror_to(dev: str) -> list[str]:
    return ["action", "mirred", "egress", "mirror", "dev", dev]


def up(o) -> dict:
    iface, address, ports = o.iface, o.address, [o.port]
    changed = firewall.snapshot("mesos")
    changed |= hn.ensure_netns(NETNS)
    if not hn.link_exists(VETH):
        sh("ip", "link", "add", VETH, "type", "veth", "peer", "name", "eth0", "netns", NETNS)
        changed = True
    mac, plen = hn.mac_of(iface), hn.prefixlen_of(iface, address)
    inside = hn.ip_json("link", "show", "dev", "eth0", netns=NETNS)[0]
    if inside["address"] != mac or "UP" not in inside["flags"]:
        sh("ip", "-n", NETNS, "link", "set", "eth0", "address", mac)
        sh("ip", "-n", NETNS, "link", "set", "eth0", "up")
        sh("ip", "-n", NETNS, "link", "set", "lo", "up")
        sh("ip", "link", "set", VETH, "up")
        changed = True
    if not hn.has_address("eth0", address, netns=NETNS):
        # The host's own address: the container answers for the host on its ports.
        sh("ip", "-n", NETNS, "addr", "add", f"{address}/{plen}", "dev", "eth0")
        changed = True
    if hn.ensure_clsact(iface):  # remembered: down removes the qdisc only if it added it
        atomic_write(CLSACT_MARKER, iface)
        changed = True
    changed |= hn.ensure_clsact(VETH)
    for i, port in enumerate(ports):
        to_port = f"protocol ip u32 match ip dst {address}/32 match ip protocol 6 0xff match ip dport {port} 0xffff"
        changed |= hn.ensure_filter(iface, "ingress", PREF_PORTS + i, [*to_port.split(), *redirect_to(VETH)])
    changed |= hn.ensure_filter(iface, "ingress", PREF_ARP, ["protocol", "arp", *ANY, *mirror_to(VETH)])
    changed |= hn.ensure_filter(iface, "ingress", PREF_ICMP, [*ICMP, *mirror_to(VETH)])
    changed |= hn.ensure_filter(VETH, "ingress", PREF_OUT, ["protocol", "all", *ANY, *redirect_to(iface)])
    return {
        "changed": changed,
        "path": f"tc redirect from {iface} into veth {VETH} (container shares the host's IP and MAC)",
        "server_command": ["nsenter", f"--net=/run/netns/{NETNS}", "nc", "-l", "-p", str(o.port)],
        "target": address,
        "namespaces": {"host": "self", "container": f"/run/netns/{NETNS}"},
        "container_veths": [{"netns": f"/run/netns/{NETNS}", "ifname": "eth0", "host_side": VETH}],
        "client_routes": [],
    }


def down(o) -> dict:
    iface = o.iface or (CLSACT_MARKER.read_text() if CLSACT_MARKER.exists() else "")
    changed = False
    if iface:
        changed |= hn.delete_filter(iface, "ingress", PREF_PORTS)
        changed |= hn.delete_filter(iface, "ingress", PREF_ARP)
        changed |= hn.delete_filter(iface, "ingress", PREF_ICMP)
        if CLSACT_MARKER.exists():
            changed |= hn.release_clsact(iface)
    CLSACT_MARKER.unlink(missing_ok=True)
    changed |= hn.delete_link(VETH)
    changed |= hn.delete_netns(NETNS)
    changed |= firewall.restore("mesos")
    return {"changed": changed}
