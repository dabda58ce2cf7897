"""What keeps the workaround in place on a host: the record of what remediation changed, and the guard's service.

The record lives in <lib_dir>/remediation/<hostname>/ (lib_dir is shared by
the emulated hosts of a lab: one directory per host name): state.json, the
guard's pidfile, status, log and list of changes, and the copy of the host
kit the guard runs from - so the guard never depends on a kit that an
upgrade, another host's rollback or an ephemeral task could remove.

The record names the machine it was made on (/etc/machine-id): a host renamed
since still finds it. Whatever badsum leaves on a host carries a mark of
badsum's own - the unit's first line, the guard's command line, the CNI
plugin's entry and file - so rollback finds it all even when the record is
gone (lib dir wiped, an empty or corrupt file).
"""

# Longer than ~300 lines: the record rollback trusts (its format, its durable atomic writing, its
#   reading back) and the unit that runs the guard from it are one contract; read together, or not
#   trusted.

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional, Tuple

from ..shared import hostns
from ..shared.common import (
    HostError,
    atomic_write,
    kill,
    kit_path,
    lib_dir,
    read_text,
    require_trusted,
    sh,
    shown,
    unlink,
    untrusted,
    wait_gone,
)
from . import guard

UNIT = "badsum-rx-guard.service"
UNIT_PATH = Path("/etc/systemd/system") / UNIT
UNIT_MARK = "# Written by badsum (remediate apply); `remediate rollback` removes it."
STATE = "state.json"
# What the guard keeps beside the record.
OWN_FILES = (
    "guard.log",
    "guard.log.1",
    "guard-changes.jsonl",
    "guard-vxlan.jsonl",  # guard.Files.vxlan_changes: the second hazard's devices the guard switched off
    "guard.pid",
    "guard.json",
    "badsum-host.pyz",
    "cni-plugin.jsonl",  # the chained CNI plugin's log (remediate.CNI_LOG), and its rotation
    "cni-plugin.jsonl.1",
)


def state_dir() -> Path:
    # lib_dir is shared by the emulated hosts of a lab: one record per host name.
    return lib_dir() / "remediation" / shown(os.uname().nodename)


def machine_id() -> str:
    try:
        return read_text("/etc/machine-id").strip()
    except OSError:
        return ""


def _moved_record() -> Optional[Path]:
    """The record of this machine made under another host name (renamed since), when there is exactly one.

    Emulated hosts share the machine's id: only a real host (or a VM) looks.
    """
    ours = machine_id()
    if not ours or hostns.where() != "host":
        return None
    found = []
    for path in (lib_dir() / "remediation").glob(f"*/{STATE}"):
        try:
            if json.loads(path.read_text()).get("machine_id") == ours:
                found.append(path)
        except (OSError, ValueError, AttributeError):
            continue
    return found[0] if len(found) == 1 else None


def read_record() -> Tuple[Optional[dict], Optional[str], Path]:
    """(the record, or None; why it cannot be used, when it is there but cannot be; where it is)."""
    path = state_dir() / STATE
    if not path.exists():
        path = _moved_record() or path
    if not path.exists():
        return None, None, path
    why = untrusted(path)
    if why:
        return None, f"{path} cannot be trusted: {why}", path
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"{path} cannot be read: {exc}", path
    if not isinstance(record, dict) or not isinstance(record.get("veths"), list):
        return None, f"{path} is not a remediation record", path
    return record, None, path


def load_state() -> Optional[dict]:
    return read_record()[0]


