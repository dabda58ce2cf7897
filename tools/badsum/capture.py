#!/usr/bin/env python3
"""Packet captures of the experiment port (host kit): tcpdump, bounded, then decoded.

    capture start --out DIR --name NAME --iface IF [--netns PATH] --port P [--timeout S] [--max-packets N]
    capture stop  --out DIR --port P         stop every capture in DIR, decode, print JSON

`stop` reports, per pcap, how many TCP segments towards the server tcpdump
finds with an incorrect checksum, and a few of them as tcpdump prints them
(-vv), as the article showed them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SAMPLES = 5


def start(a: argparse.Namespace) -> dict:
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    pcap = out / f"{a.name}.pcap"
    ns = ["nsenter", f"--net={a.netns}"] if a.netns and a.netns != "self" else []
    # -U: packets reach the file as they come, so a stopped capture is complete;
    # timeout and -c bound it whatever happens to the controller.
    cmd = [*ns, "timeout", str(a.timeout), "tcpdump", "-i", a.iface, "-U", "-n", "-s", "0",
           "-c", str(a.max_packets), "-w", str(pcap), "tcp", "port", str(a.port)]  # fmt: skip
    with open(out / f"{a.name}.err", "wb") as errors:  # tcpdump keeps its own copy
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True
        )
    (out / f"{a.name}.pid").write_text(str(proc.pid))
    # tcpdump says "listening on" once the socket is open: wait for it (bounded)
    deadline = time.monotonic() + 5
    err = out / f"{a.name}.err"
    while time.monotonic() < deadline and b"listening on" not in err.read_bytes():
        if proc.poll() is not None:
            raise SystemExit(f"badsum-capture: tcpdump on {a.iface} failed: {err.read_text().strip()}")
        time.sleep(0.02)
    return {"started": a.name, "pcap": str(pcap)}


def decode(pcap: Path, port: int) -> tuple[int, list[str]]:
    # Segments towards the server only: what the corruptor damages. The
    # server's own ACKs, captured before its NIC fills in the checksum (TX
    # offload), would show as "incorrect" without being corrupt.
    proc = subprocess.run(["tcpdump", "-r", str(pcap), "-nn", "-vv", "tcp", "dst", "port", str(port)],
                          capture_output=True, text=True, check=False, timeout=60)  # fmt: skip
    lines = proc.stdout.splitlines()
    bad = []
    for i, line in enumerate(lines):
        if "incorrect" in line:
            # -vv prints the IP header on one line and the TCP line after it
            bad.append((lines[i - 1].strip() + " " + line.strip()) if i and "cksum" in line else line.strip())
    return len(bad), bad[:SAMPLES]


def stop(a: argparse.Namespace) -> dict:
    out = Path(a.out)
    for pidfile in out.glob("*.pid"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.killpg(int(pidfile.read_text()), signal.SIGINT)
    time.sleep(0.2)
    for pidfile in out.glob("*.pid"):
        pid = int(pidfile.read_text())
        deadline = time.monotonic() + 3
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        pidfile.unlink()
    captures = {}
    for pcap in sorted(out.glob("*.pcap")):
        count, samples = decode(pcap, a.port)
        captures[pcap.stem] = {"file": pcap.name, "incorrect": count, "samples": samples}
    return {"captures": captures}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["start", "stop"])
    p.add_argument("--out", required=True)
    p.add_argument("--name", default="capture")
    p.add_argument("--iface", default="eth0")
    p.add_argument("--netns", default="self")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--timeout", type=int, default=60)
    p.add_argument("--max-packets", type=int, default=20000)
    a = p.parse_args()
    print(json.dumps(start(a) if a.action == "start" else stop(a)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
