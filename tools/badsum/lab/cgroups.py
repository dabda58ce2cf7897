"""Containment: every process an embedded lab starts lives in a cgroup of that lab.

Each node's sshd is started inside /badsum/<lab>/<node> (in the cgroup v2
hierarchy, and in the v1 freezer, memory and pids hierarchies where the host
has them: cgroup v1, v2 and hybrid alike). Everything that runs through the
node inherits it: SSH sessions, servers, recorders, tcpdump, dockerd and
containerd; the private dockerd puts its containers below it with
--cgroup-parent. Containers have network and mount namespaces of their own,
so only the cgroup finds them all.

A lab may have limits the kernel enforces on all of it at once (`badsum lab
up --pids-max --memory-max --cpu-weight`; a workshop sets them for every
seat): tasks, memory (page cache and tmpfs included) and its share of the
CPU, written to /badsum/<lab> in whichever hierarchy has the controller
(v1: pids.max, memory.limit_in_bytes, cpu.shares; v2: pids.max, memory.max,
cpu.weight). A fork bomb or a memory hog in one lab then meets its own
lab's limit, and the other labs go on.

Teardown kills by cgroup (v2: cgroup.kill; v1: freeze, kill every task,
thaw), then removes the lab's cgroup directories in every hierarchy,
including the ones dockerd created. Nothing outside /badsum/<lab> is
touched: a system dockerd beside the lab keeps its containers.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from badsum.host.shared.common import alive, identity, present

TOP = "badsum"
# v1 hierarchies a node joins: freezer to stop a lab at once, memory, pids
# and cpu to account for it and limit it. Others (blkio, ...) only hold what
# dockerd creates.
V1_JOINED = ("freezer", "memory", "pids", "cpu")
# cgroup v2's CPU weight scale (the default share is 100); v1's cpu.shares is 1024 for the same.
CPU_WEIGHT_RANGE = (1, 10000)
V1_SHARES_PER_WEIGHT = 1024 / 100
KILL_TIMEOUT = 5.0
PR_SET_PDEATHSIG = 1  # include/uapi/linux/prctl.h
REMOVE_TIMEOUT = 2.0


@dataclass(frozen=True)
class Hierarchy:
    mount: Path
    version: int  # 1 or 2
    controllers: tuple[str, ...]

    @property
    def joined(self) -> bool:
        return self.version == 2 or any(c in V1_JOINED for c in self.controllers)


def hierarchies() -> list[Hierarchy]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        fstype, point, super_opts = fields[sep + 1], fields[4], fields[sep + 3]
        if fstype == "cgroup2":
            found.append(Hierarchy(Path(point), 2, ()))
        elif fstype == "cgroup":
            # A named hierarchy (name=systemd) has no controller, but dockerd makes its containers'
            # cgroups there too, below --cgroup-parent: it is the lab's to remove like any other.
            controllers = tuple(
                o for o in super_opts.split(",") if o not in ("rw", "ro") and ("=" not in o or o.startswith("name="))
            )
            if controllers:
                found.append(Hierarchy(Path(point), 1, controllers))
    return found


def lab_dir(h: Hierarchy, lab_id: str) -> Path:
    return h.mount / TOP / lab_id


@dataclass(frozen=True)
class Limits:
    """What a whole lab may use at once; None leaves that resource unlimited."""

    pids: int | None = None  # tasks: processes and threads
    memory: int | None = None  # bytes, page cache and tmpfs included; no swap beyond it
    cpu_weight: int | None = None  # its share of the CPU when all want it (v2 scale: 100 is the default)

    def files(self, h: Hierarchy) -> dict[str, str]:
        """The files to write in this hierarchy's lab directory, in order, and their values."""
        out: dict[str, str] = {}
        if h.version == 2:
            if self.pids is not None:
                out["pids.max"] = str(self.pids)
            if self.memory is not None:
                out["memory.max"] = str(self.memory)
                out["memory.swap.max"] = "0"
            if self.cpu_weight is not None:
                out["cpu.weight"] = str(self.cpu_weight)
            return out
        if "pids" in h.controllers and self.pids is not None:
            out["pids.max"] = str(self.pids)
        if "memory" in h.controllers and self.memory is not None:
            out["memory.limit_in_bytes"] = str(self.memory)
            out["memory.memsw.limit_in_bytes"] = str(self.memory)  # only where swap is accounted
        if "cpu" in h.controllers and self.cpu_weight is not None:
            out["cpu.shares"] = str(max(2, round(self.cpu_weight * V1_SHARES_PER_WEIGHT)))
        return out


