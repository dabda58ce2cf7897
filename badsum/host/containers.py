"""Every network namespace on the host, who owns it, and every veth in it with its rx-checksumming.

Namespaces are found the two ways they are kept alive: by a process
(/proc/PID/ns/net: containers of every runtime, whatever they are called)
and by a bind mount (nsfs in /proc/self/mountinfo: `ip netns`, Docker's
sandboxes, CNI's pods). `ip netns list` alone sees only the last kind.

A *container veth* is a veth that lives in a namespace other than the
host's: its peer is the host side. veth_xmit() consulted the receiving
device's NETIF_F_RXCSUM, so for traffic into a container the container-side
end is the one that matters, and the one remediation turns off. Veths with
both ends in the host namespace, physical NICs and bridges are listed and
never changed.

On an emulated host of the embedded lab, every emulated host shares this
machine's processes: only those in the host's own cgroup (/badsum/LAB/HOST,
where the lab put its sshd and everything under it) count as this host's.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from . import netlink
from .common import HostError

# The probe's and the verification's own throw-away devices: never a container's.
OWN_PREFIXES = ("bsprobe-",)
RUNTIME_PROCESSES = {
    "dockerd": "docker",
    "containerd": "containerd",
    "mesos-agent": "mesos",
    "mesos-slave": "mesos",
    "kubelet": "kubernetes",
    "crio": "cri-o",
    "podman": "podman",
}
OWNER_PATTERNS = (
    (re.compile(r"/docker[/-]([0-9a-f]{64})"), "docker container {}"),
    (re.compile(r"kubepods.*?pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})"), "pod {}"),
    (re.compile(r"/mesos/([0-9a-f-]{36})"), "mesos container {}"),
    (re.compile(r"/libpod-([0-9a-f]{64})"), "podman container {}"),
)


def own_cgroup() -> str | None:
    """/badsum/LAB/HOST when this process runs on an emulated host of the embedded lab, else None."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        path = line.split(":", 2)[2]
        parts = path.split("/")
        if len(parts) >= 4 and parts[1] == "badsum":
            return "/".join(parts[:4])
    return None


def _cgroup_paths(pid: str) -> list[str]:
    try:
        return [line.split(":", 2)[2] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()]
    except (OSError, IndexError):
        return []


def _in_scope(paths: list[str], scope: str | None) -> bool:
    return scope is None or any(p == scope or p.startswith(scope + "/") for p in paths)


def _container(paths: list[str]) -> str | None:
    """The container a process belongs to, told by its cgroup, when a runtime made it."""
    for path in paths:
        for pattern, label in OWNER_PATTERNS:
            m = pattern.search(path)
            if m:
                return label.format(m[1][:12])
    return None


def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


MAX_REFS = 4


class Namespace:
    """A network namespace found on the host (a plain class: dataclasses would cost every host call ~7 ms)."""

    def __init__(self, inode: int, ref: str, owner: str) -> None:
        self.inode = inode
        self.ref = ref  # a path that opens it: a bind mount, or /proc/PID/ns/net
        self.owner = owner
        self.processes = 0
        self.mounts: list[str] = []
        # Other paths to it. A process seen in a namespace may only be visiting
        # (setns: nsenter, `ip netns exec`, the kit itself) and be gone from it a
        # moment later: entering tries each path until one still leads there.
        self.more: list[str] = []

    def add_ref(self, ref: str) -> None:
        if ref != self.ref and len(self.more) < MAX_REFS:
            self.more.append(ref)


@contextlib.contextmanager
def entered(ns: Namespace) -> Iterator[None]:
    """Run the block inside the namespace, through the first of its paths that still leads to it."""
    with contextlib.ExitStack() as stack:
        for ref in (ns.ref, *ns.more):
            try:
                stack.enter_context(netlink.inside(ref, expect=ns.inode))
                break
            except HostError:
                continue
        else:
            raise HostError(f"the namespace {ns.inode} ({ns.owner}) is gone")
        yield


def _unescape(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), path)


def _mounted(host: int) -> dict[int, Namespace]:
    found: dict[int, Namespace] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        if fields[sep + 1] != "nsfs" or not fields[3].startswith("net:["):
            continue
        where = _unescape(fields[4])
        try:
            ino = os.stat(where).st_ino  # hidden under another mount (an emulated host's /run): not ours
        except OSError:
            continue
        if ino != int(fields[3][5:-1]) or ino == host:
            continue
        ns = found.setdefault(ino, Namespace(ino, where, f"netns {Path(where).name} ({Path(where).parent})"))
        ns.mounts.append(where)
    return found


