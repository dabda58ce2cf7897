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

Everything here is read from what tenants make - namespaces, devices,
process and cgroup names - so none of it is trusted: names are bytes (shown
escaped, acted on as they are), a namespace or a device can vanish between
two lines, and there can be thousands. A namespace that cannot be read is
skipped, never fatal.

On an emulated host of the embedded lab, every emulated host shares this
machine's processes: only those in the host's own cgroup (/badsum/LAB/HOST,
where the lab put its sshd and everything under it) count as this host's.

A veth is named, for rollback, by something no later container can have
(`Veth.key`): its namespace's cookie (SO_NETNS_COOKIE, Linux 5.14: never
reused within a boot) where the kernel has one; before that, the namespace's
inode - which the kernel reuses - together with a witness of that
namespace's life: the container that owns it, the process that holds it
(PID and start time), or the bind mount that keeps it.
"""

# Longer than ~300 lines: both ways a namespace is kept alive (a process, a bind mount), its owner
#   and its veths are found in one bounded pass; the identity rules rollback relies on sit beside it.

import contextlib
import os
import re
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple

from ..shared import netlink
from ..shared.common import HostError, read_text, shown
from ..shared.hostns import own_cgroup

__all__ = ["OWN_PREFIXES", "Discovery", "Namespace", "Veth", "entered", "inventory", "own_cgroup"]

# The probe's own throw-away devices: never a container's (the verification's stand for containers).
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
MAX_REFS = 4
# What one audit record lists in detail: counts stay exact beyond it.
DETAIL_LIMIT = 2000
OCTAL = re.compile(rb"\\([0-7]{3})")


def _cgroup_paths(pid: str) -> List[str]:
    try:
        return [line.split(":", 2)[2] for line in read_text(f"/proc/{pid}/cgroup").splitlines()]
    except (OSError, IndexError):
        return []


def _in_scope(paths: List[str], scope: Optional[str]) -> bool:
    return scope is None or any(p == scope or p.startswith(scope + "/") for p in paths)


def _container(paths: List[str]) -> Optional[Tuple[str, str]]:
    """(label, full id) of the container a process belongs to, told by its cgroup, when a runtime made it."""
    for path in paths:
        for pattern, label in OWNER_PATTERNS:
            m = pattern.search(path)
            if m:
                return label.format(m.group(1)[:12]), m.group(1)
    return None


def _comm(pid: str) -> str:
    try:
        return read_text(f"/proc/{pid}/comm").strip()
    except OSError:
        return "?"


def _start_time(pid: str) -> str:
    try:
        return read_text(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


class Namespace:
    """A network namespace found on the host (a plain class: dataclasses would cost every host call ~7 ms)."""

    def __init__(self, inode: int, ref: str, owner: str, witness: str) -> None:
        self.inode = inode
        self.ref = ref  # a path that opens it: a bind mount, or /proc/PID/ns/net
        self.owner = owner  # shown: safe to print
        # What, beside the inode, says this is the same namespace later in
        # the boot, where the kernel has no cookie (the module's docstring).
        self.witness = witness
        self.processes = 0
        self.mounts: List[str] = []
        # Other paths to it. A process seen in a namespace may only be visiting
        # (setns: nsenter, `ip netns exec`, the kit itself) and be gone from it a
        # moment later: entering tries each path until one still leads there.
        self.more: List[str] = []

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


def _mountinfo_path(field: str) -> str:
    """A mount point as the kernel escapes it (\\NNN octal), back to the bytes it is, as a str the os takes."""
    raw = OCTAL.sub(lambda m: bytes([int(m.group(1), 8)]), field.encode("utf-8", "surrogateescape"))
    return raw.decode("utf-8", "surrogateescape")


def _mounted(host: int) -> Dict[int, Namespace]:
    found: Dict[int, Namespace] = {}
    for line in read_text("/proc/self/mountinfo").splitlines():
        fields = line.split()
        try:
            sep = fields.index("-")
        except ValueError:
            continue
        # nsfs since Linux 3.19; before, a namespace's bind mount is of procfs, its root still net:[INODE]
        if fields[sep + 1] not in ("nsfs", "proc") or not fields[3].startswith("net:["):
            continue
        where = _mountinfo_path(fields[4])
        try:
            ino = os.stat(where).st_ino  # hidden under another mount (an emulated host's /run): not ours
        except OSError:
            continue
        if str(ino) != fields[3][5:-1] or ino == host:
            continue
        ns = found.get(ino)
        if ns is None:
            label = f"netns {shown(os.path.basename(where))} ({shown(os.path.dirname(where))})"
            ns = found[ino] = Namespace(ino, where, label, f"mount:{shown(where)}")
        ns.mounts.append(where)
    return found


def scope_pids(scope: str) -> Optional[List[str]]:
    """Every process in the cgroup `scope` and below it, read from the cgroup tree itself, or None if not mounted.

    An emulated host shares the machine's process table: reading each process's
    cgroup to find the few that are the host's own would cost a fleet of 200
    hosts 200 times the whole table.
    """
    mounts = [line.split() for line in read_text("/proc/self/mountinfo").splitlines()]
    for line in read_text("/proc/self/cgroup").splitlines():
        _, controllers, path = line.split(":", 2)
        if path != scope:
            continue
        for fields in mounts:
            sep = fields.index("-")
            fstype, opts = fields[sep + 1], fields[sep + 3].split(",")
            v1 = fstype == "cgroup" and controllers and set(controllers.split(",")) <= set(opts)
            if v1 or (fstype == "cgroup2" and not controllers):
                root = Path(_mountinfo_path(fields[4])) / scope.lstrip("/")
                if root.is_dir():
                    pids: List[str] = []
                    for procs in root.rglob("cgroup.procs"):
                        with contextlib.suppress(OSError):
                            pids += procs.read_text().split()
                    return pids
    return None


class Discovery:
    """Finds the namespaces within a scope; kept by the guard from pass to pass, so a pass reads little.

    What a process is (its name, its cgroup, its start time) is read once per
    process and namespace: a host with a thousand containers has a thousand
    processes to look at every pass, and only the new ones need more than a stat.
    """

    def __init__(self, scope: Optional[str]) -> None:
        self.scope = scope
        self._seen: Dict[Tuple[str, int], Tuple[str, List[str], str]] = {}  # (pid, netns) -> comm, cgroups, start

    def _about(self, pid: str, ino: int) -> Tuple[str, List[str], str]:
        known = self._seen.get((pid, ino))
        if known is None:
            known = self._seen[(pid, ino)] = (_comm(pid), _cgroup_paths(pid), _start_time(pid))
        return known

    def scan(self) -> Tuple[int, Dict[int, Namespace], Dict[str, List[str]]]:
        """(the host's namespace, the others by inode, the runtimes' processes by runtime), within scope."""
        host = netlink.inode()
        namespaces = _mounted(host)
        runtimes: Dict[str, List[str]] = {}
        listed = scope_pids(self.scope) if self.scope else None  # already the scope's own
        alive = set()
        for pid in listed if listed is not None else filter(str.isdigit, os.listdir("/proc")):
            try:
                ino = os.stat(f"/proc/{pid}/ns/net").st_ino
            except OSError:
                continue  # gone meanwhile, or a kernel thread
            alive.add((pid, ino))
            comm, paths, start = self._about(pid, ino)
            if ino == host and comm not in RUNTIME_PROCESSES:
                continue
            if listed is None and (not paths or not _in_scope(paths, self.scope)):
                continue
            if comm in RUNTIME_PROCESSES:
                runtimes.setdefault(RUNTIME_PROCESSES[comm], []).append(pid)
            if ino == host:
                continue
            ns = namespaces.get(ino)
            container = _container(paths)
            if ns is None:
                owner = container[0] if container else f"process {pid} ({shown(comm)})"
                witness = f"container:{container[1]}" if container else f"process:{pid}:{start}"
                namespaces[ino] = ns = Namespace(ino, f"/proc/{pid}/ns/net", owner, witness)
            else:
                ns.add_ref(f"/proc/{pid}/ns/net")
                if container:  # a runtime's name says more than a bind mount's or a process's
                    ns.owner, ns.witness = container[0], f"container:{container[1]}"
            ns.processes += 1
        for gone in set(self._seen) - alive:
            del self._seen[gone]
        return host, namespaces, runtimes


def discover(scope: Optional[str]) -> Tuple[int, Dict[int, Namespace], Dict[str, List[str]]]:
    return Discovery(scope).scan()


class Veth(NamedTuple):
    netns: int  # namespace inode
    # The namespace's cookie: a new container can get a freed inode back (and,
    # made the same way, the same ifindex), never a cookie.
    netns_cookie: Optional[int]
    witness: str  # what else names the namespace, where there is no cookie
    netns_ref: str
    owner: str
    name: str  # the device's name as the kernel has it (bytes, surrogate-escaped): to act on
    ifindex: int
    peer_index: int
    peer_netnsid: int  # -1: the peer is in the same namespace (or the kernel does not say: before 4.0)
    rx: bool
    container: bool  # in a container's namespace: its rx-checksumming is what the bug consulted

    @property
    def ifname(self) -> str:
        return shown(self.name)

    def key(self, boot: str) -> dict:
        """What names this veth for the rest of the boot (rollback turns rx on only on this very one)."""
        ident = {"boot": boot, "netns": self.netns, "ifindex": self.ifindex, "ifname": self.ifname}
        if self.netns_cookie is not None:
            return {**ident, "netns_cookie": self.netns_cookie}
        return {**ident, "witness": self.witness}

    def as_dict(self) -> dict:
        return {
            "netns": self.netns,
            "netns_cookie": self.netns_cookie,
            "netns_ref": shown(self.netns_ref),
            "owner": self.owner,
            "ifname": self.ifname,
            "ifindex": self.ifindex,
            "rx": "on" if self.rx else "off",
            "role": "container" if self.container else "host",
        }


def veths_here(ns: Optional[Namespace], host: int, links: Optional[List[netlink.Link]] = None) -> List[Veth]:
    """The veths of the namespace the calling thread is in now (`ns`; None: the host's)."""
    out = []
    cookie = netlink.netns_cookie()
    for link in netlink.links() if links is None else links:
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
                witness=ns.witness if ns else "host",
                netns_ref=ns.ref if ns else "self",
                owner=ns.owner if ns else "host",
                name=link.name,
                ifindex=link.index,
                peer_index=link.peer_index,
                peer_netnsid=link.peer_netnsid,
                rx=rx,
                container=ns is not None,
            )
        )
    return out


