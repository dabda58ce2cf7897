"""A lab's networks: its namespaces, the management bridge, the hosts' data links into the switch.

Everything made from the root namespace is one `ip -batch`; each node
configures its own side (node_network, run by badsum.lab.nodes inside it).
Everything is found again by name (the lab's id is in every name), so
teardown works from what exists, also after a killed run.
"""

from __future__ import annotations

import os
import re
import time

from badsum.host.shared import netlink
from badsum.lab.spec import LabSpec, Node, bridge_name
from badsum.lab.sysrun import run

NETNS_DIR = "/run/netns"
LINK_GONE_TIMEOUT = 5.0
NETNS_GONE_TIMEOUT = 2.0


def existing_netns() -> list[str]:
    """The named network namespaces: what `ip netns list` shows, without its per-namespace id lookups."""
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def lab_netns(lab_id: str) -> list[str]:
    pattern = re.compile(rf"^{re.escape(lab_id)}-(h\d+|sw)$")
    return [ns for ns in existing_netns() if pattern.match(ns)]


def lab_root_links(lab_id: str) -> list[str]:
    pattern = re.compile(rf"^{re.escape(lab_id)}-(mgmt|m\d+|msw)$")
    # `down` polls this while hundreds of links go: a netlink dump, not `ip -j link` and its JSON.
    return [link.name for link in netlink.links() if pattern.match(link.name)]


def make_networks(spec: LabSpec) -> None:
    """Everything made from the root namespace, in one `ip -batch`; each node configures its own side."""
    prefix4 = spec.mgmt_v4.prefixlen
    sw = spec.switch
    root = [f"netns add {node.netns}" for node in spec.nodes()] + [
        f"link add {spec.bridge} type bridge stp_state 0 forward_delay 0",
        f"addr add {spec.gateway_v4}/{prefix4} dev {spec.bridge}",
        f"addr add {spec.gateway_v6}/64 dev {spec.bridge} nodad",
        f"link set {spec.bridge} up",
    ]
    for node in spec.nodes():
        root += [
            f"link add {node.mgmt_link} type veth peer name mgmt0 netns {node.netns}",
            f"link set {node.mgmt_link} master {spec.bridge} up",
        ]
        if not node.is_switch:
            # The host's "NIC" and its switch port are the two ends of one veth.
            root.append(f"link add eth0 netns {node.netns} type veth peer name {node.switch_port} netns {sw.netns}")
    run(["ip", "-batch", "-"], stdin="\n".join(root) + "\n", timeout=120)


def node_network(spec: LabSpec, node: Node) -> tuple[str, tuple[str, ...]]:
    """The node's own `ip -batch` commands, and its interfaces that stand for hardware."""
    cmds = [
        "link set lo up",
        f"addr add {node.mgmt_v4}/{spec.mgmt_v4.prefixlen} dev mgmt0",
        f"addr add {node.mgmt_v6}/64 dev mgmt0 nodad",
        "link set mgmt0 up",
    ]
    if node.is_switch:
        ports = tuple(n.switch_port for n in spec.nodes() if not n.is_switch)
        cmds += ["link add br0 type bridge stp_state 0 forward_delay 0", "link set br0 up"]
        cmds += [f"link set {port} master br0 up" for port in ports]
        return "\n".join(cmds) + "\n", ports
    cmds += [
        f"addr add {node.data_v4}/{spec.data_v4.prefixlen} dev eth0",
        f"addr add {node.data_v6}/64 dev eth0 nodad",
        "link set eth0 up",
    ]
    return "\n".join(cmds) + "\n", ("eth0",)


def _wait_links(lab_id: str, timeout: float, keep: set[str] = frozenset()) -> list[str]:
    """Wait (bounded) until the lab's root links other than `keep` are gone; returns the lab's root links left."""
    deadline = time.monotonic() + timeout
    while (links := lab_root_links(lab_id)) and set(links) - keep and time.monotonic() < deadline:
        time.sleep(0.02)
    return links


def remove_networks(lab_id: str) -> None:
    """The lab's namespaces, then whatever root links they did not take along.

    Namespaces first: a dying namespace takes its devices along, and each veth
    its peer, in one batch in the kernel. Deleting 200 root ends one by one
    cost ~18 ms each (the network quiesces after every one).
    """
    netns = lab_netns(lab_id)
    if netns:
        run(["ip", "-batch", "-"], stdin="".join(f"netns del {ns}\n" for ns in netns), check=False)
    bridge = bridge_name(lab_id)
    # Left: the bridge, and veths whose namespace something outside the lab still holds open.
    links = _wait_links(lab_id, NETNS_GONE_TIMEOUT, keep={bridge})
    if links:
        # Deleted now, not when the namespace finally goes: a quick re-up would find their names taken.
        run(["ip", "-batch", "-"], stdin="".join(f"link del {link}\n" for link in links), check=False)
    deadline = time.monotonic() + LINK_GONE_TIMEOUT
    while (lab_netns(lab_id) or lab_root_links(lab_id)) and time.monotonic() < deadline:
        time.sleep(0.02)
