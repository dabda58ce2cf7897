"""Packet captures of the experiment port: tcpdump, bounded, then decoded.

    capture start --out DIR --capture NAME:IFACE[:NETNS] ... --port P --timeout S --max-packets N
    capture stop  --out DIR --port P         stop every capture in DIR and decode them

The recorder and the client take the same --capture options and run their
captures around the traffic themselves; this tool is for anything else.

`stop` reports, per pcap, how many TCP segments towards the server tcpdump
finds with an incorrect checksum, and a few of them as tcpdump prints them
(-vv), as the article showed them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from .common import HostError, Parser, in_netns, read_pid, wait_gone

SAMPLES = 5


def start(out: Path, name: str, iface: str, netns: str, port: int, timeout: float, max_packets: int) -> dict:
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
        "tcp",
        "port",
        str(port),
    )
    err = out / f"{name}.err"
    with open(err, "wb") as errors:  # tcpdump keeps its own copy
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True
        )
    (out / f"{name}.pid").write_text(str(proc.pid))
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


def decode(pcap: Path, port: int) -> tuple[int, list[str]]:
    # Segments towards the server only: what the corruptor damages. The
    # server's own ACKs, captured before its NIC fills in the checksum (TX
    # offload), would show as "incorrect" without being corrupt.
    proc = subprocess.run(
        ["tcpdump", "-r", str(pcap), "-nn", "-vv", "tcp", "dst", "port", str(port)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    lines = proc.stdout.splitlines()
    bad = []
    for i, line in enumerate(lines):
        if "incorrect" in line:
            # -vv prints the IP header on one line and the TCP line after it
            bad.append((lines[i - 1].strip() + " " + line.strip()) if i and "cksum" in line else line.strip())
    return len(bad), bad[:SAMPLES]


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
        count, samples = decode(pcap, port)
        captures[pcap.stem] = {"file": pcap.name, "incorrect": count, "samples": samples}
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
