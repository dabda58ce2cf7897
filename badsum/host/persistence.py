"""What keeps the workaround in place on a host: the record of what remediation changed, and the guard's service.

The record lives in <lib_dir>/remediation/<hostname>/ (lib_dir is shared by
the emulated hosts of a lab: one directory per host name): state.json, the
guard's pidfile, status, log and list of changes, and the copy of the host
kit the guard runs from - so the guard never depends on a kit that an
upgrade, another host's rollback or an ephemeral task could remove.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import guard
from .common import HostError, atomic_write, kill, kit_path, lib_dir, sh, wait_gone

UNIT = "badsum-rx-guard.service"
UNIT_PATH = Path("/etc/systemd/system") / UNIT


def state_dir() -> Path:
    # lib_dir is shared by the emulated hosts of a lab: one record per host name.
    return lib_dir() / "remediation" / os.uname().nodename


def load_state() -> dict | None:
    path = state_dir() / "state.json"
    return json.loads(path.read_text()) if path.exists() else None


def save_state(state: dict) -> None:
    atomic_write(state_dir() / "state.json", json.dumps(state, indent=1))


def has_systemd() -> bool:
    return Path("/run/systemd/system").is_dir()


def guard_mode(wanted: str) -> str:
    if wanted == "auto":
        return "systemd" if has_systemd() else "daemon"
    if wanted == "systemd" and not has_systemd():
        raise HostError("--guard systemd: systemd is not running on this host (use daemon or auto)")
    return wanted


def guard_kit() -> Path:
    return state_dir() / "badsum-host.pyz"


def install_guard_kit() -> None:
    """The guard's own copy of the kit that runs now (installed or ephemeral alike)."""
    source = kit_path()
    if source.suffix != ".pyz":
        raise HostError(f"the guard runs from a built kit (badsum-host.pyz), not from {source}")
    target = guard_kit()
    if not target.exists() or target.read_bytes() != source.read_bytes():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(source, tmp)
        tmp.chmod(0o644)
        tmp.rename(target)


# Runtimes that start containers at boot: the guard is up (listening, first pass
# done - Type=notify) before any of them, so no container is ever exposed.
RUNTIME_UNITS = (
    "docker.service",
    "containerd.service",
    "crio.service",
    "kubelet.service",
    "podman-restart.service",
    "mesos-agent.service",
    "mesos-slave.service",
)


def unit_text(interval: float) -> str:
    # The sandbox leaves the guard what it uses: netlink and ethtool on every
    # namespace (NET_ADMIN; SYS_ADMIN for setns; SYS_PTRACE to open another
    # process's namespace), its own state directory, and nothing else to write
    # (wherever badsum_lib_dir puts it: /home and /tmp stay readable).
    # A systemd too old for a setting ignores it with a warning. The runtimes
    # ordered after it wait for its first pass at boot, at most TimeoutStartSec.
    return (
        "# Written by badsum (remediate apply); `remediate rollback` removes it.\n"
        "[Unit]\n"
        "Description=badsum: rx-checksumming off on every container veth (veth checksum bug workaround)\n"
        "Documentation=https://github.com/moby/moby/issues/18776\n"
        f"Before={' '.join(RUNTIME_UNITS)}\n\n"
        "[Service]\n"
        "Type=notify\n"
        "TimeoutStartSec=30\n"
        f"ExecStart=/usr/bin/python3 -I {guard_kit()} guard run --state-dir {state_dir()} --interval {interval:g}\n"
        "Restart=always\n"
        "RestartSec=2\n"
        "CapabilityBoundingSet=CAP_NET_ADMIN CAP_SYS_ADMIN CAP_SYS_PTRACE CAP_DAC_READ_SEARCH\n"
        "NoNewPrivileges=yes\n"
        "ProtectSystem=strict\n"
        f"ReadWritePaths={state_dir()}\n"
        "ProtectHome=read-only\n"
        "ProtectKernelModules=yes\n"
        "RestrictAddressFamilies=AF_NETLINK AF_UNIX AF_INET AF_INET6\n\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def guard_running(mode: str | None) -> bool:
    if mode == "systemd":
        return sh("systemctl", "is-active", "--quiet", UNIT, check=False).returncode == 0
    return guard.Files(str(state_dir())).running() is not None


GUARD_DOWN = ("from now on", "no guard runs")


def guard_gap(mode: str | None) -> tuple[str, str] | None:
    """When containers would come up with rx on despite the guard, and why; None when it covers them.

    The one rule the audit, apply and verify share. Under systemd the guard
    must run, be enabled (`enabled-runtime` is gone after a reboot, as
    `disabled` is) and be the unit this kit writes: another version's, or an
    edited one, may lack the ordering that puts it before the runtimes at boot.
    A daemon covers the host while it runs; without systemd, nothing of
    badsum's starts it again after a reboot (README: the guard).
    """
    if not guard_running(mode):
        return GUARD_DOWN
    if mode != "systemd":
        return None
    enabled = sh("systemctl", "is-enabled", UNIT, check=False).stdout.strip() or "not enabled"
    if enabled != "enabled":
        return "after a reboot", f"{UNIT} runs but is {enabled}"
    text = UNIT_PATH.read_text() if UNIT_PATH.is_file() else ""
    interval = re.search(r" --interval (\S+)\n", text)
    if not interval or text != unit_text(float(interval.group(1))):
        return "at boot", f"{UNIT} is not the unit this badsum writes (another version's, or edited)"
    return None


def start_guard(mode: str, interval: float) -> None:
    install_guard_kit()
    if mode == "systemd":
        atomic_write(UNIT_PATH, unit_text(interval))
        sh("systemctl", "daemon-reload")
        sh("systemctl", "reset-failed", UNIT, check=False)  # a unit that gave up restarting starts again
        sh("systemctl", "enable", UNIT)
        # restart, not start: a guard that runs from an older unit or kit runs from the new ones.
        # Type=notify: this returns once the guard listens and has made its first pass.
        sh("systemctl", "restart", UNIT, timeout=120)
        return
    files = guard.Files(str(state_dir()))
    files.dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-I", str(guard_kit()), "guard", "run", "--state-dir", str(files.dir)]
    with open(os.devnull, "rb") as devnull, files.log.open("ab") as log:
        # Its own session: it outlives the SSH connection that started it, in the
        # caller's cgroup (on the embedded lab: the emulated host's, which teardown kills).
        subprocess.Popen(
            [*argv, "--interval", f"{interval:g}"],
            stdin=devnull,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + 5
    while files.running() is None:
        if time.monotonic() > deadline:
            raise HostError(f"the guard did not start; its log: {files.log.read_text()[-800:]}")
        time.sleep(0.02)


def stop_guard(mode: str) -> None:
    files = guard.Files(str(state_dir()))
    if mode == "systemd":
        stopped = sh("systemctl", "disable", "--now", UNIT, check=False, timeout=120)
        if guard_running(mode):  # forgetting a guard that still runs would leave it turning veths off
            raise HostError(f"{UNIT} did not stop: {(stopped.stderr or stopped.stdout).strip()}")
        UNIT_PATH.unlink(missing_ok=True)
        sh("systemctl", "daemon-reload", check=False)
        sh("systemctl", "reset-failed", UNIT, check=False)  # no "failed" entry left behind
    else:
        pid = files.running()
        if pid:
            kill([pid], signal.SIGTERM)
            if not wait_gone([pid], 3):
                kill([pid], signal.SIGKILL)
                wait_gone([pid], 3)
    for path in (files.pid, files.status):  # the guard's own, whichever way it ran
        path.unlink(missing_ok=True)
    guard_kit().unlink(missing_ok=True)