def inventory(scope: Optional[str]) -> dict:
    """Namespaces, veths (container and host), non-veth devices of the host namespace, runtimes."""
    host, namespaces, runtimes = discover(scope)
    host_links = netlink.links()
    veths = veths_here(None, host, host_links)
    unreadable = 0
    for ns in namespaces.values():
        try:
            with entered(ns):
                veths += veths_here(ns, host)
        except (HostError, OSError):
            unreadable += 1  # the container ended while we looked, or its namespace cannot be read
    by_index = {v.ifindex: v for v in veths if not v.container}
    peers_of: Dict[int, List[Veth]] = {}
    # A container veth whose peer is in its own namespace (the kernel names no other) has no host side:
    # ifindexes are per namespace, and its peer's index may be a host device's.
    nsids = any(v.peer_netnsid >= 0 for v in veths)
    for v in veths:
        if v.container and (v.peer_netnsid >= 0 or not nsids):
            peers_of.setdefault(v.peer_index, []).append(v)
    rows = []
    for v in veths:
        row = v.as_dict()
        if v.container:
            if v.peer_netnsid < 0 and nsids:
                row["peer"] = "in its own namespace"
            else:
                peer = by_index.get(v.peer_index)
                row["peer"] = f"{peer.ifname} (host)" if peer else "in another namespace"
        else:
            peers = peers_of.get(v.ifindex, [])
            row["peer"] = f"{peers[0].ifname} in {peers[0].owner}" if peers else ""
            row["role"] = "host-side" if peers else "host"
        rows.append(row)
    devices = [
        {"ifname": shown(link.name), "kind": link.kind or "physical"}
        for link in host_links
        if link.kind != "veth" and link.name != "lo"
    ]
    listed = list(namespaces.values())
    return {
        "scope": f"cgroup {scope} (an emulated host of the embedded lab)" if scope else "the whole host",
        "namespaces": [
            {
                "inode": ns.inode,
                "ref": shown(ns.ref),
                "owner": ns.owner,
                "processes": ns.processes,
                "mounts": [shown(m) for m in ns.mounts[:MAX_REFS]],
            }
            for ns in listed[:DETAIL_LIMIT]
        ],
        "namespaces_total": len(listed),
        "namespaces_unreadable": unreadable,
        "veths": rows[:DETAIL_LIMIT],
        "veths_total": len(rows),
        "container_veths": sum(v.container for v in veths),
        "container_veths_rx_on": sum(v.container and v.rx for v in veths),
        "container_veths_rx_on_list": [r for r in rows if r["role"] == "container" and r["rx"] == "on"][:DETAIL_LIMIT],
        "devices": devices[:DETAIL_LIMIT],
        "runtimes": {name: len(pids) for name, pids in sorted(runtimes.items())},
    }
