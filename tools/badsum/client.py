#!/usr/bin/env python3
"""The harness client: framed messages at a steady rate, over one TCP connection.

Standard library only; the traffic role copies it, with framing.py, to the
sending host. It keeps the exact byte stream it sent (sent.bin) and when each
message went out (client.json), so the analyzer can compare byte by byte.
Every wait is bounded: connect, each send, and the final drain.
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

try:
    from badsum import framing
except ImportError:  # copied to a host as a plain script
    import framing  # type: ignore[no-redef]


def connect(host: str, port: int, timeout: float) -> socket.socket:
    deadline = time.monotonic() + timeout
    last: OSError | None = None
    while time.monotonic() < deadline:
        try:
            return socket.create_connection((host, port), timeout=min(2.0, timeout))
        except OSError as exc:  # server not listening yet
            last = exc
            time.sleep(0.05)
    raise SystemExit(f"badsum-client: could not connect to [{host}]:{port} within {timeout} s: {last}")


def unacked_bytes(sock: socket.socket) -> int:
    # SIOCOUTQ (== TIOCOUTQ) on a TCP socket: bytes not yet acknowledged by the peer.
    buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    return int.from_bytes(buf, sys.byteorder)


def run(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sock = connect(args.host, args.port, args.connect_timeout)
    sock.settimeout(args.send_timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connected = time.time()
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
    (out / "sent.bin").write_bytes(bytes(stream))
    result = {
        "peer": [args.host, args.port],
        "connected": connected,
        "sent_done": sent_done,
        "drained": drained,
        "drained_at": drained_at,
        "interval": args.interval,
        "size": args.size,
        "bytes": len(stream),
        "error": error,
        "messages": messages,
    }
    (out / "client.json").write_text(json.dumps(result))
    return result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", required=True, help="server address (IPv4 or IPv6)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=50, help="messages to send")
    p.add_argument("--interval", type=float, default=0.1, help="seconds between messages")
    p.add_argument("--size", type=int, default=2048, help="payload bytes per message")
    p.add_argument("--out", required=True, help="directory for sent.bin and client.json")
    p.add_argument("--connect-timeout", type=float, default=5.0)
    p.add_argument("--send-timeout", type=float, default=10.0)
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=15.0,
        help="how long to wait for the peer to acknowledge everything",
    )
    return p


def main() -> int:
    args = build_parser().parse_args()
    if not 1 <= args.port <= 65535 or args.count < 1 or args.interval < 0:
        print("badsum-client: port 1-65535, count >= 1 and interval >= 0 please", file=sys.stderr)
        return 2
    result = run(args)
    print(json.dumps(result))  # the whole record: the controller keeps it with the cell
    return 0 if result["error"] is None else 1


if __name__ == "__main__":
    sys.exit(main())
