"""The machine's side of a student's isolation: a student's lab reaches nothing on the machine but the service.

A student is `student` (no sudo) on host A of their own lab; host A is a
network namespace on this machine whose management network is a bridge in
the machine's own namespace. Without these rules a student could open a
connection to any service the machine listens on (through that bridge's
address), and, were forwarding on, reach the other labs. With them, from a
workshop lab's bridge the machine accepts only the replies of connections
it opened itself (Ansible's, the gateway's) and new connections to the
workshop service's port on that bridge; it forwards nothing from or to one.
Chains of their own (BADSUM-WS-IN, BADSUM-WS-FWD), removed with the workshop.
"""

from __future__ import annotations

import subprocess

from badsum.lab.spec import bridge_name
from badsum.workshop.room import API_PORT, Room

CHAINS = {"INPUT": "BADSUM-WS-IN", "FORWARD": "BADSUM-WS-FWD"}
TOOLS = ("iptables", "ip6tables")


def _ipt(tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([tool, "-w", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{tool} {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def rules(room: Room, tool: str) -> dict[str, list[list[str]]]:
    found: dict[str, list[list[str]]] = {chain: [] for chain in CHAINS.values()}
    for seat in room.students:
        bridge = bridge_name(seat.student)
        spec = seat.spec()
        service = spec.gateway_v4 if tool == "iptables" else spec.gateway_v6
        found["BADSUM-WS-IN"] += [
            ["-i", bridge, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
            ["-i", bridge, "-p", "tcp", "-d", service, "--dport", str(API_PORT), "-j", "ACCEPT"],
        ]
        if tool == "ip6tables":  # neighbour discovery, or the machine could not reach the lab at all
            found["BADSUM-WS-IN"] += [
                ["-i", bridge, "-p", "ipv6-icmp", "--icmpv6-type", str(t), "-j", "ACCEPT"] for t in (133, 134, 135, 136)
            ]
        found["BADSUM-WS-IN"].append(["-i", bridge, "-j", "DROP"])
        # Within one lab (host A to host B), when the bridge's frames pass through iptables (br_netfilter).
        found["BADSUM-WS-FWD"] += [
            ["-i", bridge, "-o", bridge, "-j", "ACCEPT"],
            ["-i", bridge, "-j", "DROP"],
            ["-o", bridge, "-j", "DROP"],
        ]
    return found


def install(room: Room) -> None:
    remove()
    for tool in TOOLS:
        for parent, chain in CHAINS.items():
            _ipt(tool, "-N", chain)
            for rule in rules(room, tool)[chain]:
                _ipt(tool, "-A", chain, *rule)
            _ipt(tool, "-I", parent, "1", "-j", chain)


def remove() -> bool:
    """Take the chains out; True when there were any. Safe to run when there are none."""
    removed = False
    for tool in TOOLS:
        for parent, chain in CHAINS.items():
            while _ipt(tool, "-D", parent, "-j", chain, check=False).returncode == 0:
                removed = True
            if _ipt(tool, "-F", chain, check=False).returncode == 0:
                _ipt(tool, "-X", chain, check=False)
                removed = True
    return removed


def installed() -> bool:
    return _ipt("iptables", "-S", CHAINS["INPUT"], check=False).returncode == 0
