"""Starting a lab's nodes: one forked process per node, which becomes the node and then its sshd.

Measured with 200 hosts on 2 cores, this is where `up` spent its time, and why
it is built this way:

- A new mount namespace is a copy of its creator's. Copied from the machine's,
  node N got the namespace bind mounts of the N-1 nodes before it (and of
  every other lab), and unmounted them one by one, each unmount waiting for
  an RCU grace period: O(N^2). Nodes are copied instead from a base namespace
  made once per `up`, with /run and /sys already detached (one lazy unmount
  each, whatever they hold) and the lab's /etc files already bound.
- The base is private: mounts made on the machine later (more nodes, more
  labs) never propagate into it or into the nodes, and its unmounts never
  propagate back (/run/netns is a shared mount).
- Each node used to run ~30 commands (mount, hostname, `ip -n`, `ip netns
  exec ethtool`...); the forked process makes those calls itself and runs
  one `ip -batch` inside its namespaces, then execs sshd.
- Each node binds its own namespaces under /run/badsum/ns (stepping back
  into the machine's mount namespace for it): the parent only forks and
  listens, and its serial share stays small.
- Ready means sshd wrote its PID file, which it does after it listens: no
  TCP probe (each probe costs sshd a fork and an exec).

A node is a world of its own, as a VM would be: its own process table (a
PID namespace whose first process, forked after unshare(CLONE_NEWPID), is
its sshd, with a /proc of its own), System V IPC, /tmp, /var/tmp, /dev/shm
and pseudo-terminals. A student's lab (a workshop's) is also sealed: of the
machine's filesystem its nodes see the system (/usr, /etc...) and their own
lab's state, never the other labs', the workshop's files or the checkout.
"""

# Longer than ~300 lines: one forked process's life (namespaces, mounts, limits, sshd) in the order
#   the kernel needs it, measured step by step (see above).

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from badsum.host.shared import hostns
from badsum.lab import kernel
from badsum.lab.kernel import CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUTS
from badsum.lab.spec import NS_ROOT, LabError

SSHD = "/usr/sbin/sshd"
# Forked but not yet exec'd children each hold copy-on-write pages of this
# process: a few at a time keep both cores busy without hundreds of copies.
IN_FLIGHT = 16
# No bound on the whole (a loaded machine is slow, not broken), but a node's
# setup never takes this long: one that does hangs.
STALL_TIMEOUT = 30.0
# A process that became an sshd ends as soon as that sshd daemonized.
SSH_EXIT_TIMEOUT = 5.0
# /etc files of the lab's own, bound over the machine's: every node's name
# resolves (sudo asks), and a lab made with a user (`--user`, the cloud
# shape) has that user only inside the lab.
ETC_FILES = ("hosts", "passwd", "shadow", "group", "sudoers.d")
# What the base namespace drops: the machine's /run holds every namespace
# bind mount (a node's copy would pin them), and a node mounts a sysfs of its own.
DETACHED = ("/run", "/sys")


OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    fstype: str | None  # None: a bind mount
    flags: int = 0
    data: str | None = None


