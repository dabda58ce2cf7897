"""The harness client: framed messages at a steady rate over one TCP connection (host A).

    client prepare --iface IF      put real checksums on the wire: TX checksum offload off
    client run --host ADDR --port P --count N --interval S --size B --out DIR [--route DST=VIA ...]
               [--capture NAME:IFACE ...]
    client cleanup [--route DST=VIA ...]   remove routes a failed run left
    client restore --iface IF      TX checksum offload back as prepare found it

`run` keeps the exact byte stream it sent (sent.bin) and when each message
went out, so the analyzer can compare byte by byte. Routes to the server's
containers are added for the run and removed after it, and captures (host
A's NIC, before the corruption point) run for exactly as long. Every wait is
bounded: connect, each send, and the final drain.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import socket
import sys
import termios
import time
from pathlib import Path

from ..shared import framing, net
from ..shared.common import STATE, HostError, Parser, atomic_write, sh
from . import capture

MAX_SEND_BUFFER = 4 * 2**20


def connect(host: str, port: int, timeout: float, send_buffer: int) -> socket.socket:
    deadline = time.monotonic() + timeout
    last: OSError | None = None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    while time.monotonic() < deadline:
        sock = socket.socket(family, socket.SOCK_STREAM)
        # Room for the whole stream (the kernel caps it at net.core.wmem_max): a
        # message is handed over on its schedule even while TCP retransmits,
        # as the article's client did; it waits in the kernel, not in us.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, min(send_buffer, MAX_SEND_BUFFER))
        sock.settimeout(min(2.0, timeout))
        try:
            sock.connect((host, port))
            return sock
        except OSError as exc:  # server not listening yet
            sock.close()
            last = exc
            time.sleep(0.05)
    raise HostError(f"could not connect to [{host}]:{port} within {timeout:g} s: {last}")


def unacked_bytes(sock: socket.socket) -> int:
    # SIOCOUTQ (== TIOCOUTQ) on a TCP socket: bytes not yet acknowledged by the peer.
    buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    return int.from_bytes(buf, sys.byteorder)


def send(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # How long the connection took to open: a dropped SYN shows as a wait of the
    # initial retransmission timeout (1 s), the 2020 bug's signature.
    connect_started = time.monotonic()
    sock = connect(args.host, args.port, args.connect_timeout, args.count * (framing.HEADER_LEN + args.size) + 65536)
    sock.settimeout(args.send_timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connected = time.time()
    connect_s = round(time.monotonic() - connect_started, 4)
    stream = bytearray()
    messages = []
    error = None
    start = time.monotonic()
    for seq in range(args.count):
        # A fixed schedule, not sleep-after-send: a stalled send does not shift the rest.
        delay = start + seq * args.interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent_ns = time.time_ns()
        frame = framing.encode(seq, framing.payload_for(seq, args.size), sent_ns)
        try:
            sock.sendall(frame)
        except OSError as exc:
            error = f"send of message {seq} failed: {exc}"
            break
        messages.append({"seq": seq, "offset": len(stream), "length": len(frame), "sent": sent_ns / 1e9})
        stream += frame
    sent_done = time.time()
    drained = False
    deadline = time.monotonic() + args.drain_timeout
    while error is None and time.monotonic() < deadline:
        if unacked_bytes(sock) == 0:
            drained = True
            break
        time.sleep(0.01)
    drained_at = time.time() if drained else None
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
    sock.close()
    atomic_write(out / "sent.bin", bytes(stream))
    record = {
        "peer": [args.host, args.port],
        "connected": connected,
        "connect_s": connect_s,
        "sent_done": sent_done,
        "drained": drained,
        "drained_at": drained_at,
        "interval": args.interval,
        "size": args.size,
        "bytes": len(stream),
        "error": error,
        "messages": messages,
    }
    atomic_write(out / "client.json", json.dumps(record))
    return record


# -- routes to the server's containers ------------------------------------------------


def _routes(specs: list[str]) -> list[tuple[str, str]]:
    routes = []
    for spec in specs:
        dst, sep, via = spec.partition("=")
        if not sep or not dst or not via:
            raise HostError(f"bad route {spec!r}: want DST=VIA, e.g. 198.19.128.0/28=198.19.0.12")
        routes.append((dst, via))
    return routes


def add_routes(routes: list[tuple[str, str]]) -> None:
    for dst, via in routes:
        sh("ip", "route", "replace", dst, "via", via)


def remove_routes(routes: list[tuple[str, str]]) -> bool:
    changed = False
    for dst, _via in routes:
        family = "-6" if ":" in dst else "-4"
        if sh("ip", family, "route", "show", "exact", dst).stdout.strip():
            # `flush exact` succeeds when the route is already gone.
            sh("ip", family, "route", "flush", "exact", dst)
            changed = True
    return changed


def run_client(args: argparse.Namespace) -> dict:
    routes = _routes(args.route)
    captures = Path(args.out) / "captures"
    bound = args.count * args.interval + args.connect_timeout + args.drain_timeout + 5
    add_routes(routes)
    try:
        capture.start_all(captures, args.capture, args.port, bound, 20000)
        record = send(args)
    finally:
        remove_routes(routes)
        captured = capture.stop(captures, args.port)
    record["changed"] = True
    record["captures"] = captured["captures"]
    record["files"] = {"sent.bin": str(Path(args.out) / "sent.bin"), **captured["files"]}
    return record


# -- real checksums on the wire ------------------------------------------------------


def _tx_on(iface: str) -> bool:
    return net.features(iface).get("tx-checksumming", {}).get("on", False)


def prepare(args: argparse.Namespace) -> dict:
    """With TX checksum offload on, the checksum is filled in after a corruptor on this host (or never,
    on a veth): the damage would travel with a valid checksum and the experiment would measure nothing."""
    marker = STATE / f"client-tx-{args.iface}"
    if not _tx_on(args.iface):
        return {"changed": False, "tx_checksumming": "off"}
    sh("ethtool", "--features", args.iface, "tx", "off")
    atomic_write(marker, "on")  # restore puts back only what this run changed
    return {"changed": True, "tx_checksumming": "off", "was": "on"}


def restore(args: argparse.Namespace) -> dict:
    marker = STATE / f"client-tx-{args.iface}"
    if not marker.exists():
        return {"changed": False}
    sh("ethtool", "--features", args.iface, "tx", "on")
    marker.unlink()
    return {"changed": True, "tx_checksumming": "on"}


def build_parser() -> Parser:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    for name in ("prepare", "restore"):
        sub.add_parser(name, help=f"{name} TX checksum offload").add_argument("--iface", required=True)
    r = sub.add_parser("run", help="send the framed messages")
    r.add_argument("--host", required=True, help="server address (IPv4 or IPv6)")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--count", type=int, required=True, help="messages to send")
    r.add_argument("--interval", type=float, required=True, help="seconds between messages")
    r.add_argument("--size", type=int, required=True, help="payload bytes per message")
    r.add_argument("--out", required=True, help="directory for sent.bin and client.json")
    r.add_argument("--connect-timeout", type=float, required=True)
    r.add_argument("--send-timeout", type=float, default=10.0, help="bound on one blocked send")
    r.add_argument(
        "--drain-timeout", type=float, required=True, help="how long to wait for the peer to acknowledge everything"
    )
    capture.add_capture_option(r, with_netns=False)
    c = sub.add_parser("cleanup", help="remove routes a failed run left")
    for a in (r, c):
        a.add_argument(
            "--route",
            action="append",
            default=[],
            metavar="DST=VIA",
            help="a route to the server's containers, for the run only; repeatable",
        )
    return p


def run(args: argparse.Namespace) -> dict:
    if args.action == "run":
        if not 1 <= args.port <= 65535 or args.count < 1 or args.interval < 0 or args.size < 1:
            raise HostError("port 1-65535, count >= 1, interval >= 0 and size >= 1 please")
        return run_client(args)
    if args.action == "cleanup":
        return {"changed": remove_routes(_routes(args.route))}
    return {"prepare": prepare, "restore": restore}[args.action](args)
