"""Ask the kernel itself whether NAT breaks a VXLAN packet's outer UDP checksum: one datagram per case.

Two network namespaces of the probe's own per case (held by this process
only, so they vanish with it, even if it is killed), joined by a veth pair,
a vxlan device on each, and in A the rule that exposed the 2020 clusters:

    A: bsvx0 198.18.254.1 (vni 1, port 8472)  ==eth0 veth eth0==  B: bsvx0 198.18.254.2, a UDP socket
       nat POSTROUTING -p udp --dport 8472 -j MASQUERADE --random-fully   (underlay 198.19.254.0/30)

Cases: `control` (outer checksum 0, no NAT: the path works), `zero-csum`
(outer checksum 0 and NAT: the 2020 bug, fixed by ea64d8d6c675), `lco`
(outer checksum on and NAT), and each NAT case again with
tx-checksum-ip-generic off on A's vxlan device (the workaround). A NAT case
counts only if A's conntrack shows the outer flow's source rewritten; it is
`dropped` when B's socket does not get the datagram and B's UdpInCsumErrors
rises, `ok` when it arrives. The veth ends have tx checksumming off, else B
would trust the outer checksum and every case would pass. Nothing leaves the
namespaces; nothing stays. Loading NAT into a namespace may load the
nf_nat / iptables modules on a host that never used them (the audit runs it
only on hosts with a vxlan device).
"""

import os
import re
import shutil
import socket
import time
from typing import Dict, List, Optional

from ..shared import netlink
from ..shared.common import HostError, in_netns, sh

A_WIRE, B_WIRE = "198.19.254.1", "198.19.254.2"
A_IN, B_IN = "198.18.254.1", "198.18.254.2"
A_MAC, B_MAC = "02:62:73:76:00:01", "02:62:73:76:00:02"  # locally administered
VX_A_MAC, VX_B_MAC = "02:62:73:76:01:01", "02:62:73:76:01:02"
DEVICE = "bsvx0"  # the guard and the audit look at the host's namespace only: never at these
PORT, VXLAN_PORT = 7777, 8472
WAIT = 1.0  # seconds for the datagram to arrive or be counted; it takes microseconds
CASES = {
    "control": {"udp_csum": False, "nat": False, "workaround": False},
    "zero-csum": {"udp_csum": False, "nat": True, "workaround": False},
    "lco": {"udp_csum": True, "nat": True, "workaround": False},
    "zero-csum+workaround": {"udp_csum": False, "nat": True, "workaround": True},
    "lco+workaround": {"udp_csum": True, "nat": True, "workaround": True},
}


def _restore_tool() -> str:
    for name in ("iptables-nft-restore", "iptables-legacy-restore", "iptables-restore"):
        if shutil.which(name):
            return name
    raise HostError("cannot probe the VXLAN hazard: no iptables-restore to NAT the outer packet")


class Pair:
    """One case's two namespaces, held by file descriptors: gone when the process is."""

    def __init__(self) -> None:
        self.home = os.open(netlink.SELF, os.O_RDONLY | os.O_CLOEXEC)
        try:
            netlink.unshare_netns()
            self.a = os.open(netlink.SELF, os.O_RDONLY | os.O_CLOEXEC)
            netlink.unshare_netns()
            self.b = os.open(netlink.SELF, os.O_RDONLY | os.O_CLOEXEC)
        finally:
            netlink.setns(self.home)

    def path(self, fd: int) -> str:
        return f"/proc/{os.getpid()}/fd/{fd}"

    def run(self, fd: int, *cmd: str, stdin: Optional[str] = None) -> str:
        return sh(*in_netns(self.path(fd), *cmd), stdin=stdin, timeout=5).stdout

    def close(self) -> None:
        netlink.setns(self.home)
        for fd in (self.a, self.b, self.home):
            os.close(fd)


def _wire(pair: Pair) -> None:
    """The veth pair: made in A as eth0/bspeer, bspeer moved into B and renamed eth0 there."""
    pair.run(pair.a, "ip", "link", "add", "eth0", "address", A_MAC, "type", "veth", "peer", "name", "bspeer")
    pair.run(pair.a, "ip", "link", "set", "bspeer", "netns", pair.path(pair.b))
    pair.run(pair.b, "ip", "link", "set", "bspeer", "name", "eth0", "address", B_MAC)


def rewritten(pair: Pair) -> Optional[bool]:
    """Whether A's conntrack shows the outer VXLAN flow's source rewritten; None when it cannot be read."""
    try:
        with netlink.inside(pair.path(pair.a)), open(netlink.PROC_NET + "/nf_conntrack") as f:
            text = f.read()
    except (OSError, HostError):
        try:
            text = pair.run(pair.a, "conntrack", "-L", "-p", "udp", "--dport", str(VXLAN_PORT))
        except HostError:
            return None
    pattern = rf"src=(\S+) dst=\S+ sport=(\d+) dport={VXLAN_PORT} .*?src=\S+ dst=(\S+) sport={VXLAN_PORT} dport=(\d+)"
    for m in re.finditer(pattern, text):
        if m.group(1) == A_WIRE:
            return (m.group(1), m.group(2)) != (m.group(3), m.group(4))
    return False