# A node's own /run, /tmp, /var/tmp, /dev/shm and homes (an emulated host
# does not run the machine's ~/.bashrc on every SSH command, or see its
# files, or share a scratch directory with another), its own pseudo-terminals
# (a devpts instance: the machine's lists every session of every lab), and a
# sysfs mounted from inside its netns (it shows this node's interfaces only).
# What a node writes there is charged to its lab's memory cgroup.
NOSUID_NODEV = kernel.MS_NOSUID | kernel.MS_NODEV
NODE_MOUNTS = (
    Mount("badsum-run", "/run", "tmpfs", data="mode=0755,size=256m"),
    Mount("badsum-home", "/root", "tmpfs", data="mode=0700,size=64m"),
    Mount("badsum-homes", "/home", "tmpfs", NOSUID_NODEV, "mode=0755,size=64m"),
    Mount("sysfs", "/sys", "sysfs"),
    Mount("bpf", "/sys/fs/bpf", "bpf"),
    Mount("badsum-tmp", "/tmp", "tmpfs", NOSUID_NODEV, "mode=1777,size=256m"),
    Mount("badsum-vartmp", "/var/tmp", "tmpfs", NOSUID_NODEV, "mode=1777,size=64m"),
    Mount("badsum-shm", "/dev/shm", "tmpfs", NOSUID_NODEV, "mode=1777,size=64m"),
    Mount(
        "devpts", "/dev/pts", "devpts", kernel.MS_NOSUID | kernel.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"
    ),
    Mount("/dev/pts/ptmx", "/dev/ptmx", None, kernel.MS_BIND),
)
RUN_DIRS = ("/run/sshd", "/run/lock", "/run/badsum")
# What a sealed node keeps of the machine's top-level directories: the system.
# Every other one (/work, /opt, /srv, /mnt...: where checkouts and data live)
# is covered by an empty, read-only tmpfs.
SYSTEM_DIRS = frozenset(
    {"bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "proc", "root", "run", "sbin", "sys"}
    | {"tmp", "usr", "var"}
)
# ...and below /var, what holds data rather than the system: badsum's own state
# (every lab's and the workshop's: the node's own lab is bound back), logs, mail.
SEALED_VAR = (
    "/var/lib/badsum",
    "/var/cache/badsum",
    "/var/lib/docker",
    "/var/log",
    "/var/backups",
    "/var/mail",
    "/var/spool",
    "/var/local",
    "/var/opt",
)
COVER = "mode=0755,size=64k"


@dataclass(frozen=True)
class LabPlan:
    """What every node of the lab shares."""

    etc_dir: Path  # the lab's /etc files (ETC_FILES that exist there are bound over the machine's)
    user: tuple[str, int] | None  # `--user`/`--student`: name and uid (its group has the same id)
    home_template: Path | None  # `--student`: what the user's home holds when the node starts
    cgroup_mounts: tuple[Mount, ...]
    sshd_config: Path
    sshd_stderr: Path  # what an sshd says before it listens: why it did not start
    # A student's lab: the only badsum state its nodes see (the lab's own), and
    # directories to hide besides the usual ones (the checkout the lab came from).
    sealed: Path | None = None
    hidden: tuple[Path, ...] = ()


@dataclass(frozen=True)
class NodePlan:
    name: str
    netns: str
    ip_batch: str  # run by `ip -batch` inside the node
    ports: tuple[str, ...]  # its interfaces that stand for hardware: checksum offloads off
    sshd_options: tuple[str, ...]  # sshd -o ..., after the lab's config
    cgroup_procs: tuple[Path, ...]
    lab_id: str  # named in the node's mark (badsum.host.shared.hostns.MARKER)


def _unescape(field: str) -> str:
    """Mount points in mountinfo have space, tab, newline and backslash as octal escapes."""
    return OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def mountinfo(path: str = "/proc/self/mountinfo") -> list[tuple[str, str, str]]:
    """(mount point, fstype, super options) of each mount, in mount order."""
    found = []
    for line in Path(path).read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        found.append((_unescape(fields[4]), fields[sep + 1], fields[sep + 3]))
    return found


def cgroup_mounts(path: str = "/proc/self/mountinfo") -> tuple[Mount, ...]:
    """This machine's cgroup hierarchies, to mount again in a node.

    The node's fresh sysfs has an empty /sys/fs/cgroup; a dockerd in the node
    needs the same hierarchies as the machine (v1, v2 or hybrid).
    """
    mounts = []
    for point, fstype, opts in mountinfo(path):
        if point.startswith("/sys/fs/cgroup") and fstype in ("tmpfs", "cgroup", "cgroup2"):
            options = opts.split(",")
            data = ",".join(o for o in options if o not in ("rw", "ro"))
            mounts.append(Mount(fstype, point, fstype, kernel.MS_RDONLY if "ro" in options else 0, data or None))
    return tuple(mounts)


def topmost(points: list[str], under: tuple[str, ...]) -> list[str]:
    """The mount points at or below `under` that no other of them contains: a lazy unmount of each takes all."""
    inside = sorted({p for p in points if any(p == u or p.startswith(u + "/") for u in under)})
    tops: list[str] = []
    for p in inside:
        if not any(p.startswith(t + "/") for t in tops):
            tops.append(p)
    return tops


# -- in the children ----------------------------------------------------------


def _report(sock: socket.socket, name: str, error: str = "", fds: list[int] | None = None) -> None:
    socket.send_fds(sock, [f"{name}\0{error}".encode()[:4000]], fds or [])


def _child(sock: socket.socket, name: str, work: Callable[[], object]) -> NoReturn:
    """Run `work` in a forked child; never return into the parent's code."""
    gc.disable()  # a collection would touch, and so copy, every page of the parent's heap
    try:
        work()
    except BaseException as exc:  # anything: the parent must hear of it, and this process must end here
        with contextlib.suppress(BaseException):
            _report(sock, name, f"{type(exc).__name__}: {exc}")
    os._exit(1)


def _make_base(lab: LabPlan, sock: socket.socket) -> None:
    kernel.unshare(CLONE_NEWNS)
    kernel.mount(None, "/", None, kernel.MS_REC | kernel.MS_PRIVATE)
    for point in topmost([p for p, _, _ in mountinfo()], DETACHED):
        kernel.umount(point)
    for name in ETC_FILES:
        if (lab.etc_dir / name).exists():
            kernel.mount(str(lab.etc_dir / name), f"/etc/{name}", None, kernel.MS_BIND)
    if lab.sealed:
        _seal(lab.sealed, lab.hidden)
    mnt = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    _report(sock, "base", fds=[mnt])
    os._exit(0)


def sealed_points(top: list[str], keep: Path, hidden: tuple[Path, ...]) -> list[str]:
    """What a sealed node covers: top-level directories that are not the system's, SEALED_VAR, `hidden`.

    `top` is the names in / that are directories; a hidden path already
    under a covered one needs nothing more. `keep` must stay reachable.
    """
    points = [f"/{name}" for name in sorted(top) if name not in SYSTEM_DIRS]
    points += [p for p in SEALED_VAR if os.path.isdir(p)]
    for path in hidden:
        system = len(path.parts) <= 2 and (path.name in SYSTEM_DIRS or path == Path("/"))  # never / or /usr itself
        if path.is_dir() and not system and not any(path.is_relative_to(p) for p in points):
            points.append(str(path))
    if any(keep.is_relative_to(p) and not keep.is_relative_to(SEALED_VAR[0]) for p in points):
        raise LabError(f"{keep}: a lab's state must live under {SEALED_VAR[0]} to be seen by its sealed nodes")
    return points


def _seal(keep: Path, hidden: tuple[Path, ...]) -> None:
    """Cover the machine's data with empty read-only tmpfs (files: /dev/null); bind the lab's own state back."""
    own = os.open(keep, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # before its parent is covered
    try:
        entries = list(os.scandir("/"))
        top = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
        for entry in entries:  # files at the top (a machine's notes): empty, as /dev/null is
            if entry.is_file(follow_symlinks=False):
                kernel.mount("/dev/null", entry.path, None, kernel.MS_BIND)
        for point in sealed_points(top, keep, hidden):
            kernel.mount("badsum-sealed", point, "tmpfs", NOSUID_NODEV, COVER)
            if keep.is_relative_to(point):
                os.makedirs(keep, 0o755)
                kernel.mount(f"/proc/self/fd/{own}", str(keep), None, kernel.MS_BIND)
            kernel.mount(None, point, None, kernel.MS_REMOUNT | kernel.MS_RDONLY | NOSUID_NODEV)
    finally:
        os.close(own)


def _mount_node(lab: LabPlan, template: int | None) -> None:
    for m in (*NODE_MOUNTS, *lab.cgroup_mounts):
        if not os.path.lexists(m.target):  # /dev/ptmx is a device, bound over
            os.makedirs(m.target)
        kernel.mount(m.source, m.target, m.fstype, m.flags, m.data)
    for d in RUN_DIRS:
        os.mkdir(d, 0o755)
    if lab.user:
        # A home of its own, as a cloud VM's user has (a student's, made from the workshop's template).
        home = f"/home/{lab.user[0]}"
        if template is not None:  # opened in the machine's view: a sealed node has it out of sight
            umask = os.umask(0o077)  # the token in it is never readable by others, not for a moment
            try:
                shutil.copytree(f"/proc/self/fd/{template}", home, symlinks=True)
            finally:
                os.umask(umask)
            os.chmod(home, 0o700)
        else:
            os.mkdir(home, 0o700)
        for root, dirs, files in os.walk(home):
            for name in (".", *dirs, *files):
                os.chown(os.path.join(root, name), lab.user[1], lab.user[1], follow_symlinks=False)


def _mark(plan: NodePlan) -> None:
    """Mark the node as an emulated host of this lab: the host kit acts from no other namespace but a host's.

    In the node's private /run, root's and read-only to others, naming the
    node's network namespace: a process of the node that moved to another
    namespace (`unshare --net`) is not taken for the host (badsum.host.shared.hostns).
    """
    mark = {"lab": plan.lab_id, "node": plan.name, "netns": os.stat("/proc/self/ns/net").st_ino}
    fd = os.open(str(hostns.MARKER), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(mark))


def _configure(plan: NodePlan) -> None:
    proc = subprocess.run(["ip", "-batch", "-"], input=plan.ip_batch, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LabError(f"`ip -batch` in {plan.netns} failed: {(proc.stderr or proc.stdout).strip()}")
    # Data NICs and switch ports stand for physical hardware: they compute
    # real checksums on transmit (so corruption is visible on the wire)
    # and, on an unfixed kernel, must not mark received packets verified.
    for port in plan.ports:
        kernel.set_checksum_offload(port, False)


def _keep_namespaces(netns: str, machine: int, kinds: tuple[str, ...], ns_dir: int | None = None) -> None:
    """Bind these namespaces of this node to files in the machine's mount namespace (see ns_files).

    They outlive the process that made them (nsenter and `down` use them).
    Done here, not by the parent: the nodes make theirs side by side.
    """
    own = [
        os.open(f"{kind}" if ns_dir is not None else f"/proc/self/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC, dir_fd=ns_dir)
        for kind in kinds
    ]
    back = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC) if ns_dir is None else None
    files = dict(zip(("mnt", "uts", "pid_for_children"), ns_files(netns), strict=True))
    kernel.setns(machine, CLONE_NEWNS)
    for fd, kind in zip(own, kinds, strict=True):
        files[kind].touch()
        kernel.mount(f"/proc/self/fd/{fd}", str(files[kind]), None, kernel.MS_BIND)
    if back is not None:
        kernel.setns(back, CLONE_NEWNS)
        os.chdir("/")


def _become_node(lab: LabPlan, plan: NodePlan, base: int, sock: socket.socket) -> NoReturn:
    # Opened while /sys/fs/cgroup and /run/netns are still in view: the base has neither.
    procs = [os.open(p, os.O_WRONLY | os.O_CLOEXEC) for p in plan.cgroup_procs]
    net = os.open(f"/run/netns/{plan.netns}", os.O_RDONLY | os.O_CLOEXEC)
    machine = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    template = os.open(lab.home_template, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if lab.home_template else None
    kernel.setns(base, CLONE_NEWNS)
    kernel.unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC)
    socket.sethostname(plan.name)
    kernel.setns(net, CLONE_NEWNET)
    _keep_namespaces(plan.netns, machine, ("mnt", "uts"))
    _mount_node(lab, template)
    _mark(plan)
    _configure(plan)
    err = os.open(lab.sshd_stderr, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    # sshd joins the node's cgroups: everything that runs through it (SSH
    # sessions, servers, dockerd, containers) stays there. The setup above
    # did not, as it never did: its kernel memory is not the node's.
    for fd in procs:
        os.write(fd, str(os.getpid()).encode())
    # sshd writes its PID file there once it listens: the parent watches it through this.
    run = os.open("/run", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    # This process's own namespace files, in the procfs it sees now: the init mounts another over /proc.
    ns_dir = os.open("/proc/self/ns", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(err, 2)
    # Python ignores these; an exec'd program must not inherit that.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    # For the children only, so not before the last command above (`ip`
    # would have been the namespace's first process, and its end the end of
    # the namespace): the node's first process is forked right here.
    kernel.unshare(CLONE_NEWPID)
    if os.fork() == 0:
        _node_init(lab, plan)
    # The PID namespace can be bound only now: it has its first process.
    _keep_namespaces(plan.netns, machine, ("pid_for_children",), ns_dir)
    _report(sock, plan.name, fds=[run])
    os._exit(0)  # its init goes on, in the node's cgroups, reparented as a daemon is


def _node_init(lab: LabPlan, plan: NodePlan) -> NoReturn:
    """PID 1 of the node: a /proc that shows the node's processes only, then sshd in the foreground.

    sshd reaps every child it is left (as in many a container), and the
    kernel ends the whole node with it: nothing of a node outlives its sshd.
    """
    try:
        os.setsid()  # not in the caller's session: a Ctrl-C there does not reach the lab
        kernel.mount("proc", "/proc", "proc", kernel.MS_NOSUID | kernel.MS_NODEV | kernel.MS_NOEXEC)
        options = [arg for option in plan.sshd_options for arg in ("-o", option)]
        os.execv(SSHD, [SSHD, "-D", "-f", str(lab.sshd_config), *options])
    except OSError as exc:
        os.write(2, f"cannot run {SSHD} as the node's first process: {exc}\n".encode())
    os._exit(127)


# -- in the parent ------------------------------------------------------------


@contextlib.contextmanager
def _reports() -> Iterator[tuple[socket.socket, socket.socket]]:
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        yield parent, child
    finally:
        parent.close()
        child.close()


def _receive(sock: socket.socket) -> tuple[str, str, list[int]]:
    """One child's report: (name, error or "", the file descriptors it sent)."""
    if not select.select([sock], [], [], STALL_TIMEOUT)[0]:
        raise LabError(f"no node finished its setup in {STALL_TIMEOUT:.0f} s")
    data, fds, _flags, _addr = socket.recv_fds(sock, 4096, 4)
    if not data:
        raise LabError("a node's setup process ended without a word")
    name, _, error = data.decode(errors="replace").partition("\0")
    return name, error, fds


def _fork(sock: socket.socket, name: str, work: Callable[[], object]) -> int:
    pid = os.fork()
    if pid == 0:
        _child(sock, name, work)
    return pid


def base_namespace(lab: LabPlan) -> int:
    """A file descriptor of a fresh mount namespace for this lab's nodes to copy (see the module docstring)."""
    with _reports() as (parent, child):
        pid = _fork(child, "base", lambda: _make_base(lab, child))
        try:
            _name, error, fds = _receive(parent)
        except BaseException:
            _signal({"base": pid}, signal.SIGKILL)
            raise
        finally:
            os.waitpid(pid, 0)
    if error:
        raise LabError(f"could not prepare the nodes' mount namespace: {error}")
    return fds[0]


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """A collection between forks would write to, and so copy again, pages every child shares with us."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def start(lab: LabPlan, plans: list[NodePlan], timeout: float) -> None:
    """Start every node; returns once every sshd listens (within `timeout` of the last node's start)."""
    pids: dict[str, int] = {}
    reported: dict[str, str] = {}  # node -> its error, "" when it started
    runs: dict[str, int] = {}  # node -> its /run
    try:
        _fork_all(lab, plans, pids, reported, runs)
        if errors := {n: e for n, e in reported.items() if e}:
            raise LabError("nodes failed to start: " + "; ".join(f"{n}: {e}" for n, e in sorted(errors.items())))
        _wait_listening(pids, runs, {p.name: p for p in plans}, lab.sshd_stderr, time.monotonic() + timeout)
    except BaseException:
        _signal({n: pid for n, pid in pids.items() if n not in reported}, signal.SIGKILL)
        _reap(pids, within=1.0)
        raise
    finally:
        for fd in runs.values():
            os.close(fd)
    _reap(pids, within=SSH_EXIT_TIMEOUT)


def _fork_all(
    lab: LabPlan, plans: list[NodePlan], pids: dict[str, int], reported: dict[str, str], runs: dict[str, int]
) -> None:
    """Fork a child per node, a few at a time, and collect what each reports."""
    base = base_namespace(lab)
    try:
        with _reports() as (parent, child), _no_gc():
            for plan in plans:
                if len(pids) - len(reported) >= IN_FLIGHT:
                    _settle(parent, reported, runs)
                pids[plan.name] = _fork(child, plan.name, lambda p=plan: _become_node(lab, p, base, child))
            while len(reported) < len(pids):
                _settle(parent, reported, runs)
    finally:
        os.close(base)


def _settle(sock: socket.socket, reported: dict[str, str], runs: dict[str, int]) -> None:
    name, error, fds = _receive(sock)
    if fds:
        runs[name] = fds[0]
    reported[name] = error


def _reap(pids: dict[str, int], within: float) -> None:
    """Collect the children (each ends once its sshd daemonized, or failed): no zombie stays behind."""
    left = set(pids.values())
    deadline = time.monotonic() + within
    while left:
        for pid in list(left):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    continue
            left.discard(pid)
        if left and time.monotonic() > deadline:
            return
        if left:
            time.sleep(0.01)


def ns_files(netns: str) -> tuple[Path, Path, Path]:
    """The node's mount, UTS and PID namespaces, bound to files (nsenter --mount=... --pid=...)."""
    return NS_ROOT / f"{netns}.mnt", NS_ROOT / f"{netns}.uts", NS_ROOT / f"{netns}.pid"


def _signal(pids: dict[str, int], sig: int) -> None:
    for pid in pids.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _last_words(stderr: Path) -> str:
    """The end of what the lab's sshds said, each line once (they all share the file, and often the reason)."""
    text = stderr.read_text(errors="replace") if stderr.exists() else ""
    lines = list(dict.fromkeys(line for line in text.splitlines() if line.strip()))
    return " / ".join(lines[-3:]) or "it said nothing"


def _wait_listening(
    pids: dict[str, int], runs: dict[str, int], plans: dict[str, NodePlan], stderr: Path, deadline: float
) -> None:
    """Wait until each node's sshd wrote its PID file, which it does once it listens.

    The process that became sshd exits as sshd daemonizes: with a failure
    status when sshd refused to start (it said why on its stderr), and an
    sshd that ends later leaves its node's cgroups empty.
    """
    pending = set(pids)
    daemonized: set[str] = set()
    while pending:
        for name in sorted(pending):
            if _exists("sshd.pid", runs[name]):
                pending.discard(name)
            elif name not in daemonized:
                pid, status = os.waitpid(pids[name], os.WNOHANG)
                if pid and status != 0:
                    raise LabError(f"sshd of {name} did not start: {_last_words(stderr)}")
                if pid:
                    daemonized.add(name)
            elif not any(_any_process(p) for p in plans[name].cgroup_procs):
                raise LabError(f"sshd of {name} ended before it listened: {_last_words(stderr)}")
        if pending and time.monotonic() > deadline:
            raise LabError(f"sshd did not come up on {', '.join(sorted(pending))} in time")
        if pending:
            time.sleep(0.01)


def _exists(name: str, directory: int) -> bool:
    try:
        os.stat(name, dir_fd=directory)
    except FileNotFoundError:
        return False
    return True


def _any_process(path: Path) -> bool:
    """Whether a cgroup.procs file lists any process."""
    try:
        return bool(path.read_text().split())
    except OSError:
        return False
