"""Ask the kernel itself whether it has the veth bug: one datagram with a wrong checksum through a veth.

    probe run [--emulate-bug]
    probe vxlan        the second hazard's probe (vxlan_probe.py)

Two network namespaces of the probe's own (held by this process only, so
they vanish with it, even if it is killed), joined by a veth pair:

    A: bsprobe-a 198.18.255.253/30  ===veth===  B: bsprobe-b 198.18.255.254/30, a UDP socket

From A, a raw socket sends three datagrams to B: one with a correct UDP
checksum (the path works; sent again until it arrives), one with a wrong
checksum while bsprobe-b has rx-checksumming on, and one more after `rx off`
on bsprobe-b (the workaround). A kernel with the bug (before ce8c839b74e3,
Linux 4.4) marks the second one CHECKSUM_UNNECESSARY in veth_xmit() and B's socket gets it:
`vulnerable`. A fixed kernel verifies it, drops it and counts it in B's
UdpInCsumErrors: `fixed`. Nothing leaves the two namespaces; nothing stays.

--emulate-bug attaches the veth-bug emulator (shared/programs/vethbug.bpf.c, compiled
into <lib_dir>/bpf on first use) to bsprobe-b, so the vulnerable branch can
be exercised on a fixed kernel; the result says `emulated`. For emulated
fleets only.
"""

import argparse
import fcntl
import os
import select
import socket
import struct
import time
from pathlib import Path
from typing import Optional

from ..shared import netlink
from ..shared.common import Parser, sh
from . import containers, vxlan_probe

A_IF, B_IF = "bsprobe-a", "bsprobe-b"  # the guard leaves "bsprobe-" devices alone
A_ADDR, B_ADDR, PREFIX = "198.18.255.253", "198.18.255.254", 30
B_MAC = bytes.fromhex("026273000002")  # locally administered
WAIT = 0.3  # seconds for a datagram to arrive; it takes microseconds
RESEND = 0.01  # seconds between copies of the good datagram, until one arrives (the path is then up)
GOOD_COPIES = 20
EMULATOR_PREF = 7
PIN_DIR = Path("/sys/fs/bpf")


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def datagram(sport: int, dport: int, payload: bytes, good: bool) -> bytes:
    """A UDP header and payload, with the right checksum, or a wrong one (never 0: that means none)."""
    length = 8 + len(payload)
    pseudo = socket.inet_aton(A_ADDR) + socket.inet_aton(B_ADDR) + struct.pack("!BBH", 0, socket.IPPROTO_UDP, length)
    right = checksum(pseudo + struct.pack("!HHHH", sport, dport, length, 0) + payload) or 0xFFFF
    value = right if good else (right ^ 0x5A5A) or 0x1234
    return struct.pack("!HHHH", sport, dport, length, value) + payload


def outcome(sock: socket.socket, payload: bytes, errors_before: int, wait: float = WAIT) -> dict:
    """Wait (in B) until the datagram arrives or is counted as a checksum error, at most `wait` seconds."""
    deadline = time.monotonic() + wait
    delivered = False
    while not delivered and time.monotonic() < deadline:
        if netlink.udp_csum_errors() > errors_before:
            break
        if select.select([sock], [], [], 0.002)[0]:
            delivered = sock.recv(2048) == payload
    return {"delivered": delivered, "csum_errors": netlink.udp_csum_errors() - errors_before}


class Namespaces:
    """The probe's two namespaces, held by file descriptors: gone when the process is."""

    def __init__(self) -> None:
        self.home = os.open(netlink.SELF, os.O_RDONLY | os.O_CLOEXEC)
        netlink.unshare_netns()
        self.a = os.open(netlink.SELF, os.O_RDONLY | os.O_CLOEXEC)
        netlink.unshare_netns()
        self.b = os.open(netlink.SELF, os.O_RDONLY | os.O_CLOEXEC)
        netlink.setns(self.home)

    def path(self, fd: int) -> str:
        return f"/proc/{os.getpid()}/fd/{fd}"

    def close(self) -> None:
        netlink.setns(self.home)
        for fd in (self.a, self.b, self.home):
            os.close(fd)


def wire(ns: Namespaces) -> None:
    """The veth pair, made in A with its peer in B, addressed and up (netlink, in the thread's namespace).

    B's address is a neighbour A knows (no ARP): a veth drops what it is
    given until the kernel's link watcher has started its queue, a moment
    after `up`, and a first ARP request lost there would hold every datagram
    for the 1 s ARP retry.
    """
    netlink.setns(ns.a)
    netlink.add_veth(A_IF, B_IF, peer_netns_fd=ns.b, peer_mac=B_MAC)
    for fd, ifname, addr in ((ns.a, A_IF, A_ADDR), (ns.b, B_IF, B_ADDR)):
        netlink.setns(fd)
        netlink.add_ipv4(ifname, addr, PREFIX)
        netlink.set_up(ifname)
    netlink.setns(ns.a)
    netlink.add_neighbor(A_IF, B_ADDR, B_MAC)


