"""The guard: rx-checksumming off on every container veth, including the ones created later.

    guard sweep                                one pass now: every container veth's rx off
    guard run    --state-dir DIR --interval S  the daemon: a pass whenever a link appears, and every S seconds
    guard status --state-dir DIR               is it running, how many passes and changes

Why a daemon, and not a udev rule or a systemd .link file: those act where
udev listens, the host namespace, at the moment a device appears. Docker and
Mesos create the pair there and move one end into the container, racing the
rule; the CNI bridge plugin creates the pair inside the pod's namespace and
moves only the host end out, so the container end is never seen at all. The
guard listens for link events in the host namespace - every runtime's host
end shows up there - and then looks at the container namespaces, so it
covers all of them the same way. It changes container-side veths only,
never a physical NIC, a bridge or a host-only veth.

Where remediation took on the second hazard too (the record's `vxlan.guard`:
vxlan.py), each pass also turns tx-checksum-ip-generic off on every affected
vxlan device of the host's namespace that has it on - flannel deletes and
recreates flannel.1 on a restart, with the offload on again - and notes each
in guard-vxlan.jsonl (rollback turns those on again). A record that says
`veth: false` (a host exposed to the second hazard only) leaves veths alone.

It stays on production hosts, next to tenants, so it is bounded:

- a pass after link events looks only at namespaces it has not seen yet and
  at those the events name (a veth's peer namespace id); every `interval`
  seconds, and whenever an event names a namespace it cannot place, it looks
  at all of them. Passes are at least MIN_GAP apart, however many events
  come: an event storm costs a few passes a second (bench/guard.py);
- a namespace that vanishes or cannot be read mid-pass is skipped; a pass
  that fails is logged and tried again a second later; nothing a tenant
  names (interface names are bytes) can stop it;
- its files are bounded: the log rotates, the list of what it changed drops
  the namespaces that are gone, and stops growing at CHANGES_LIMIT (the
  veths it turns off after that stay off at rollback: the safe side);
- under systemd its unit caps its memory, tasks and CPU (persistence.py);
  as a daemon it caps its own address space.

Under systemd it runs as a unit (remediate installs it: Type=notify, so
systemd counts it as started once it listens and has made its first pass,
and starts the container runtimes after it at boot); elsewhere as a daemon
in the caller's session and cgroup, with a pidfile in DIR.
"""

# Longer than ~300 lines: the daemon's loop, its incremental sweeper and its bounded files share the
#   sweeper's state; the limits that make it safe are read with the loop they bound.

import argparse
import contextlib
import errno
import json
import os
import resource
import select
import signal
import socket
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Set, Tuple

from ..shared import netlink
from ..shared.common import HostError, Parser, alive, atomic_write, boot_id, read_pid, read_text, unlink
from . import containers, vxlan

DEBOUNCE = 0.01  # a runtime creates, moves and renames in bursts: one pass after the burst
MIN_GAP = 0.25  # seconds between two passes, whatever the events: at most four a second
LOG_LIMIT = 1 << 20  # the log rotates to guard.log.1 beyond this
CHANGES_LIMIT = 4 << 20  # ~20,000 veths: beyond it (once compacted), changes are not recorded any more
VXLAN_CHANGES_LIMIT = 256 << 10  # a device recreated in a loop: beyond it, the knob stays off at rollback
MEMORY_LIMIT = 512 << 20  # the daemon's address space (under systemd, MemoryMax= caps it)


def veth_key(v: dict) -> tuple:
    """What tells two records of a veth apart: the namespace's cookie, or its inode and witness; then the device.

    Records from before the boot id was kept have none: they are taken as this boot's.
    """
    ns = v.get("netns_cookie") if v.get("netns_cookie") is not None else v.get("witness")
    return v.get("boot"), v["netns"], ns, v["ifindex"]


def this_boots(recorded: List[dict], boot: str) -> Tuple[List[dict], List[dict]]:
    """The veths rollback may turn on again, and what is gone with an earlier boot.

    After a reboot the same netns inode, ifindex and name can belong to another
    container - one whose runtime turned rx off itself (Mesos): never turn it on.
    """
    unique = {veth_key(v): v for v in recorded}
    current = [v for v in unique.values() if v.get("boot", boot) == boot]
    return current, [v for v in unique.values() if v.get("boot", boot) != boot]


def change(veth: containers.Veth, boot: str) -> dict:
    """A record of a veth turned off: rollback turns it on again (its rx was on)."""
    return {**veth.key(boot), "owner": veth.owner, "rx": "on"}


