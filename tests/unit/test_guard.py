"""The guard daemon, really running: it stops at once on SIGTERM, with its log saying so, and
speaks systemd's readiness protocol (Type=notify) as systemd hears it.

It runs on an emulated host of a lab of its own (utgrd, one host), inside
that host's namespaces and cgroup as the host's own processes are: its scope
is that host, where no container is, so its passes change nothing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from badsum.host.fleet import guard
from badsum.lab import enter
from badsum.lab.spec import STATE_ROOT

ROOT = Path(__file__).resolve().parents[2]
LAB = "utgrd"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="root only: the guard runs on a lab's host")


def badsum(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "badsum", *args], cwd=ROOT, capture_output=True, check=True, timeout=60)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The lab's one host; a directory both this machine and the host see (the host's /tmp is its own)."""
    badsum("lab", "down", "--lab", LAB)
    badsum("lab", "up", "--lab", LAB, "--hosts", "1", "--write-inventory", str(tmp_path_factory.mktemp("inventory")))
    yield "host1"
    badsum("lab", "down", "--lab", LAB)


@pytest.fixture
def shared(host: str) -> Iterator[Path]:
    path = STATE_ROOT / LAB / "test"
    path.mkdir(parents=True, exist_ok=True)
    yield path
    for item in sorted(path.rglob("*"), reverse=True):
        item.unlink() if not item.is_dir() else item.rmdir()


def on_host(host: str, argv: list[str], **kwargs) -> subprocess.Popen:
    command, join = enter.command(LAB, host, argv)
    return subprocess.Popen(command, cwd=ROOT, preexec_fn=join, **kwargs)


def test_the_guard_stops_at_once_on_sigterm(host: str, shared: Path) -> None:
    tmp_path = shared
    # What a guard turned off before a reboot, and since: it keeps only this boot's.
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    veth = {"netns": 4026532301, "ifindex": 3, "ifname": "eth0", "owner": "pod x", "rx": "on"}
    now, legacy = {**veth, "boot": boot}, {**veth, "ifindex": 4}
    changes = tmp_path / "guard-changes.jsonl"
    changes.write_text("".join(json.dumps(v) + "\n" for v in ({**veth, "boot": "an earlier boot"}, now, legacy)))
    daemon = on_host(
        host,
        [sys.executable, "-m", "badsum.host", "guard", "run", "--state-dir", str(tmp_path), "--interval", "60"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while not (tmp_path / "guard.pid").exists():
        assert daemon.poll() is None, daemon.stderr.read().decode() if daemon.stderr else ""
        assert time.monotonic() < deadline, "the guard did not start"
        time.sleep(0.02)
    assert f"scope /badsum/{LAB}/host1" in (tmp_path / "guard.log").read_text()
    assert guard.Files(str(tmp_path)).changed() == [now, legacy]

    started = time.monotonic()
    os.kill(enter.inner_pid(daemon.pid), signal.SIGTERM)
    # The next pass is a minute away and no link appears: only the signal can wake it.
    assert daemon.wait(timeout=5) == 0
    assert time.monotonic() - started < 1
    assert (tmp_path / "guard.log").read_text().rstrip().endswith("stopped")
    assert not (tmp_path / "guard.pid").exists()


def test_the_guard_tells_systemd_it_is_ready_only_after_its_first_pass(host: str, shared: Path) -> None:
    """Type=notify, spoken as systemd listens for it: READY=1 on $NOTIFY_SOCKET once the pidfile says running."""
    tmp_path = shared
    notify_path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(notify_path))
        listener.settimeout(10)
        state = tmp_path / "state"
        daemon = on_host(
            host,
            [sys.executable, "-m", "badsum.host", "guard", "run", "--state-dir", str(state), "--interval", "60"],
            env=dict(os.environ, NOTIFY_SOCKET=str(notify_path)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            messages = [listener.recv(4096).decode()]
            assert messages == ["READY=1"]
            guard_pid = enter.inner_pid(daemon.pid)
            # ready means running, not starting (the pidfile has its PID as the host's PID namespace numbers it)
            assert (state / "guard.pid").read_text() == str(enter.node_view_pid(guard_pid))
            messages.append(listener.recv(4096).decode())
            assert messages[1] == "STATUS=0 container veths turned to rx off in 1 passes"
            os.kill(guard_pid, signal.SIGTERM)
            assert listener.recv(4096).decode() == "STOPPING=1"
            assert daemon.wait(timeout=5) == 0
        finally:
            daemon.kill()
            daemon.wait()


def test_notify_reaches_an_abstract_socket_and_is_silent_without_one(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"badsum-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        listener.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        guard.notify("READY=1")
        assert listener.recv(64) == b"READY=1"
        monkeypatch.delenv("NOTIFY_SOCKET")
        guard.notify("READY=1")  # not under systemd: nothing sent, nothing raised
        with pytest.raises(TimeoutError):
            listener.recv(64)


def test_rollback_turns_on_only_what_this_boot_turned_off() -> None:
    """After a reboot the same netns inode, ifindex and name may be another container's (one whose runtime
    turned rx off itself, as Mesos does): rollback must leave it alone."""
    old = {"boot": "b1", "netns": 4026532301, "ifindex": 3, "ifname": "eth0", "owner": "mesos container x", "rx": "on"}
    now = {**old, "boot": "b2", "owner": "docker container y"}
    legacy = {k: v for k, v in {**old, "ifindex": 5}.items() if k != "boot"}  # kept before the boot id was
    current, earlier = guard.this_boots([old, now, legacy, now], "b2")
    assert current == [now, legacy] and earlier == [old]