def attach_emulator() -> None:
    """The veth-bug emulator on bsprobe-b's ingress; tc runs in the thread's namespace (B, brand new: no qdisc)."""
    from ..shared import bpf, net  # labs only: the fleet's path (Python 3.6 hosts) never loads them

    obj = Path(bpf.build(argparse.Namespace(program=["vethbug"]))["objects"]["vethbug"])  # once per kernel and source
    sh("tc", "qdisc", "add", "dev", B_IF, "clsact")
    pin = emulator_pin(obj)
    net.attach_bpf(B_IF, "ingress", EMULATOR_PREF, str(pin or obj), pinned=pin is not None)


def emulator_pin(obj: Path) -> Optional[Path]:
    """On an emulated host of the embedded lab, the emulator loaded once and pinned in the host's own bpffs.

    Loading it is most of an emulated probe's cost (libbpf reads the kernel's
    BTF, the verifier runs): ~25 ms, every probe. The host's bpffs is its own
    and goes with it (`badsum lab down`), so the pin leaves nothing behind.
    Anywhere else (a real host, a VM guest) nothing is pinned: None.
    """
    if containers.own_cgroup() is None or not PIN_DIR.is_dir():
        return None
    # The object's name (its kernel and source digest), without dots: bpffs refuses them (EPERM).
    pin = PIN_DIR / f"badsum-probe-{obj.stem}".replace(".", "_")
    if not pin.exists():
        with open(obj.parent / ".pin.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one load per host, whatever runs at once
            if not pin.exists():
                sh("bpftool", "prog", "load", str(obj), str(pin), "type", "classifier")
    return pin


def run_probe(emulate: bool) -> dict:
    ns = Namespaces()
    try:
        wire(ns)
        if emulate:
            netlink.setns(ns.b)
            attach_emulator()
        netlink.setns(ns.b)
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        receiver.bind((B_ADDR, 0))
        dport = receiver.getsockname()[1]
        netlink.setns(ns.a)
        sender = socket.socket(socket.AF_INET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.IPPROTO_UDP)

        def attempt(label: str, good: bool, copies: int = 1) -> dict:
            """Send the datagram (again every RESEND seconds, `copies` times at most) until it arrives or is counted."""
            payload = f"badsum probe: {label}".encode()
            netlink.setns(ns.b)
            before = netlink.udp_csum_errors()
            for copy in range(copies):
                netlink.setns(ns.a)
                sender.sendto(datagram(40000, dport, payload, good), (B_ADDR, 0))
                netlink.setns(ns.b)
                result = outcome(receiver, payload, before, RESEND if copy < copies - 1 else WAIT)
                if result["delivered"] or result["csum_errors"]:
                    break
            return result

        with receiver, sender:
            # The path is proven with the good datagram first: the bad ones then cross a veth that runs.
            good = attempt("good checksum", True, copies=GOOD_COPIES)
            rx_on = netlink.rx_checksumming(B_IF)
            bad = attempt("bad checksum, rx on", False)
            netlink.set_rx_checksumming(B_IF, False)
            bad_rx_off = attempt("bad checksum, rx off", False)
    finally:
        ns.close()
    return judge(good, bad, bad_rx_off, rx_on, emulate)


def judge(good: dict, bad: dict, bad_rx_off: dict, rx_on: bool, emulate: bool) -> dict:
    if not good["delivered"]:
        verdict, reason = "inconclusive", "the datagram with a right checksum never arrived: the probe path is broken"
    elif not rx_on:
        verdict, reason = "inconclusive", "the probe's veth came up with rx-checksumming off: nothing to test"
    elif bad["delivered"]:
        verdict = "vulnerable"
        reason = "a datagram with a wrong UDP checksum crossed a veth and was delivered to the socket"
    elif bad["csum_errors"] > 0:
        verdict = "fixed"
        reason = "the datagram with a wrong UDP checksum was dropped and counted in UdpInCsumErrors"
    else:
        verdict, reason = "inconclusive", "the bad datagram neither arrived nor was counted as a checksum error"
    workaround = "n/a"
    if verdict == "vulnerable":
        workaround = "protects" if not bad_rx_off["delivered"] else "does not protect"
    return {
        "verdict": verdict,
        "kind": "emulated" if emulate else "real",
        "reason": reason + (" (the veth-bug emulator was attached: emulated)" if emulate else ""),
        "workaround_rx_off": workaround,
        "datagrams": {"good": good, "bad_rx_on": bad, "bad_rx_off": bad_rx_off},
    }


def build_parser() -> Parser:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", parser_class=Parser)
    sub.required = True  # add_subparsers(required=) is Python 3.7
    r = sub.add_parser("run", help="probe this kernel (root; a few ms; nothing left behind)")
    r.add_argument("--emulate-bug", action="store_true", help="attach the veth-bug emulator (tests)")
    sub.add_parser("vxlan", help="does NAT break a VXLAN packet's outer checksum here? (root; ~2 s; nothing left)")
    return p


def run(args: argparse.Namespace) -> dict:
    if args.action == "vxlan":
        return vxlan_probe.run_probe()
    started = time.perf_counter()
    result = run_probe(args.emulate_bug)
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result