def _scope_pids(scope: str) -> list[str] | None:
    """Every process in the cgroup `scope` and below it, read from the cgroup tree itself, or None if not mounted.

    An emulated host shares the machine's process table: reading each process's
    cgroup to find the few that are the host's own would cost a fleet of 200
    hosts 200 times the whole table.
    """
    mounts = [line.split() for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if path != scope:
            continue
        for fields in mounts:
            sep = fields.index("-")
            fstype, opts = fields[sep + 1], fields[sep + 3].split(",")
            v1 = fstype == "cgroup" and controllers and set(controllers.split(",")) <= set(opts)
            if v1 or (fstype == "cgroup2" and not controllers):
                root = Path(_unescape(fields[4])) / scope.lstrip("/")
                if root.is_dir():
                    pids = []
                    for procs in root.rglob("cgroup.procs"):
                        with contextlib.suppress(OSError):
                            pids += procs.read_text().split()
                    return pids
    return None


def discover(scope: str | None) -> tuple[int, dict[int, Namespace], dict[str, list[str]]]:
    """(the host's namespace, the others by inode, the runtimes' processes by runtime), within scope."""
    host = netlink.inode()
    namespaces = _mounted(host)
    runtimes: dict[str, list[str]] = {}
    listed = _scope_pids(scope) if scope else None  # already the scope's own: no cgroup check needed
    for pid in listed if listed is not None else filter(str.isdigit, os.listdir("/proc")):
        try:
            ino = os.stat(f"/proc/{pid}/ns/net").st_ino
        except OSError:
            continue  # gone meanwhile, or a kernel thread
        comm = _comm(pid)
        if ino == host and comm not in RUNTIME_PROCESSES:
            continue
        paths = _cgroup_paths(pid)
        if listed is None and (not paths or not _in_scope(paths, scope)):
            continue
        if comm in RUNTIME_PROCESSES:
            runtimes.setdefault(RUNTIME_PROCESSES[comm], []).append(pid)
        if ino == host:
            continue
        ns = namespaces.get(ino)
        container = _container(paths)
        if ns is None:
            owner = container or f"process {pid} ({comm})"
            namespaces[ino] = ns = Namespace(ino, f"/proc/{pid}/ns/net", owner)
        else:
            ns.add_ref(f"/proc/{pid}/ns/net")
            if container:
                ns.owner = container  # a runtime's name says more than a bind mount's or a process's
        ns.processes += 1
    return host, namespaces, runtimes


class Veth(NamedTuple):
    netns: int  # namespace inode
    # The namespace's cookie: a new container can get a freed inode back (and,
    # made the same way, the same ifindex), never a cookie.
    netns_cookie: int | None
    netns_ref: str
    owner: str
    ifname: str
    ifindex: int
    peer_index: int
    rx: bool
    container: bool  # in a container's namespace: its rx-checksumming is what the bug consulted

    def as_dict(self) -> dict:
        return {
            "netns": self.netns,
            "netns_cookie": self.netns_cookie,
            "netns_ref": self.netns_ref,
            "owner": self.owner,
            "ifname": self.ifname,
            "ifindex": self.ifindex,
            "rx": "on" if self.rx else "off",
            "role": "container" if self.container else "host",
        }


def _veths(links: list[netlink.Link], ns: Namespace | None, host: int) -> list[Veth]:
    out = []
    cookie = netlink.netns_cookie()
    for link in links:
        if link.kind != "veth" or link.name.startswith(OWN_PREFIXES):
            continue
        try:
            rx = netlink.rx_checksumming(link.name)
        except HostError:
            continue  # moved or deleted since the dump
        out.append(
            Veth(
                netns=ns.inode if ns else host,
                netns_cookie=cookie,
                netns_ref=ns.ref if ns else "self",
                owner=ns.owner if ns else "host",
                ifname=link.name,
                ifindex=link.index,
                peer_index=link.peer_index,
                rx=rx,
                container=ns is not None,
            )
        )
    return out


def inventory(scope: str | None) -> dict:
    """Namespaces, veths (container and host), non-veth devices of the host namespace, runtimes."""
    host, namespaces, runtimes = discover(scope)
    host_links = netlink.links()
    veths = _veths(host_links, None, host)
    for ns in namespaces.values():
        try:
            with entered(ns):
                veths += _veths(netlink.links(), ns, host)
        except HostError:
            continue  # the container ended while we looked
    by_index = {v.ifindex: v for v in veths if not v.container}
    rows = []
    for v in veths:
        row = v.as_dict()
        peer = by_index.get(v.peer_index) if v.container else None
        if v.container:
            row["peer"] = f"{peer.ifname} (host)" if peer else "in another namespace"
        else:
            peers = [c for c in veths if c.container and c.peer_index == v.ifindex]
            row["peer"] = f"{peers[0].ifname} in {peers[0].owner}" if peers else ""
            row["role"] = "host-side" if peers else "host"
        rows.append(row)
    devices = [
        {"ifname": link.name, "kind": link.kind or "physical"}
        for link in host_links
        if link.kind != "veth" and link.name != "lo"
    ]
    return {
        "scope": f"cgroup {scope} (an emulated host of the embedded lab)" if scope else "the whole host",
        "namespaces": [
            {"inode": ns.inode, "ref": ns.ref, "owner": ns.owner, "processes": ns.processes, "mounts": ns.mounts}
            for ns in namespaces.values()
        ],
        "veths": rows,
        "devices": devices,
        "runtimes": {name: len(pids) for name, pids in sorted(runtimes.items())},
    }
