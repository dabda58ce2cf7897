"""The guard daemon, really running: it stops at once on SIGTERM, with its log saying so.

It runs in a cgroup of an emulated host of its own (/badsum/utgrd/host1),
which is also its scope: no namespace is in it, so its passes change nothing
on this machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from badsum.lab import cgroups

ROOT = Path(__file__).resolve().parents[2]
LAB = "utgrd"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="root only: the guard runs in a cgroup of its own")


@pytest.fixture
def host_cgroup() -> Iterator[list[Path]]:
    cgroups.kill(LAB)
    cgroups.remove(LAB)
    yield cgroups.create_node(LAB, "host1")
    cgroups.kill(LAB)
    assert cgroups.remove(LAB) == []


def test_the_guard_stops_at_once_on_sigterm(host_cgroup: list[Path], tmp_path: Path) -> None:
    def join() -> None:
        for procs in host_cgroup:
            procs.write_text(str(os.getpid()))

    guard = subprocess.Popen(
        [sys.executable, "-m", "badsum.host", "guard", "run", "--state-dir", str(tmp_path), "--interval", "60"],
        cwd=ROOT,
        preexec_fn=join,  # in its cgroup before it runs a line
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while not (tmp_path / "guard.pid").exists():
        assert guard.poll() is None, guard.stderr.read().decode() if guard.stderr else ""
        assert time.monotonic() < deadline, "the guard did not start"
        time.sleep(0.02)
    assert f"scope /badsum/{LAB}/host1" in (tmp_path / "guard.log").read_text()

    started = time.monotonic()
    guard.send_signal(signal.SIGTERM)
    # The next pass is a minute away and no link appears: only the signal can wake it.
    assert guard.wait(timeout=5) == 0
    assert time.monotonic() - started < 1
    assert (tmp_path / "guard.log").read_text().rstrip().endswith("stopped")
    assert not (tmp_path / "guard.pid").exists()
