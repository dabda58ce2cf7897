"""Where the kit runs: the host's own network namespace, or not; on an emulated host of a lab, or not.

The fleet's tools judge every other network namespace against the one they
run in: "the host's". Run from anywhere else - a scratch namespace, a
container, `ip netns exec` - they would take the host's own veths for
container veths and turn them off, in every namespace of the machine. So no
tool of the kit acts from a namespace that is not the host's:

- the host's namespace is the one the kernel's own threads live in (kthreadd,
  PID 2, a kernel thread, is always in the initial namespace), or, where they
  cannot be seen - a PID namespace of its own, as in a VM-like container -
  PID 1's;
- an emulated host of the embedded lab is a namespace of the lab's: the lab
  marks it (MARKER, in the node's private /run, root's, naming the node's
  namespace by inode), and the kit accepts it only from a process in that
  node's own cgroup (/badsum/LAB/NODE), which only root can put it in.
"""

import json
import os
import stat
from pathlib import Path
from typing import Optional

from .common import HostError, read_text

MARKER = Path("/run/badsum/emulated-host")
PF_KTHREAD = 0x00200000  # include/linux/sched.h


def own_cgroup() -> Optional[str]:
    """/badsum/LAB/HOST when this process runs on an emulated host of the embedded lab, else None."""
    for line in read_text("/proc/self/cgroup").splitlines():
        path = line.split(":", 2)[2]
        parts = path.split("/")
        if len(parts) >= 4 and parts[1] == "badsum":
            return "/".join(parts[:4])
    return None


def _netns(pid: int) -> Optional[int]:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def _kernel_thread(pid: int) -> bool:
    try:
        fields = read_text(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return bool(int(fields[6]) & PF_KTHREAD)


def host_netns() -> Optional[int]:
    """The inode of the host's network namespace as this process can see it; None when it cannot tell."""
    if _kernel_thread(2):
        found = _netns(2)
        if found is not None:
            return found
    return _netns(1)


def lab_marker(own: int) -> Optional[dict]:
    """The lab's mark on this namespace, when it is there, root's, and names this namespace and cgroup."""
    try:
        info = os.lstat(str(MARKER))
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_uid != 0 or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None
    try:
        mark = json.loads(MARKER.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(mark, dict) or mark.get("netns") != own:
        return None
    if own_cgroup() != "/badsum/{}/{}".format(mark.get("lab"), mark.get("node")):
        return None
    return mark


def where() -> str:
    """'host' or 'emulated host'; HostError with the reason anywhere else."""
    own = os.stat("/proc/self/ns/net").st_ino
    if lab_marker(own) is not None:
        return "emulated host"
    scope = own_cgroup()
    if scope is not None:
        # In an emulated host's cgroup, but not in its namespaces: its scope would be
        # that cgroup, and every namespace of the machine's mount table would look like its own.
        raise HostError(
            f"this process runs in network namespace {own}, not the one of the lab's emulated host whose cgroup "
            f"it is in ({scope}): the kit acts only from the host's own. Run it on that host (ssh to it, or "
            "badsum.lab.enter), not inside `ip netns exec` or `unshare --net` there"
        )
    host = host_netns()
    if host == own:
        return "host"
    if host is None:
        raise HostError(
            "cannot tell whether this is the host's network namespace (neither kthreadd nor PID 1 can be "
            "read): the kit acts only from the host's own"
        )
    raise HostError(
        f"this process runs in network namespace {own}, not the host's ({host}): the kit acts only from the "
        "host's own (from any other, it would take the host's veths for a container's). Run it on the host "
        "itself, not inside a container, `ip netns exec` or `unshare --net`"
    )