SIZE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_size(text: str) -> int:
    """512M, 2G, 1.5G, 1073741824 -> bytes (binary units, as the kernel's files count them)."""
    raw = str(text).strip().upper().removesuffix("IB").removesuffix("B")
    unit = raw[-1:] if raw[-1:] in SIZE_UNITS and raw[-1:] else ""
    try:
        value = float(raw[: len(raw) - len(unit)] if unit else raw)
    except ValueError:
        raise ValueError(f"{text!r} is not a size (e.g. 512M, 2G)") from None
    if value <= 0:
        raise ValueError(f"{text!r} is not a size above zero")
    return int(value * SIZE_UNITS[unit])


def limitable(hs: list[Hierarchy] | None = None) -> set[str]:
    """The resources this machine can limit per lab: pids, memory, cpu (v1 controllers, or v2 ones on offer)."""
    found: set[str] = set()
    for h in hs if hs is not None else hierarchies():
        if h.version == 1:
            found |= set(h.controllers) & {"pids", "memory", "cpu"}
        else:
            with contextlib.suppress(OSError):
                found |= set((h.mount / "cgroup.controllers").read_text().split()) & {"pids", "memory", "cpu"}
    return found


def set_limits(lab_id: str, limits: Limits) -> dict[str, str]:
    """Write the lab's limits (its cgroups exist: create_nodes made them); returns {file: value} as written.

    v2 needs the controllers handed down to /badsum first (cgroup.subtree_control of / and of /badsum).
    """
    written: dict[str, str] = {}
    for h in hierarchies():
        d = lab_dir(h, lab_id)
        if not d.is_dir():
            continue
        if h.version == 2:
            wanted = {"pids": limits.pids, "memory": limits.memory, "cpu": limits.cpu_weight}
            enable = " ".join(f"+{c}" for c, v in wanted.items() if v is not None and c in limitable([h]))
            for parent in (h.mount, h.mount / TOP):
                if enable:
                    (parent / "cgroup.subtree_control").write_text(enable)
        for name, value in limits.files(h).items():
            path = d / name
            if path.exists():
                path.write_text(value)
                written[f"{h.mount.name}/{name}"] = value
    return written


def create_node(lab_id: str, node: str) -> list[Path]:
    """The node's cgroups; returns the cgroup.procs files its first process must join."""
    return create_nodes(lab_id, [node])[node]


def create_nodes(lab_id: str, nodes: list[str]) -> dict[str, list[Path]]:
    """create_node for many nodes, reading the mount table once."""
    joined = [h for h in hierarchies() if h.joined]
    procs: dict[str, list[Path]] = {}
    for node in nodes:
        procs[node] = []
        for h in joined:
            d = lab_dir(h, lab_id) / node
            d.mkdir(parents=True, exist_ok=True)
            procs[node].append(d / "cgroup.procs")
    return procs


def contained(procs: list[Path]) -> Callable[[], None]:
    """A preexec_fn: the child joins these cgroups (where `down` finds it) and dies with its parent.

    For what a command starts and must not outlive it, even SIGKILLed: the
    child of a killed parent is killed by the kernel (PR_SET_PDEATHSIG), and
    anything it started meanwhile is in the cgroup, killed by `down`.
    """

    def enter() -> None:
        for path in procs:
            path.write_text(str(os.getpid()))
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)

    return enter


