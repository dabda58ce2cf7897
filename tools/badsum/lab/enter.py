"""Run a command inside a node of an embedded lab, as its own processes run: its namespaces and its cgroup.

What `ssh` to the node gives a process, without the SSH: the node's network,
mount, UTS (and, where the node has one, PID and IPC) namespaces, entered
through its first process, and the node's cgroups, so the host kit there
sees exactly the emulated host (badsum.host.shared.hostns) and teardown finds
whatever it starts. For tests and benchmarks that act on an emulated host
from this machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from badsum.lab import cgroups
from badsum.lab.spec import LabError

NAMESPACES = (("net", "--net"), ("mnt", "--mount"), ("uts", "--uts"), ("ipc", "--ipc"), ("pid", "--pid"))


def node_pid(lab_id: str, node: str) -> int:
    """The node's first process (its sshd): the one whose namespaces are the node's."""
    procs = cgroups.create_node(lab_id, node)  # existing directories: nothing is made for a node that is up
    pids = sorted(int(p) for path in procs for p in path.read_text().split())
    if not pids:
        raise LabError(f"lab {lab_id} has no node {node} running")
    return pids[0]


def command(lab_id: str, node: str, argv: list[str]) -> tuple[list[str], Callable[[], None]]:
    """(the argv that runs `argv` in the node, the preexec_fn that puts it in the node's cgroups)."""
    pid = node_pid(lab_id, node)
    flags = []
    for kind, flag in NAMESPACES:
        try:
            if os.stat(f"/proc/{pid}/ns/{kind}").st_ino != os.stat(f"/proc/self/ns/{kind}").st_ino:
                flags.append(flag)
        except OSError:
            continue
    procs = [str(p) for p in cgroups.create_node(lab_id, node)]

    def join() -> None:
        for path in procs:
            Path(path).write_text(str(os.getpid()))

    return ["nsenter", f"--target={pid}", *flags, "--", *argv], join


def inner_pid(pid: int, timeout: float = 5.0) -> int:
    """The process `command` started, given the PID of what ran it.

    nsenter execs the command itself, except into a PID namespace (a node's
    own): then it forks it and waits for it, and signals sent to nsenter do not
    reach it. Signal this one instead.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return pid
        if children:
            return int(children[0])
        if Path(f"/proc/{pid}/comm").read_text().strip() != "nsenter" or time.monotonic() > deadline:
            return pid
        time.sleep(0.005)


def node_view_pid(pid: int) -> int:
    """A process's PID as its own PID namespace (the node's) numbers it: what it writes in its pidfile."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    return pid
