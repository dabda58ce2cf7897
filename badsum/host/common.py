"""What every host-kit tool shares: errors, commands, waits, and where the kit's files live.

Standard library only, like the whole host kit. A tool reports a problem the
user can act on by raising HostError; the dispatcher (badsum.host.call) turns
it into a failed Ansible task or an exit status of 2 with the message.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# Per-host scratch state: private to each emulated host (a tmpfs of its own),
# and gone with a reboot on a real one.
STATE = Path("/run/badsum")


class HostError(Exception):
    """A failure with a message that says what went wrong on the host and what to do."""


class Parser(argparse.ArgumentParser):
    """argparse that raises HostError instead of exiting, so a bad option fails the task cleanly."""

    prog_name = "badsum-host"  # badsum.host.call() names the tool here before building its parser

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("prog", Parser.prog_name)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        action = self.prog.removeprefix(Parser.prog_name).strip()
        raise HostError(f"{action}: {message}" if action else message)


def sh(
    *cmd: str,
    check: bool = True,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 30,
) -> subprocess.CompletedProcess[str]:
    """Run a command; with check, a non-zero exit raises HostError carrying the command's own message."""
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False, timeout=timeout, env=env)
    except FileNotFoundError:
        raise HostError(f"`{cmd[0]}` is not installed on this host") from None
    except subprocess.TimeoutExpired:
        raise HostError(f"`{' '.join(cmd)}` did not finish within {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        raise HostError(f"`{' '.join(cmd)}` failed: {(proc.stderr or proc.stdout).strip()}")
    return proc


def in_netns(netns: str | None, *cmd: str) -> list[str]:
    """The command, run in a network namespace given as a path (/run/netns/x, /proc/PID/ns/net)."""
    if not netns or netns == "self":
        return list(cmd)
    return ["nsenter", f"--net={netns}", *cmd]


PF_EXITING = 0x4  # include/linux/sched.h: the task is on its way out


def alive(pid: int) -> bool:
    """Running: not gone, not a zombie waiting to be reaped, not already exiting."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] not in ("Z", "X") and not int(fields[6]) & PF_EXITING


def identity(pid: int) -> tuple[int, int] | None:
    """(pid, start time): the same process only while both match (PIDs are reused, quickly on small pid_max)."""
    try:
        return pid, int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def present(process: tuple[int, int]) -> bool:
    """That very process is still in the process table, other than as a zombie (exiting counts)."""
    try:
        fields = Path(f"/proc/{process[0]}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return int(fields[19]) == process[1] and fields[0] not in ("Z", "X")


def kill(pids: Sequence[int], sig: int) -> None:
    """Signal each process that still exists (one may end between a check and the signal)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise HostError(f"{what} did not happen within {timeout:g} s")


def wait_gone(pids: Sequence[int], timeout: float) -> bool:
    """True once none of the processes runs any more (zombies count as gone)."""
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def kit_path() -> Path:
    """The zipapp this code runs from (or this package's directory, when run from a checkout)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if parent.suffix == ".pyz":
            return parent
    return here.parent


def package_data(name: str) -> bytes:
    """A file of the kit (badsum/host/NAME), from the zipapp or a checkout alike.

    The package's own loader reads it: importlib.resources or pkgutil would
    cost every host call that needs one ~5 ms of imports.
    """
    try:
        return __loader__.get_data(os.path.join(os.path.dirname(__file__), name))
    except OSError:
        raise HostError(f"the host kit lacks {name}") from None


def boot_id() -> str:
    """This boot's id: namespace inodes and ifindexes are only unique within one boot."""
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def lib_dir() -> Path:
    """The kit lives in <lib_dir>/bin/; compiled programs, caches and records go next to it.

    BADSUM_LIB_DIR says where when the kit runs from elsewhere: a checkout, or
    a copy that came with one task (badsum.kit.run's ephemeral).
    """
    if "BADSUM_LIB_DIR" in os.environ:
        return Path(os.environ["BADSUM_LIB_DIR"])
    kit = kit_path()
    return kit.parent.parent if kit.suffix == ".pyz" else STATE / "lib"


def atomic_write(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Readers never see a half-written file: write a temporary file, then rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(data, str):
        data = data.encode()
    tmp.write_bytes(data)
    tmp.chmod(mode)
    tmp.rename(path)


def warn(message: str) -> None:
    print(f"badsum-host: {message}", file=sys.stderr)