def _walk(d: Path) -> list[Path]:
    """d and every cgroup below it, each after the ones it contains (the order rmdir needs)."""
    try:  # scandir's entry types need no stat: a 200-host lab has thousands of cgroup files
        subdirs = [Path(e.path) for e in os.scandir(d) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    return [*(p for sub in subdirs for p in _walk(sub)), d]


def _procs(d: Path) -> list[int]:
    """The processes in cgroup d (none if it went meanwhile)."""
    try:
        fd = os.open(d / "cgroup.procs", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    except OSError:
        return []
    finally:
        os.close(fd)
    return [int(p) for p in b"".join(chunks).split()]


def pids(lab_id: str) -> set[int]:
    found = {pid for h in hierarchies() for d in _walk(lab_dir(h, lab_id)) for pid in _procs(d)}
    found.discard(os.getpid())
    return found


def node_pids(lab_id: str, node: str) -> set[int]:
    """The processes of one node of the lab (and everything below it: its containers too)."""
    for h in hierarchies():
        if h.version == 2 or "pids" in h.controllers:
            d = lab_dir(h, lab_id) / node
            if d.is_dir():
                return {pid for sub in _walk(d) for pid in _procs(sub)}
    return set()


def _live(pid_set: set[int]) -> set[int]:
    return {p for p in pid_set if alive(p)}


def kill(lab_id: str) -> set[int]:
    """Kill every process of the lab; returns the ones still alive after KILL_TIMEOUT (none, normally).

    A 200-host lab has ~800 cgroups: they are read once to know every
    process, and again only once the ones signalled are gone (to catch any
    that forked meanwhile); the waiting in between watches just those.
    """
    deadline = time.monotonic() + KILL_TIMEOUT
    left = pids(lab_id)
    seen = {i for p in left if (i := identity(p))}
    hs = hierarchies()
    v2 = next((h for h in hs if h.version == 2), None)
    freezer = next((h for h in hs if "freezer" in h.controllers), None)
    if v2 and (lab_dir(v2, lab_id) / "cgroup.kill").exists():
        (lab_dir(v2, lab_id) / "cgroup.kill").write_text("1")
    elif freezer and lab_dir(freezer, lab_id).is_dir():
        # Frozen, nothing can fork away while we kill; thawed, the kills land.
        state = lab_dir(freezer, lab_id) / "freezer.state"
        state.write_text("FROZEN")
        _signal(pids(lab_id), signal.SIGKILL)
        state.write_text("THAWED")
    while left and time.monotonic() < deadline:
        _signal(left, signal.SIGKILL)  # whatever a hierarchy without kill support holds
        while (left := _live(left)) and time.monotonic() < deadline:
            time.sleep(0.02)
        left = _live(pids(lab_id))
        seen |= {i for p in left if (i := identity(p))}
    # A killed container's init waits in the kernel for its namespace's other
    # processes before it is gone: wait for it too (bounded), so nothing of
    # the lab is still in the process table when down returns.
    while any(present(p) for p in seen) and time.monotonic() < deadline:
        time.sleep(0.02)
    return _live(left)


def _signal(pid_set: set[int], sig: int) -> None:
    for pid in pid_set:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def remove(lab_id: str) -> list[str]:
    """rmdir the lab's cgroups in every hierarchy (deepest first); returns those that would not go.

    A cgroup whose last process is still exiting is busy for a moment: it is
    tried again, for up to REMOVE_TIMEOUT seconds.
    """
    stuck = []
    deadline = time.monotonic() + REMOVE_TIMEOUT
    for h in hierarchies():
        for d in _walk(lab_dir(h, lab_id)):
            while True:
                try:
                    d.rmdir()
                    break
                except OSError as exc:
                    if exc.errno == errno.EBUSY and time.monotonic() < deadline:
                        time.sleep(0.02)
                        continue
                    stuck.append(f"{d} ({exc.strerror})")
                    break
        with contextlib.suppress(OSError):  # /badsum itself, once no lab is left in it
            (h.mount / TOP).rmdir()
    return stuck


def leftovers(lab_id: str) -> list[str]:
    return [str(lab_dir(h, lab_id)) for h in hierarchies() if lab_dir(h, lab_id).exists()]


def memory_bytes(lab_id: str) -> int | None:
    """Memory the lab's processes use now (v2 memory.current, or v1 memory.usage_in_bytes)."""
    for h in hierarchies():
        for name in ("memory.current", "memory.usage_in_bytes"):
            path = lab_dir(h, lab_id) / name
            if path.exists():
                return int(path.read_text())
    return None