class Sweeper:
    """Turns rx-checksumming off on container veths; remembers, between passes, what it has looked at."""

    def __init__(
        self, scope: Optional[str], check: bool = False, record: Optional[Callable[[List[dict]], None]] = None
    ) -> None:
        self.discovery = containers.Discovery(scope)
        self.check = check
        # Told what a namespace's veths are about to become, before they change (a write-ahead record):
        # a guard killed mid-pass leaves no veth off that rollback does not know of.
        self.record = record
        self.boot = boot_id()
        self.seen: Dict[int, str] = {}  # netns inode -> witness, of the namespaces looked at
        self.nsids: Dict[int, int] = {}  # the host's id of a namespace -> its inode
        self.namespaces: Dict[int, containers.Namespace] = {}
        self.skipped = 0  # namespaces that vanished or could not be read, last pass

    def full(self) -> List[dict]:
        """Every namespace of the scope."""
        return self._pass(everything=True, named=())

    def after_events(self, named: Iterable[int]) -> List[dict]:
        """New namespaces, and those link events named (a peer's namespace id); all of them for an id none has."""
        return self._pass(everything=False, named=set(named))

    def alive(self, v: dict) -> bool:
        """Whether the namespace of a recorded veth still exists (as of the last pass)."""
        ns = self.namespaces.get(v["netns"])
        return ns is not None and (v.get("witness") is None or v.get("witness") == ns.witness)

    def _pass(self, everything: bool, named: Set[int]) -> List[dict]:
        _host, self.namespaces, _ = self.discovery.scan()
        if not everything and named - set(self.nsids):
            # The kernel gives a namespace its id when a peer first lands in it, often after we looked
            # (a container's namespace is made before its veth): ask for the ids we lack - one netlink
            # request each, where a full pass would enter every namespace - and look everywhere only
            # for an id none of them has.
            known = set(self.nsids.values())
            for ino, ns in self.namespaces.items():
                if ino not in known:
                    self._learn_nsid(ns)
            everything = bool(named - set(self.nsids))
        wanted = {self.nsids[n] for n in named if n in self.nsids}
        done: List[dict] = []
        self.skipped = 0
        for ino, ns in self.namespaces.items():
            if not (everything or ino in wanted or self.seen.get(ino) != ns.witness):
                continue
            try:
                done += self._visit(ns)
            except (HostError, OSError):
                self.skipped += 1  # the container or its veth went away while we looked: nothing to protect
                continue
            self.seen[ino] = ns.witness
        for gone in set(self.seen) - set(self.namespaces):
            del self.seen[gone]
        self.nsids = {n: i for n, i in self.nsids.items() if i in self.namespaces}
        return done

    def _visit(self, ns: containers.Namespace) -> List[dict]:
        self._learn_nsid(ns)
        with containers.entered(ns):
            todo = [veth for veth in containers.veths_here(ns, 0) if veth.rx]
            done = [change(veth, self.boot) for veth in todo]
            if self.check or not todo:
                return done
            if self.record is not None:
                self.record(done)  # one still on at rollback is left as it is: the record says "was on"
            for veth in todo:
                netlink.set_rx_checksumming(veth.name, False)
        return done

    def _learn_nsid(self, ns: containers.Namespace) -> None:
        for ref in (ns.ref, *ns.more):
            try:
                fd = os.open(ref, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                if os.fstat(fd).st_ino != ns.inode:
                    continue
                nsid = netlink.netnsid(fd)
            finally:
                os.close(fd)
            if nsid is not None and nsid >= 0:
                self.nsids[nsid] = ns.inode
            return


def sweep(scope: Optional[str], check: bool = False) -> List[dict]:
    """One pass over every container veth: what was (or, with check, would be) turned off."""
    return Sweeper(scope, check).full()


class Files:
    """The guard's pidfile, status, log and list of changes, in the remediation's state directory."""

    def __init__(self, state_dir: str) -> None:
        self.dir = Path(state_dir)
        self.pid, self.status, self.log = self.dir / "guard.pid", self.dir / "guard.json", self.dir / "guard.log"
        self.changes = self.dir / "guard-changes.jsonl"
        self.vxlan_changes = self.dir / "guard-vxlan.jsonl"
        self.full = False

    def running(self) -> Optional[int]:
        pid = read_pid(self.pid)
        if not pid or not alive(pid):
            return None
        try:  # a reused PID is not our guard
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        return pid if b"guard" in cmdline and b"run" in cmdline else None

    def record_changes(self, items: List[dict], sweeper: Optional[Sweeper] = None) -> None:
        """One line per veth the guard turned off: rollback turns them on again (their rx was on)."""
        if not items:
            return
        size = self.changes.stat().st_size if self.changes.exists() else 0
        if size > CHANGES_LIMIT and sweeper is not None:
            self.compact(sweeper)
            size = self.changes.stat().st_size if self.changes.exists() else 0
        if size > CHANGES_LIMIT:
            if not self.full:
                self.write_log(f"the list of changes is full ({size} bytes): veths turned off from now on stay off")
                self.full = True
            return
        self.full = False
        # Written before the change (the sweeper's write-ahead), without fsync: what it guards against
        # is the guard's death, and the kernel keeps a dead process's writes; a power cut takes these
        # veths with it (rollback skips an earlier boot's). One fsync per namespace cost a storm of new
        # containers a third of the guard's CPU (bench/guard.py).
        with self.changes.open("a") as f:
            f.write("".join(json.dumps(item) + "\n" for item in items))

    def changed(self) -> List[dict]:
        """What the guard turned off (lines it cannot read are skipped: rollback leaves those veths off)."""
        if not self.changes.exists():
            return []
        found = []
        for line in read_text(self.changes).splitlines():
            with contextlib.suppress(ValueError, TypeError):
                item = json.loads(line)
                if isinstance(item, dict) and {"netns", "ifindex", "ifname"} <= set(item):
                    found.append(item)
        return found

    def hazards(self) -> Tuple[bool, bool, bool]:
        """(container veths, vxlan devices, the 2020 fix treated as missing): what the record asks the guard
        to look after, read once a pass.

        Read on every pass (remediation may add the second hazard while the guard
        runs). A record it cannot read: veths, as before the second hazard, and
        no vxlan device (nothing could record what the guard changed). The third:
        the record's remediation treated ea64d8d6c675 as missing (the bug emulated:
        labs, vxlan.py), so the guard switches a zero-checksum device off too.
        """
        try:
            state = json.loads(read_text(self.dir / "state.json"))
        except (OSError, ValueError):
            return True, False, False
        if not isinstance(state, dict):
            return True, False, False
        vxlan_state = state.get("vxlan") or {}
        return bool(state.get("veth", True)), bool(vxlan_state.get("guard")), bool(vxlan_state.get("emulate_bug"))

    def record_vxlan(self, items: List[dict]) -> None:
        """One line per vxlan device the guard switched off; capped (past the cap they stay off at rollback)."""
        if not items:
            return
        if self.vxlan_changes.exists() and self.vxlan_changes.stat().st_size > VXLAN_CHANGES_LIMIT:
            self.write_log("the list of vxlan changes is full: devices switched off from now on stay off")
            return
        with self.vxlan_changes.open("a") as f:
            f.write("".join(json.dumps(item) + "\n" for item in items))
            f.flush()
            os.fsync(f.fileno())

    def changed_vxlan(self) -> List[dict]:
        """The vxlan devices the guard switched off (unreadable lines skipped: those stay off)."""
        if not self.vxlan_changes.exists():
            return []
        found = []
        for line in read_text(self.vxlan_changes).splitlines():
            with contextlib.suppress(ValueError, TypeError):
                item = json.loads(line)
                if isinstance(item, dict) and {"ifindex", "ifname", "boot"} <= set(item):
                    found.append(item)
        return found

    def compact(self, sweeper: Sweeper) -> None:
        """Keep this boot's changes whose namespace still exists: the others cannot be rolled back anyway."""
        kept, _earlier = this_boots(self.changed(), boot_id())
        atomic_write(self.changes, "".join(json.dumps(v) + "\n" for v in kept if sweeper.alive(v)))

    def forget_earlier_boots(self) -> None:
        """Keep the list to this boot's changes: the veths of an earlier one are gone, and rollback skips them."""
        kept, earlier = this_boots(self.changed(), boot_id())
        if earlier:
            atomic_write(self.changes, "".join(json.dumps(item) + "\n" for item in kept))

    def write_log(self, line: str) -> None:
        with contextlib.suppress(OSError):
            if self.log.exists() and self.log.stat().st_size > LOG_LIMIT:
                self.log.replace(self.log.with_suffix(".log.1"))
            with self.log.open("a") as f:
                f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")


def notify(message: str) -> None:
    """Tell systemd (sd_notify's protocol: a datagram to $NOTIFY_SOCKET); nothing when it is not asking."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendto(message.encode(), address)


def _drain(events: socket.socket) -> Tuple[Set[int], bool]:
    """Read the burst's messages: the peer namespaces they name, and whether some were lost (look at all)."""
    named: Set[int] = set()
    lost = False
    with contextlib.suppress(BlockingIOError):
        while True:
            try:
                data = events.recv(1 << 16, socket.MSG_DONTWAIT)
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                lost = True  # the kernel dropped events: which namespaces they named is unknown
                continue
            for link in netlink.events(data):
                if link.peer_netnsid >= 0:
                    named.add(link.peer_netnsid)
    return named, lost


def _limit_self() -> None:
    """A daemon without systemd caps its own memory: a guard must never be what takes a host down."""
    with contextlib.suppress(ValueError, OSError):
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = MEMORY_LIMIT if hard == resource.RLIM_INFINITY else min(MEMORY_LIMIT, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def run_daemon(files: Files, interval: float) -> None:
    scope = containers.own_cgroup()
    stop = False

    def on_signal(_sig, _frame) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if "NOTIFY_SOCKET" not in os.environ:
        _limit_self()
    # Python retries a select() a signal interrupted (PEP 475), so the handler
    # alone would leave the guard asleep until the next link event or pass
    # (a minute): the wakeup pipe makes the signal itself wake the select.
    wake, wake_w = os.pipe()
    for fd in (wake, wake_w):
        os.set_blocking(fd, False)
        os.set_inheritable(fd, False)
    signal.set_wakeup_fd(wake_w)
    files.dir.mkdir(parents=True, exist_ok=True)
    files.forget_earlier_boots()  # a node with pod churn would grow the list boot after boot
    sweeper = Sweeper(scope, record=lambda items: files.record_changes(items, sweeper))
    passes = changes = 0
    announced = False
    last = 0.0
    next_full = 0.0  # the first pass at once, a full one
    burst: Optional[float] = None  # when the first event since the last pass came
    named: Set[int] = set()
    lost = False
    with netlink.link_events() as events:
        while not stop:
            due = next_full if burst is None else min(next_full, max(burst + DEBOUNCE, last + MIN_GAP))
            woken = select.select([events, wake], [], [], max(0.0, due - time.monotonic()))[0]
            if wake in woken:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake, 64)
                continue  # the loop's test says whether it was a stop
            if events in woken:
                more, dropped = _drain(events)
                named |= more
                lost = lost or dropped
                if burst is None:
                    burst = time.monotonic()
                continue
            now = time.monotonic()
            if now < due:
                continue
            everything = now >= next_full or lost
            last = now
            try:
                veths, devices, emulated = files.hazards()
                done = (sweeper.full() if everything else sweeper.after_events(named)) if veths else []
                switched = vxlan.switch_off(record=files.record_vxlan, emulate_bug=emulated) if devices else []
            except Exception as exc:  # one failed pass must not end the guard
                files.write_log(f"pass failed, again in 1 s: {exc!r}")
                next_full = min(next_full, now + 1)
                continue
            if everything:
                next_full = now + interval
            burst, named, lost = None, set(), False
            passes += 1
            changes += len(done)  # each namespace's recorded by the sweeper before it changed them
            for item in switched:  # recorded by switch_off before it changed them
                files.write_log(f"tx-checksum-ip-generic off: {item['ifname']} (vxlan)")
            for item in done[:100]:
                files.write_log(f"rx off: {item['ifname']} in {item['owner']}")
            if len(done) > 100:
                files.write_log(f"rx off: {len(done) - 100} more container veths")
            status = {"pid": os.getpid(), "passes": passes, "changes": changes, "last_pass": time.time()}
            status["skipped"] = sweeper.skipped
            atomic_write(files.status, json.dumps(status))
            if not announced:
                # Only now, listening and with a first pass done, does it count as running:
                # a link made after start_guard() returns cannot be missed.
                atomic_write(files.pid, str(os.getpid()))
                files.write_log(f"started (pid {os.getpid()}, scope {scope or 'whole host'}, interval {interval:g} s)")
                notify("READY=1")
                announced = True
            if done or passes == 1:
                notify(f"STATUS={changes} container veths turned to rx off in {passes} passes")
    notify("STOPPING=1")
    files.write_log("stopped")
    unlink(files.pid)


def status(files: Files) -> dict:
    pid = files.running()
    info: dict = {"running": pid is not None, "pid": pid}
    if files.status.exists():
        with contextlib.suppress(ValueError, OSError):
            info.update({k: v for k, v in json.loads(files.status.read_text()).items() if k != "pid"})
    return info


def build_parser() -> Parser:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", parser_class=Parser)
    sub.required = True  # add_subparsers(required=) is Python 3.7
    s = sub.add_parser("sweep", help="one pass now")
    s.add_argument("--check", action="store_true", help="say what would change, change nothing")
    r = sub.add_parser("run", help="the daemon (foreground; remediate starts it)")
    # No default: remediation starts it with the fleet's badsum_fleet_guard_interval (persistence.py).
    r.add_argument("--interval", type=float, required=True, help="seconds between passes without link events")
    st = sub.add_parser("status", help="is it running")
    for a in (r, st):
        a.add_argument("--state-dir", required=True)
    return p


def run(args: argparse.Namespace) -> dict:
    if args.action == "sweep":
        done = sweep(containers.own_cgroup(), check=args.check)
        return {"changed": bool(done), "veths": done, **({"check_mode": True} if args.check else {})}
    files = Files(args.state_dir)
    if args.action == "status":
        return status(files)
    if not args.interval > 0:
        raise HostError(f"--interval must be above 0 (got {args.interval})")
    run_daemon(files, args.interval)
    return {"changed": False}
