"""The guard: rx-checksumming off on every container veth, including the ones created later.

    guard sweep                                one pass now: every container veth's rx off
    guard run    --state-dir DIR [--interval S]  the daemon: a pass whenever a link appears, and every S seconds
    guard status --state-dir DIR               is it running, how many passes and changes

Why a daemon, and not a udev rule or a systemd .link file: those act where
udev listens, the host namespace, at the moment a device appears. Docker and
Mesos create the pair there and move one end into the container, racing the
rule; the CNI bridge plugin creates the pair inside the pod's namespace and
moves only the host end out, so the container end is never seen at all. The
guard listens for link events in the host namespace - every runtime's host
end shows up there - and then walks every container namespace, so it covers
all of them the same way. It changes container-side veths only (containers.py
says which), never a physical NIC, a bridge or a host-only veth.

Under systemd it runs as a unit (remediate installs it: Type=notify, so
systemd counts it as started once it listens and has made its first pass,
and starts the container runtimes after it at boot); elsewhere as a daemon
in the caller's session and cgroup, with a pidfile in DIR.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import select
import signal
import socket
import time
from pathlib import Path

from . import containers, netlink
from .common import HostError, Parser, alive, atomic_write, boot_id, read_pid

DEBOUNCE = 0.01  # a runtime creates, moves and renames in bursts: one pass after the burst
LOG_LIMIT = 1 << 20


def sweep(scope: str | None, check: bool = False) -> list[dict]:
    """Turn rx-checksumming off on every container veth that has it on; what was (or would be) changed."""
    changed = []
    boot = boot_id()  # a veth is (netns inode, ifindex) only within this boot: both are reused after a reboot
    _host, namespaces, _runtimes = containers.discover(scope)
    for ns in namespaces.values():
        try:
            with containers.entered(ns):
                for link in netlink.links():
                    if link.kind != "veth" or link.name.startswith(containers.OWN_PREFIXES):
                        continue
                    if not netlink.rx_checksumming(link.name):
                        continue
                    if not check:
                        netlink.set_rx_checksumming(link.name, False)
                    changed.append(
                        {"boot": boot, "netns": ns.inode, "owner": ns.owner, "ifname": link.name, "ifindex": link.index}
                    )
        except HostError:
            continue  # the container or its veth went away while we looked: nothing to protect
    return changed


def veth_key(v: dict) -> tuple:
    # Records from before the boot id was kept have none: they are taken as this boot's.
    return v.get("boot"), v["netns"], v["ifindex"]


def this_boots(recorded: list[dict], boot: str) -> tuple[list[dict], list[dict]]:
    """The veths rollback may turn on again, and what is gone with an earlier boot.

    After a reboot the same netns inode, ifindex and name can belong to another
    container - one whose runtime turned rx off itself (Mesos): never turn it on.
    """
    unique = {veth_key(v): v for v in recorded}
    current = [v for v in unique.values() if v.get("boot", boot) == boot]
    return current, [v for v in unique.values() if v.get("boot", boot) != boot]


class Files:
    """The guard's pidfile, status and log, in the remediation's state directory."""

    def __init__(self, state_dir: str) -> None:
        self.dir = Path(state_dir)
        self.pid, self.status, self.log = self.dir / "guard.pid", self.dir / "guard.json", self.dir / "guard.log"
        self.changes = self.dir / "guard-changes.jsonl"

    def running(self) -> int | None:
        pid = read_pid(self.pid)
        if not pid or not alive(pid):
            return None
        try:  # a reused PID is not our guard
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        return pid if b"guard" in cmdline and b"run" in cmdline else None

    def record_change(self, item: dict) -> None:
        """One line per veth the guard turned off: rollback turns them on again (their rx was on)."""
        with self.changes.open("a") as f:
            f.write(json.dumps({**item, "rx": "on"}) + "\n")

    def changed(self) -> list[dict]:
        if not self.changes.exists():
            return []
        return [json.loads(line) for line in self.changes.read_text().splitlines() if line.strip()]

    def forget_earlier_boots(self) -> None:
        """Keep the list to this boot's changes: the veths of an earlier one are gone, and rollback skips them."""
        kept, earlier = this_boots(self.changed(), boot_id())
        if earlier:
            atomic_write(self.changes, "".join(json.dumps(item) + "\n" for item in kept))

    def write_log(self, line: str) -> None:
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


def _drain(events: socket.socket) -> None:
    """Read the burst's messages: they only say "look again". An overflow (ENOBUFS) says the same."""
    with contextlib.suppress(BlockingIOError):
        while True:
            try:
                events.recv(1 << 16, socket.MSG_DONTWAIT)
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise


def run_daemon(files: Files, interval: float) -> None:
    scope = containers.own_cgroup()
    stop = False

    def on_signal(_sig, _frame) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # Python retries a select() a signal interrupted (PEP 475), so the handler
    # alone would leave the guard asleep until the next link event or pass
    # (a minute): the wakeup pipe makes the signal itself wake the select.
    wake, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    files.dir.mkdir(parents=True, exist_ok=True)
    files.forget_earlier_boots()  # a node with pod churn would grow the list boot after boot
    passes = changes = 0
    announced = False
    with netlink.link_events() as events:
        due = 0.0  # the first pass at once
        while not stop:
            woken = select.select([events, wake], [], [], max(0.0, due - time.monotonic()))[0]
            if wake in woken:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake, 64)
                continue  # the loop's test says whether it was a stop
            if not woken and time.monotonic() < due:
                continue
            try:
                if woken:
                    _drain(events)
                    time.sleep(DEBOUNCE)
                done = sweep(scope)
            except Exception as exc:  # one failed pass must not end the guard
                files.write_log(f"pass failed, again in 1 s: {exc!r}")
                due = time.monotonic() + 1
                continue
            passes += 1
            changes += len(done)
            for item in done:
                files.write_log(f"rx off: {item['ifname']} in {item['owner']}")
                files.record_change(item)
            atomic_write(
                files.status,
                json.dumps({"pid": os.getpid(), "passes": passes, "changes": changes, "last_pass": time.time()}),
            )
            if not announced:
                # Only now, listening and with a first pass done, does it count as running:
                # a link made after start_guard() returns cannot be missed.
                atomic_write(files.pid, str(os.getpid()))
                files.write_log(f"started (pid {os.getpid()}, scope {scope or 'whole host'}, interval {interval:g} s)")
                notify("READY=1")
                announced = True
            if done or passes == 1:
                notify(f"STATUS={changes} container veths turned to rx off in {passes} passes")
            due = time.monotonic() + interval
    notify("STOPPING=1")
    files.write_log("stopped")
    files.pid.unlink(missing_ok=True)


def status(files: Files) -> dict:
    pid = files.running()
    info: dict = {"running": pid is not None, "pid": pid}
    if files.status.exists():
        with contextlib.suppress(ValueError, OSError):
            info.update({k: v for k, v in json.loads(files.status.read_text()).items() if k != "pid"})
    return info


def build_parser() -> Parser:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    s = sub.add_parser("sweep", help="one pass now")
    s.add_argument("--check", action="store_true", help="say what would change, change nothing")
    r = sub.add_parser("run", help="the daemon (foreground; remediate starts it)")
    r.add_argument("--interval", type=float, default=60.0, help="seconds between passes without link events")
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