def save_state(state: dict) -> None:
    require_trusted(state_dir(), "the remediation's state directory")
    atomic_write(state_dir() / STATE, json.dumps(state, indent=1))


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
    require_trusted(target.parent, "the remediation's state directory")
    if not target.exists() or target.read_bytes() != source.read_bytes():
        atomic_write(target, source.read_bytes(), 0o644)


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
    # Its resources are capped: a guard must never be what takes a host down
    # (it holds one Python process, no threads, no children; bench/guard.py
    # measures its CPU under an event storm).
    # A systemd too old for a setting ignores it with a warning. The runtimes
    # ordered after it wait for its first pass at boot, at most TimeoutStartSec.
    return (
        f"{UNIT_MARK}\n"
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
        "MemoryMax=256M\n"
        "TasksMax=16\n"
        "CPUQuota=50%\n"
        "LimitNOFILE=4096\n"
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


def unit_is_ours() -> bool:
    """A guard unit badsum wrote (any version: its first line says so), whatever else it holds now."""
    try:
        return read_text(UNIT_PATH).startswith(UNIT_MARK)
    except OSError:
        return False


def guard_running(mode: Optional[str]) -> bool:
    if mode == "systemd":
        return sh("systemctl", "is-active", "--quiet", UNIT, check=False).returncode == 0
    return guard.Files(str(state_dir())).running() is not None


GUARD_DOWN = ("from now on", "no guard runs")


def guard_gap(mode: Optional[str]) -> Optional[Tuple[str, str]]:
    """When containers would come up with rx on despite the guard, and why; None when it covers them.

    The one rule the audit, apply and verify share. Under systemd the guard
    must run, be enabled (`enabled-runtime` is gone after a reboot, as
    `disabled` is) and be the unit this kit writes: another version's, or an
    edited one, may lack the ordering that puts it before the runtimes at boot.
    A daemon covers the host while it runs; without systemd, nothing of
    badsum's starts it again after a reboot (docs/guide/fleet.md: the guard).
    """
    if not guard_running(mode):
        return GUARD_DOWN
    if mode != "systemd":
        return None
    enabled = sh("systemctl", "is-enabled", UNIT, check=False).stdout.strip() or "not enabled"
    if enabled != "enabled":
        return "after a reboot", f"{UNIT} runs but is {enabled}"
    text = read_text(UNIT_PATH) if UNIT_PATH.is_file() else ""
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
            raise HostError(f"the guard did not start; its log: {read_text(files.log)[-800:]}")
        time.sleep(0.02)


def stray_guards() -> List[int]:
    """Guard daemons of this host that a record does not name (its record is gone): found by their command line.

    Only processes of this host's scope (an emulated host's cgroup), running a
    kit's `guard run` with a state directory under this lib_dir's remediation/.
    """
    from .containers import scope_pids  # the emulated host's own processes

    scope = hostns.own_cgroup()
    pids = scope_pids(scope) if scope else None
    under = str(lib_dir() / "remediation") + "/"
    found = []
    for pid in pids if pids is not None else filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode("utf-8", "surrogateescape") for a in argv]
        if "guard" not in words or "run" not in words or "--state-dir" not in words:
            continue
        if not any(w.endswith("badsum-host.pyz") for w in words):
            continue
        state = words[words.index("--state-dir") + 1] if words.index("--state-dir") + 1 < len(words) else ""
        if (state + "/").startswith(under) and int(pid) != os.getpid():
            found.append(int(pid))
    return found


def stop_guard(mode: str) -> None:
    files = guard.Files(str(state_dir()))
    if mode == "systemd":
        stopped = sh("systemctl", "disable", "--now", UNIT, check=False, timeout=120)
        if guard_running(mode):  # forgetting a guard that still runs would leave it turning veths off
            raise HostError(f"{UNIT} did not stop: {(stopped.stderr or stopped.stdout).strip()}")
        unlink(UNIT_PATH)
        sh("systemctl", "daemon-reload", check=False)
        sh("systemctl", "reset-failed", UNIT, check=False)  # no "failed" entry left behind
    else:
        pids = [p for p in [files.running()] if p] + stray_guards()
        stop_processes(pids)
    for path in (files.pid, files.status):  # the guard's own, whichever way it ran
        unlink(path)
    unlink(guard_kit())


def stop_processes(pids: List[int]) -> None:
    pids = sorted(set(pids))
    if not pids:
        return
    kill(pids, signal.SIGTERM)
    if not wait_gone(pids, 3):
        kill(pids, signal.SIGKILL)
        if not wait_gone(pids, 3):
            raise HostError(f"the guard (pid {', '.join(map(str, pids))}) did not stop")


def remove_state_dir(directory: Optional[Path] = None) -> List[str]:
    """The record and the guard's files, then the directory and remediation/ when nothing else is in them."""
    removed = []
    directory = directory or state_dir()
    for name in (STATE, *OWN_FILES):
        if unlink(directory / name):
            removed.append(str(directory / name))
    for d in (directory, directory.parent):
        with contextlib.suppress(OSError):
            d.rmdir()
    return removed
