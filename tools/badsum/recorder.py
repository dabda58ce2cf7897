#!/usr/bin/env python3
"""Run the harness server (`nc -l`) and record what it prints, with arrival times.

Standard library only; the traffic role copies it to the receiving host.

    start --out DIR --timeout S [--counters L=NS] -- nc -l -p 5001
                                                     read counters, detach, run the server, record
    wait  --out DIR --timeout S [--counters L=NS]    until the server has exited, then read counters
    stop  --out DIR                                  end it now (teardown)

The server is whatever command is given: nc in the host's own stack, or nc in
a container (`docker run -i … nc -l -p 5001`). Its stdout goes to recv.bin;
recv.json lists (time, bytes so far) per read, so the analyzer knows when
each message arrived. The recorder ends the server itself after --timeout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

try:
    from badsum import counters
except ImportError:  # inside the host kit
    import counters  # type: ignore[no-redef]


def record(out: Path, cmd: list[str], timeout: float) -> None:
    """Runs in the detached child: the server's stdout is our stdin pipe."""
    with open(out / "server.err", "wb") as errors:  # the child keeps its own copy
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, start_new_session=True
        )
    (out / "server.pid").write_text(str(proc.pid))
    chunks: list[list[float]] = []
    total = 0
    timed_out = False
    stop = {"asked": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(asked=True))
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
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
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        code = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
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
    }
    tmp = out / "recv.json.tmp"
    tmp.write_text(json.dumps(result))
    tmp.rename(out / "recv.json")


def _counters(args: argparse.Namespace) -> dict:
    """Counters read in the same call (before the server starts, after it ends): one round trip less."""
    if not args.counters:
        return {}
    return {
        "counters": {spec.split("=", 1)[0]: counters.read(spec.split("=", 1)[1]) for spec in args.counters}
    }


def cmd_start(args: argparse.Namespace) -> int:
    before = _counters(args)  # before anything can reach the server
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("recv.bin", "recv.json", "server.pid", "server.err", "recorder.pid"):
        (out / name).unlink(missing_ok=True)
    if not args.cmd:
        print("badsum-recorder: give the server command after --", file=sys.stderr)
        return 2
    pid = os.fork()
    if pid == 0:  # detach from the SSH session that started us
        os.setsid()
        if os.fork():
            os._exit(0)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        (out / "recorder.pid").write_text(str(os.getpid()))
        try:
            record(out, args.cmd, args.timeout)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    deadline = time.monotonic() + 5
    while not (out / "server.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    result = {"started": (out / "server.pid").exists(), "out": str(out)}
    print(json.dumps({**result, **before}))
    return 0


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def cmd_wait(args: argparse.Namespace) -> int:
    out = Path(args.out)
    deadline = time.monotonic() + args.timeout
    while not (out / "recv.json").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not (out / "recv.json").exists():
        args.quiet = True
        cmd_stop(args)
    result = json.loads((out / "recv.json").read_text()) if (out / "recv.json").exists() else {}
    print(json.dumps({**result, **_counters(args)}))  # the whole record, arrival times included
    return 0 if result else 1


def cmd_stop(args: argparse.Namespace) -> int:
    out = Path(args.out)
    pid = _pid(out / "recorder.pid")
    stopped = False
    if pid and Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGTERM)  # the recorder ends its server and writes recv.json
        stopped = True
        deadline = time.monotonic() + 8
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    server = _pid(out / "server.pid")
    if server and Path(f"/proc/{server}").exists():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server, signal.SIGKILL)
        stopped = True
    if not getattr(args, "quiet", False):
        print(json.dumps({"stopped": stopped}))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["start", "wait", "stop"])
    p.add_argument("--out", required=True)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument(
        "--counters",
        action="append",
        default=[],
        metavar="LABEL=NETNS",
        help="start/wait: also read the checksum counters in these namespaces",
    )
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = p.parse_args(argv[:cut])
    args.cmd = argv[cut + 1 :]
    return {"start": cmd_start, "wait": cmd_wait, "stop": cmd_stop}[args.action](args)


if __name__ == "__main__":
    sys.exit(main())
