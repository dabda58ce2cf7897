"""What every host-kit tool shares: errors, commands, waits, and where the kit's files live.

Standard library only, like the whole host kit. A tool reports a problem the
user can act on by raising HostError; the dispatcher (badsum.host.call) turns
it into a failed Ansible task or an exit status of 2 with the message.

The fleet's tools run on hosts that still have the bug: RHEL/CentOS 7-era
machines with Python 3.6. This module and every module of the fleet's path
keep to what 3.6 has (no postponed annotations, typing's generics; `make
lint` checks it with vermin).
"""

import argparse
import contextlib
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple, Union

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
    stdin: Optional[str] = None,
    env: Optional[dict] = None,
    timeout: float = 30,
) -> subprocess.CompletedProcess:
    """Run a command; with check, a non-zero exit raises HostError carrying the command's own message."""
    try:
        proc = subprocess.run(
            cmd,
            input=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            check=False,
            timeout=timeout,
            env=env,
        )
    except FileNotFoundError:
        raise HostError(f"`{cmd[0]}` is not installed on this host") from None
    except subprocess.TimeoutExpired:
        raise HostError(f"`{' '.join(cmd)}` did not finish within {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        raise HostError(f"`{' '.join(cmd)}` failed: {(proc.stderr or proc.stdout).strip()}")
    return proc


def in_netns(netns: Optional[str], *cmd: str) -> list:
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


def identity(pid: int) -> Optional[Tuple[int, int]]:
    """(pid, start time): the same process only while both match (PIDs are reused, quickly on small pid_max)."""
    try:
        return pid, int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def present(process: Tuple[int, int]) -> bool:
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


def read_pid(path: Path) -> Optional[int]:
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
    """The zipapp this code runs from (or the badsum.host package's directory, when run from a checkout)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if parent.suffix == ".pyz":
            return parent
    return here.parents[1]


def package_data(name: str) -> bytes:
    """A file of the kit (badsum/host/NAME), from the zipapp or a checkout alike.

    The package's own loader reads it: importlib.resources or pkgutil would
    cost every host call that needs one ~5 ms of imports.
    """
    try:
        return __loader__.get_data(os.path.join(os.path.dirname(os.path.dirname(__file__)), name))
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


def atomic_write(path: Path, data: Union[bytes, str], mode: int = 0o644) -> None:
    """Readers never see a half-written file, and a crash never leaves an empty one.

    A temporary file beside it, written with its mode from the first byte
    (a secret is never readable by others, even for a moment), flushed to
    disk, then renamed over the target, and the rename itself flushed: the
    records rollback trusts survive a power cut. The temporary name starts
    with a dot and ends in .tmp: nothing that reads a directory of
    configuration (libcni, systemd, node_exporter) takes it for a file of its own.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # The PID and a random part: hosts sharing a directory (an embedded lab's) run in PID
    # namespaces of their own, where two writers can have the same PID.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(6).hex()}.tmp")
    if isinstance(data, str):
        data = data.encode()
    fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)  # whatever the umask took away
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(str(tmp))
        raise
    os.close(fd)
    os.rename(str(tmp), str(path))
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename or an unlink in the directory durable."""
    with contextlib.suppress(OSError):
        fd = os.open(str(directory), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def unlink(path: Path) -> bool:
    """Remove a file if it is there (Path.unlink(missing_ok) is Python 3.8); whether it was."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def untrusted(path: Path) -> Optional[str]:
    """Why root must not run code from, or trust records in, `path`; None when it may.

    Every existing directory from / down to it, and the file itself, must
    belong to root and be writable by no one else - what sshd's StrictModes
    asks of a user's keys, and for the same reason: whoever can write any of
    them can swap what root reads. A directory everyone may write is allowed
    only with the sticky bit (/tmp), where no one but its owner can rename
    or remove an entry, and the entry below it must then be root's. A path
    not made yet is judged by the part that exists.
    """
    path = Path(os.path.abspath(str(path)))
    for part in (*reversed(path.parents), path):
        try:
            info = os.lstat(str(part))
        except FileNotFoundError:
            return None  # what exists above it was checked; root makes the rest
        except OSError as exc:
            return f"{part}: {exc.strerror}"
        if stat.S_ISLNK(info.st_mode):
            if info.st_uid != 0:
                return f"{part} is a symbolic link owned by uid {info.st_uid}, not root"
            why = untrusted(Path(os.path.realpath(str(part))))
            if why:
                return why
            continue
        if info.st_uid != 0:
            return f"{part} belongs to uid {info.st_uid}, not root"
        sticky_dir = stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX and part != path
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky_dir:
            who = "others" if info.st_mode & stat.S_IWOTH else "its group"
            return f"{part} is writable by {who} (mode {stat.S_IMODE(info.st_mode):o})"
    return None


def require_trusted(path: Path, what: str) -> None:
    why = untrusted(path)
    if why:
        raise HostError(
            f"{what} {path} cannot be trusted: {why}. Nothing runs from it: every directory down to it must "
            "belong to root and be writable by root alone"
        )


def warn(message: str) -> None:
    print(f"badsum-host: {message}", file=sys.stderr)


def shown(text: Union[str, bytes]) -> str:
    """A name as it may be printed: interface names, process names and paths are bytes a tenant chose.

    Printable ASCII other than the backslash stays; every other byte (UTF-8
    included: a name that looks like another is an attack too) becomes \\xNN.
    The result is plain ASCII, safe in JSON, YAML, a terminal and a report,
    and tells different names apart.
    """
    raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return "".join(chr(b) if 0x20 < b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in raw)


def read_text(path: Union[str, Path]) -> str:
    """A /proc or /sys file as text whatever bytes it holds (a process may name itself anything)."""
    with open(str(path), "rb") as f:
        return f.read().decode("utf-8", "surrogateescape")