def run_case(spec: dict) -> dict:
    pair = Pair()
    try:
        _wire(pair)
        _build_rest(pair, spec)
        with netlink.inside(pair.path(pair.b)):
            rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            before = netlink.udp_csum_errors()
        with netlink.inside(pair.path(pair.a)):
            tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        with rx, tx:
            rx.bind((B_IN, PORT))
            rx.settimeout(WAIT)
            payload = b"badsum vxlan-nat probe"
            tx.sendto(payload, (B_IN, PORT))
            try:
                delivered = rx.recv(2048) == payload
            except socket.timeout:
                delivered = False
        time.sleep(0.02)
        with netlink.inside(pair.path(pair.b)):
            errors = netlink.udp_csum_errors() - before
        nat = rewritten(pair) if spec["nat"] else False
    finally:
        pair.close()
    result = decide(spec, delivered, errors, nat)
    return {**spec, "delivered": delivered, "csum_errors": errors, "outer_nat": nat, "result": result}


def _build_rest(pair: Pair, spec: dict) -> None:
    csum = "udpcsum" if spec["udp_csum"] else "noudpcsum"
    ends = (
        (pair.a, A_WIRE, B_WIRE, B_MAC, A_IN, VX_A_MAC, B_IN, VX_B_MAC),
        (pair.b, B_WIRE, A_WIRE, A_MAC, B_IN, VX_B_MAC, A_IN, VX_A_MAC),
    )
    for fd, me, peer, peer_mac, inner, vmac, peer_in, peer_vmac in ends:
        pair.run(fd, "ip", "link", "set", "lo", "up")
        pair.run(fd, "ip", "addr", "add", f"{me}/30", "dev", "eth0")
        pair.run(fd, "ip", "link", "set", "eth0", "up")
        with netlink.inside(pair.path(fd)):
            netlink.set_feature("eth0", False)  # tx checksumming off: B verifies what A sends
        pair.run(fd, "ip", "neigh", "replace", peer, "lladdr", peer_mac, "dev", "eth0", "nud", "permanent")
        pair.run(
            fd, "ip", "link", "add", DEVICE, "address", vmac, "type", "vxlan", "id", "1", "local", me,
            "remote", peer, "dev", "eth0", "dstport", str(VXLAN_PORT), csum,
        )  # fmt: skip
        pair.run(fd, "ip", "addr", "add", f"{inner}/30", "dev", DEVICE)
        pair.run(fd, "ip", "link", "set", DEVICE, "up")
        pair.run(fd, "ip", "neigh", "replace", peer_in, "lladdr", peer_vmac, "dev", DEVICE, "nud", "permanent")
    if spec["workaround"]:
        with netlink.inside(pair.path(pair.a)):
            netlink.set_feature(DEVICE, False)
    if spec["nat"]:
        rules = f"*nat\n-A POSTROUTING -p udp --dport {VXLAN_PORT} -j MASQUERADE --random-fully\nCOMMIT\n"
        pair.run(pair.a, _restore_tool(), "--noflush", stdin=rules)
    # Both ends up before the datagram: a veth drops what it is given until its queue has started.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        if all("LOWER_UP" in pair.run(fd, "ip", "-o", "link", "show", DEVICE) for fd in (pair.a, pair.b)):
            break
        time.sleep(0.01)


def decide(spec: dict, delivered: bool, errors: int, nat: Optional[bool]) -> str:
    if spec["nat"] and not nat:
        return "inconclusive: the outer packet was not NATed (or conntrack could not be read)"
    if delivered and errors == 0:
        return "ok"
    if not delivered and errors >= 1:
        return "dropped: bad outer UDP checksum"
    return f"inconclusive: delivered={delivered}, UdpInCsumErrors +{errors}"


def judge(results: Dict[str, dict]) -> dict:
    """The kernel's answers: whether it has ea64d8d6c675, whether NAT breaks an outer checksum that is on."""
    r = {k: v["result"] for k, v in results.items()}
    if r["control"] != "ok":
        return {"verdict": "inconclusive", "reason": f"the control datagram (no NAT): {r['control']}"}

    def answer(result: str, good: str, bad: str) -> str:
        return good if result == "ok" else bad if result.startswith("dropped") else "inconclusive"

    out = {
        "zero_csum_fix": answer(r["zero-csum"], "present", "missing"),
        "lco_broken": answer(r["lco"], "no", "yes"),
        "workaround_effective": all(r[k] == "ok" for k in ("zero-csum+workaround", "lco+workaround")),
    }
    broken: List[str] = []
    if out["zero_csum_fix"] == "missing":
        broken.append("NAT corrupts a zero outer checksum (no ea64d8d6c675)")
    if out["lco_broken"] == "yes":
        broken.append("NAT leaves a stale outer checksum when it is on")
    out["verdict"] = "vulnerable" if broken else "fixed" if "inconclusive" not in out.values() else "inconclusive"
    out["reason"] = "; ".join(broken) or "NATed outer VXLAN packets arrive in both cases"
    return out


def run_probe() -> dict:
    """The five cases, each in namespaces of its own (a few seconds); after a failed control, only the control."""
    started = time.monotonic()
    if not shutil.which("ip"):
        raise HostError("cannot probe the VXLAN hazard: `ip` (iproute2) is not installed")
    results: Dict[str, dict] = {}
    for name, spec in CASES.items():
        results[name] = run_case(spec)
        if name == "control" and results[name]["result"] != "ok":
            break
    if len(results) < len(CASES):
        verdict = {
            "verdict": "inconclusive",
            "reason": f"the control datagram (no NAT): {results['control']['result']}",
        }
    else:
        verdict = judge(results)
    return {"kind": "real", **verdict, "cases": results, "seconds": round(time.monotonic() - started, 3)}
