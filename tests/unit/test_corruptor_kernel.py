"""The eBPF injector's window, in the kernel: the C program follows window.py's rule.

Each scenario runs in a network namespace of its own (unshare --net, its
loopback only; the tools are called directly, as the dispatcher would, which
itself acts only from a host's own namespace): the real program, compiled
with clang and attached with tc by `corruptor arm`, damages a real TCP stream to port 5001; `corruptor
stats` reads why the window closed from the program's map. Root, clang and
bpftool only (what `make deps` installs); no lab.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not (shutil.which("clang") and shutil.which("bpftool") and shutil.which("unshare")),
    reason="needs root, clang and bpftool",
)

# Runs inside the namespace: arm on lo, send a stream (or nothing), read the stats, disarm.
SCENARIO = textwrap.dedent(
    """
    import json, os, socket, subprocess, sys, threading, time
    sys.path.insert(0, {root!r})
    os.environ["BADSUM_LIB_DIR"] = {lib!r}
    from badsum.host.experiment import corruptor
    from badsum.host.shared import bpf
    from pathlib import Path
    def call(tool, argv):  # the tools themselves: the dispatcher acts only from a host's own namespace
        module = {{"bpf": bpf, "corruptor": corruptor}}[tool]
        return module.run(module.build_parser().parse_args(argv))
    corruptor.STATE = Path({state!r})  # its records, not this machine's /run/badsum
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    # real checksums on loopback: with TX offload the damage would travel with a valid one
    subprocess.run(["ethtool", "-K", "lo", "tx", "off"], capture_output=True)
    call("bpf", ["build", "--program", "corrupt"])
    call("corruptor", ["arm", "--backend", "ebpf", "--iface", "lo", "--hook", "egress", "--ports", "5001",
        "--direction", "to-port", "--rate", {rate!r}, "--pattern", "random", "--stuck-bit", "5",
        "--stuck-value", "0", "--stuck-offset", "13", "--start-in", "0.1", "--duration", {duration!r},
        "--target", {target!r}, "--expire-after", {expire!r}, "--protect-port", "22"])
    srv = socket.create_server(("127.0.0.1", 5001))
    def drain():
        conn, _ = srv.accept()
        while conn.recv(65536):
            pass
    threading.Thread(target=drain, daemon=True).start()
    gap, seconds = {gap!r}, {seconds!r}
    if gap is not None:
        s = socket.create_connection(("127.0.0.1", 5001))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            s.send(b"x" * 1000)
            time.sleep(gap)
    else:
        time.sleep(seconds)
    st = call("corruptor", ["stats", "--iface", "lo"])
    call("corruptor", ["disarm", "--iface", "lo"])
    print(json.dumps(st["stats"]))
    """
)


def scenario(tmp_path: Path, *, rate: str, target: int, duration: float, gap: float | None, seconds: float,
             expire: float = 30) -> dict:  # fmt: skip
    script = SCENARIO.format(
        root=str(ROOT / "tools"),
        lib=str(tmp_path / "lib"),
        state=str(tmp_path / "state"),
        rate=rate,
        target=str(target),
        duration=str(duration),
        expire=str(expire),
        gap=gap,
        seconds=seconds,
    )
    proc = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def length(stats: dict) -> float:
    return stats["window_end"] - stats["window_start"]


def test_a_steady_stream_closes_the_kernels_window_on_evidence(tmp_path: Path) -> None:
    stats = scenario(tmp_path, rate="50", target=5, duration=1.0, gap=0.005, seconds=1.5)
    assert stats["window_closed_by"] == "evidence"
    assert 5 <= stats["corrupted_packets"] <= 6  # a second CPU may damage one more before it sees the count
    assert 0 < length(stats) < 0.5
    assert stats["outside_window_packets"] > 0  # the stream went on, undamaged, after the window


def test_a_stalled_stream_keeps_it_open_to_its_longest_duration(tmp_path: Path) -> None:
    stats = scenario(tmp_path, rate="50", target=5, duration=1.0, gap=0.4, seconds=1.6)
    assert stats["window_closed_by"] == "max-duration"
    assert stats["corrupted_packets"] < 5
    assert length(stats) == pytest.approx(1.0, abs=0.001)


def test_a_stream_that_never_starts_leaves_the_injector_inert_after_its_expiry(tmp_path: Path) -> None:
    stats = scenario(tmp_path, rate="100", target=5, duration=0.2, gap=None, seconds=0.8, expire=0.2)
    assert stats["window_closed_by"] == "no-traffic"
    assert stats["corrupted_packets"] == 0 and stats["window_start"] is None


def test_a_fixed_window_lasts_its_duration_whatever_it_damaged(tmp_path: Path) -> None:
    stats = scenario(tmp_path, rate="50", target=0, duration=0.5, gap=0.005, seconds=1.0)
    assert stats["window_closed_by"] == "duration"
    assert stats["corrupted_packets"] > 10
    assert length(stats) == pytest.approx(0.5, abs=0.001)
