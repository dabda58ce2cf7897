"""Packet captures of the experiment port: tcpdump, bounded, then decoded.

    capture start --out DIR --capture NAME:IFACE[:NETNS] ... --port P --timeout S --max-packets N
    capture stop  --out DIR --port P         stop every capture in DIR and decode them

The recorder and the client take the same --capture options and run their
captures around the traffic themselves; this tool is for anything else.

`stop` reports, per pcap, how many TCP segments towards the server tcpdump
finds with an incorrect checksum, and a few of them as tcpdump prints them
(-vv), as the article showed them.

A tunnel capture (NAME:IFACE:UDPPORT:SRC, the vxlan-nat topology's) records
the outer UDP packets from SRC to a VXLAN port instead, and `stop` reports
how many carried a bad outer UDP checksum (tcpdump's `bad udp cksum X -> Y!`,
X what the sender wrote, Y what it should have been), the values written, and
how many had none (`no cksum`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from ..shared.common import HostError, Parser, in_netns, read_pid, wait_gone

SAMPLES = 5


def start(
    out: Path, name: str, iface: str, netns: str, port: int, timeout: float, max_packets: int, what: list | None = None
) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    pcap = out / f"{name}.pcap"
    # -U: packets reach the file as they come, so a stopped capture is complete;
    # timeout and -c bound it whatever happens to the controller.
    cmd = in_netns(
        netns,
        "timeout",
        str(int(timeout)),
        "tcpdump",
        "-i",
        iface,
        "-U",
        "-n",
        "-s",
        "0",
        "-c",
        str(max_packets),
        "-w",
        str(pcap),
        *(what or ["tcp", "port", str(port)]),
    )
    err = out / f"{name}.err"
    with open(err, "wb") as errors:  # tcpdump keeps its own copy
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True
        )
    (out / f"{name}.pid").write_text(str(proc.pid))
    (out / f"{name}.mtu").write_text(str(_mtu(iface, netns)))
    # tcpdump says "listening on" once the socket is open: wait for it (bounded)
    deadline = time.monotonic() + 5
    while b"listening on" not in err.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise HostError(f"tcpdump on {iface} did not start: {err.read_text().strip()}")
        time.sleep(0.02)
    return {"started": name, "pcap": str(pcap)}


def start_all(out: Path, specs: list[str], port: int, timeout: float, max_packets: int) -> list[str]:
    """NAME:IFACE[:NETNS] specs (NETNS: a namespace path, default self)."""
    started = []
    for spec in specs:
        name, _, rest = spec.partition(":")
        iface, _, netns = rest.partition(":")
        if not name or not iface:
            raise HostError(f"bad capture {spec!r}: want NAME:IFACE[:NETNS]")
        started.append(start(out, name, iface, netns or "self", port, timeout, max_packets)["started"])
    return started


TUNNEL_PREFIX = "tunnel-"
BAD_UDP = re.compile(r"bad udp cksum (0x[0-9a-f]+) -> (0x[0-9a-f]+)!")


def start_tunnel(out: Path, specs: list[str], timeout: float, max_packets: int) -> list[str]:
    """NAME:IFACE:UDPPORT:SRC specs: the outer UDP packets from SRC to UDPPORT, in the host's namespace."""
    started = []
    for spec in specs:
        parts = spec.split(":")
        if len(parts) != 4 or not all(parts) or not parts[2].isdigit():
            raise HostError(f"bad tunnel capture {spec!r}: want NAME:IFACE:UDPPORT:SRC")
        name, iface, udp_port, src = parts
        what = ["udp", "dst", "port", udp_port, "and", "src", "host", src]
        started.append(start(out, TUNNEL_PREFIX + name, iface, "self", 0, timeout, max_packets, what)["started"])
        (out / f"{TUNNEL_PREFIX}{name}.udpport").write_text(udp_port)
    return started


