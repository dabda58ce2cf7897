"""Run the harness server (`nc -l`) and record what it prints, with arrival times.

    recorder start --out DIR --timeout S [--ns L=NS ...] [--capture NAME:IFACE[:NETNS] ...] -- nc -l -p 5001
        read the counters, start the captures, then run the server detached under a recorder
    recorder wait  --out DIR --timeout S [--ns L=NS ...] --port P
        until the server has exited (or is ended); read the counters again, stop the captures
    recorder stop  --out DIR --port P
        end it now, and the captures (teardown after a failure)

The server is whatever command is given: nc in the host's own stack, or nc in
a container (`docker exec -i … nc -l -p 5001`). Its stdout goes to recv.bin;
recv.json lists (time, bytes so far) per read, so the analyzer knows when
each message arrived. The recorder ends the server itself after --timeout,
whatever happens to the controller.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path

from ..shared.common import HostError, Parser, alive, atomic_write, kill, read_pid, wait_gone
from . import capture, counters

STARTED_TIMEOUT = 5.0
CAPTURE_MAX_PACKETS = 20000


def record(out: Path, cmd: list[str], timeout: float) -> None:
    """Runs in the detached child: the server's stdout is our pipe."""
    with open(out / "server.err", "wb") as errors:  # the child keeps its own copy
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, start_new_session=True
        )
    atomic_write(out / "server.pid", str(proc.pid))
    chunks: list[list[float]] = []
    total = 0
    stop = {"asked": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(asked=True))
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    timed_out = False
    with open(out / "recv.bin", "wb") as sink:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or stop["asked"]:
                timed_out = not stop["asked"]
                break
            ready, _, _ = select.select([fd], [], [], min(left, 0.2))
            if not ready:
                continue
            data = os.read(fd, 65536)
            if not data:
                break
            sink.write(data)
            sink.flush()
            total += len(data)
            chunks.append([time.time(), total])
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    try:
        code = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        code = proc.wait(timeout=5)
    result = {
        "command": cmd,
        "bytes": total,
        "chunks": chunks,
        "exit_code": code,
        "timed_out": timed_out,
        "stopped": stop["asked"],
        "ended": time.time(),
        "stderr": (out / "server.err").read_text(errors="replace")[-2000:],
    }
    atomic_write(out / "recv.json", json.dumps(result))


def start(args: argparse.Namespace) -> dict:
    if not args.cmd:
        raise HostError("give the server command after --, e.g. -- nc -l -p 5001")
    before = counters.read_all(args.ns) if args.ns else {}  # before anything can reach the server
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("recv.bin", "recv.json", "server.pid", "server.err", "recorder.pid"):
        (out / name).unlink(missing_ok=True)
    captures = capture.start_all(out / "captures", args.capture, args.port, args.timeout, CAPTURE_MAX_PACKETS)
    captures += capture.start_tunnel(out / "captures", args.tunnel_capture, args.timeout, CAPTURE_MAX_PACKETS)
    pid = os.fork()
    if pid == 0:  # detach from the SSH session that started us
        try:
            os.setsid()
            if os.fork():
                os._exit(0)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            atomic_write(out / "recorder.pid", str(os.getpid()))
            record(out, args.cmd, args.timeout)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    deadline = time.monotonic() + STARTED_TIMEOUT
    while not (out / "server.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not (out / "server.pid").exists():
        raise HostError(f"the recorder did not start the server within {STARTED_TIMEOUT:g} s")
    return {"changed": True, "out": str(out), "counters": before, "captures_started": captures}


def wait(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    deadline = time.monotonic() + args.timeout
    while not (out / "recv.json").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not (out / "recv.json").exists():
        stop(args)
    if not (out / "recv.json").exists():
        raise HostError(f"the server in {out} left no record (was it started? see {out}/server.err)")
    result = json.loads((out / "recv.json").read_text())
    result["counters"] = counters.read_all(args.ns) if args.ns else {}
    captured = capture.stop(out / "captures", args.port)
    result["captures"] = captured["captures"]
    result["files"] = {"recv.bin": str(out / "recv.bin"), **captured["files"]}
    return result


def stop(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    stopped = False
    recorder = read_pid(out / "recorder.pid")
    if recorder and alive(recorder):
        kill([recorder], signal.SIGTERM)  # it ends its server and writes recv.json
        stopped = True
        wait_gone([recorder], 8)
    server = read_pid(out / "server.pid")
    if server and alive(server):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server, signal.SIGKILL)
        stopped = True
    stopped |= capture.stop(out / "captures", args.port)["changed"]
    return {"changed": stopped}


def build_parser() -> Parser:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    for name, text in (
        ("start", "read counters, start the server"),
        ("wait", "wait for it, read counters"),
        ("stop", "end it now"),
    ):
        a = sub.add_parser(name, help=text)
        a.add_argument("--out", required=True, help="directory for recv.bin, recv.json, pcaps and pid files")
        a.add_argument("--port", type=int, required=True, help="the experiment's port (captures)")
        if name != "stop":
            a.add_argument("--timeout", type=float, required=True, help="seconds: upper bound of the wait")
            counters.add_ns_option(a)
        if name == "start":
            capture.add_capture_option(a)
            a.add_argument(
                "--tunnel-capture",
                action="append",
                default=[],
                metavar="NAME:IFACE:UDPPORT:SRC",
                help="tcpdump the outer UDP packets from SRC to a VXLAN port (their checksums); repeatable",
            )
            a.add_argument("cmd", nargs=argparse.REMAINDER, help="-- the server command")
    return p


def run(args: argparse.Namespace) -> dict:
    if getattr(args, "cmd", None) and args.cmd[0] == "--":
        args.cmd = args.cmd[1:]
    return {"start": start, "wait": wait, "stop": stop}[args.action](args)
