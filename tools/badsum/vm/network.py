"""The VM lab's management network on this machine: a bridge and one tap per guest.

Only management (SSH from the controller) touches this machine's network
stack. The data plane runs between the guests over unix datagram sockets
(QEMU's dgram netdev), through the switch guest's bridge, so no lab packet
crosses this machine's bridges, firewall or routes. That also keeps every
data NIC a plain virtio NIC without a vnet header: it never marks a packet
verified, as a physical NIC without RX checksum offload (see DESIGN.md: on
an unfixed kernel only container veths may have rx on).
"""

from __future__ import annotations

import contextlib
import json

from badsum.lab.sysrun import CommandError, run
from badsum.vm.spec import VmLabSpec


def _links() -> dict[str, dict]:
    return {link["ifname"]: link for link in json.loads(run(["ip", "-j", "link", "show"]).stdout)}


def create_bridge(spec: VmLabSpec) -> None:
    if spec.bridge not in _links():
        run(["ip", "link", "add", spec.bridge, "type", "bridge", "stp_state", "0"])
    for addr in (f"{spec.gateway_v4}/{spec.mgmt_v4.prefixlen}", f"{spec.gateway_v6}/{spec.mgmt_v6.prefixlen}"):
        run(["ip", "addr", "replace", addr, "dev", spec.bridge, *(["nodad"] if ":" in addr else [])])
    run(["ip", "link", "set", spec.bridge, "up"])


def create_tap(spec: VmLabSpec, tap: str) -> None:
    """A tap QEMU opens by name (script=no): made here so it is the lab's, not QEMU's, to remove."""
    if tap not in _links():
        run(["ip", "tuntap", "add", "dev", tap, "mode", "tap", "vnet_hdr"])
    run(["ip", "link", "set", tap, "master", spec.bridge, "up"])


def lab_links(spec: VmLabSpec) -> list[str]:
    """This machine's links of the lab: the bridge and the taps named after it (found by name, so a
    lab whose state file is gone is cleaned up too)."""
    prefix = f"{spec.lab_id}-"
    return sorted(name for name in _links() if name == spec.bridge or name.startswith(prefix + "m"))


def remove(spec: VmLabSpec) -> list[str]:
    """Delete the taps, then the bridge; returns the links that would not go."""
    for name in sorted(lab_links(spec), key=lambda n: n == spec.bridge):
        with contextlib.suppress(CommandError):
            run(["ip", "link", "del", name])
    return lab_links(spec)