def decode_tunnel(pcap: Path, udp_port: int) -> dict:
    """Outer UDP checksums as tcpdump judges them: bad (with the values), none, ok."""
    proc = subprocess.run(
        ["tcpdump", "-r", str(pcap), "-nn", "-vv", "udp", "dst", "port", str(udp_port)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    lines = [line.strip() for line in proc.stdout.splitlines() if f".{udp_port}: " in line]
    bad = [line for line in lines if BAD_UDP.search(line)]
    written: dict[str, int] = {}
    for line in bad:
        value = BAD_UDP.search(line)[1]  # type: ignore[index]
        written[value] = written.get(value, 0) + 1
    return {
        "packets": len(lines),
        "bad_udp_cksum": len(bad),
        "no_cksum": sum("no cksum" in line for line in lines),
        "written": written,
        "samples": bad[:SAMPLES],
    }


def _mtu(iface: str, netns: str) -> int:
    """The interface's MTU, read in its namespace (0: unknown)."""
    shown = subprocess.run(
        in_netns(netns, "ip", "-o", "link", "show", "dev", iface), capture_output=True, text=True, check=False
    ).stdout
    found = re.search(r" mtu (\d+)", shown)
    return int(found[1]) if found else 0


def _ip_length(header: str) -> int | None:
    """The IP packet's length as tcpdump -vv prints it (IPv4: its total length; IPv6: payload + 40)."""
    if found := re.search(r"payload length: (\d+)", header):
        return int(found[1]) + 40
    if found := re.search(r"proto TCP \(6\), length (\d+)", header):
        return int(found[1])
    return None


def decode(pcap: Path, port: int, mtu: int = 0) -> tuple[int, list[str], int]:
    """(segments with an incorrect checksum, a few of them as tcpdump prints them, merged ones not judged).

    Segments towards the server only: what the corruptor damages. The
    server's own ACKs, captured before its NIC fills in the checksum (TX
    offload), would show as "incorrect" without being corrupt. So would a
    packet longer than the MTU: GRO merged it from segments whose checksums
    it had verified, and its header still carries the first one's.
    """
    proc = subprocess.run(
        ["tcpdump", "-r", str(pcap), "-nn", "-vv", "tcp", "dst", "port", str(port)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    lines = proc.stdout.splitlines()
    bad, merged = [], 0
    for i, line in enumerate(lines):
        if "incorrect" not in line:
            continue
        # IPv6: one line per packet; IPv4: the IP header's line, then the TCP line
        one_line = "IP6 (" in line or "IP (" in line
        packet = line.strip() if one_line or not i else f"{lines[i - 1].strip()} {line.strip()}"
        length = _ip_length(packet)
        if mtu and length and length > mtu:
            merged += 1
            continue
        bad.append(packet)
    return len(bad), bad[:SAMPLES], merged


def stop(out: Path, port: int) -> dict:
    """Stop every capture in out; decode each pcap. Nothing there: no captures."""
    pids = [pid for pidfile in out.glob("*.pid") if (pid := read_pid(pidfile))]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGINT)
    wait_gone(pids, 3)
    for pidfile in out.glob("*.pid"):
        pidfile.unlink()
    captures = {}
    for pcap in sorted(out.glob("*.pcap")):
        if pcap.stem.startswith(TUNNEL_PREFIX):
            udp_port = int(pcap.with_suffix(".udpport").read_text())
            captures[pcap.stem] = {"file": pcap.name, "incorrect": 0, "samples": [], "mtu": 0,
                                   "merged_not_judged": 0, "tunnel": decode_tunnel(pcap, udp_port)}  # fmt: skip
            continue
        mtu_file = pcap.with_suffix(".mtu")
        mtu = int(mtu_file.read_text() or 0) if mtu_file.exists() else 0
        count, samples, merged = decode(pcap, port, mtu)
        captures[pcap.stem] = {
            "file": pcap.name,
            "incorrect": count,
            "samples": samples,
            "mtu": mtu,
            "merged_not_judged": merged,
        }
    return {
        "changed": bool(pids),
        "captures": captures,
        "files": {c["file"]: str(out / c["file"]) for c in captures.values()},
    }


def add_capture_option(parser: argparse.ArgumentParser, with_netns: bool = True) -> None:
    parser.add_argument(
        "--capture",
        action="append",
        default=[],
        metavar="NAME:IFACE" + (":NETNS" if with_netns else ""),
        help="tcpdump the experiment port there while this runs; repeatable",
    )


def build_parser() -> Parser:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    s = sub.add_parser("start", help="start bounded captures")
    add_capture_option(s)
    s.add_argument("--timeout", type=int, required=True)
    s.add_argument("--max-packets", type=int, required=True)
    t = sub.add_parser("stop", help="stop every capture in --out and decode them")
    for a in (s, t):
        a.add_argument("--out", required=True)
        a.add_argument("--port", type=int, required=True)
    return p


def run(args: argparse.Namespace) -> dict:
    if args.action == "start":
        names = start_all(Path(args.out), args.capture, args.port, args.timeout, args.max_packets)
        return {"changed": bool(names), "started": names}
    return stop(Path(args.out), args.port)
