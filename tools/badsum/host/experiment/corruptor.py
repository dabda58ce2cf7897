"""Arm, read and disarm badsum's corruption injector on this host.

    corruptor arm     --backend ebpf|netem --iface IF --hook egress|ingress --ports LO-HI ...
    corruptor stats   --iface IF      what the injector did (ebpf: exact counts and events)
    corruptor collect --iface IF      stats, then disarm: the end of a window in one call
    corruptor disarm  --iface IF      remove the filter (and with it the program's maps)

The corruption window is enforced on this host (by the kernel for ebpf, by a
detached timer process for netem), never by the controller staying alive.
It follows the rule of window.py: it opens --start-in seconds after the
first experiment segment; with --target N it closes once N segments were
damaged or after --duration seconds at most, with --target 0 it lasts
--duration seconds. `stats` says when it opened and closed, and why.
Only TCP payload to or from the experiment's ports is ever touched, and a
port range holding the management port is refused.

The program shares the device's clsact with anything else there (the Mesos
topology's redirect filters on host B's NIC): it sits at a lower preference,
so it runs first and the redirected packets are the damaged ones, and it
hands every packet on to the next filter.
"""

# Longer than ~300 lines: two backends (eBPF, netem) behind the same four actions, with the safety
#   rules both obey (scoped ports, self-expiry, SSH never touched) written once.

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import time
from pathlib import Path

from ..shared import bpf, net
from ..shared.common import STATE, HostError, Parser, atomic_write, sh
from . import window

MAPS = ("bs_cfg", "bs_stats", "bs_events")
# Lower than every other badsum filter (Mesos uses 90 and up): it runs first.
FILTER_PREF = 49
PROGRAM_NAME = "name badsum_corrupt"  # how `tc filter show` names the injector's program (corrupt.bpf.c)
DIRECTIONS = {"to-port": 1, "from-port": 2, "both": 3}
PATTERNS = {"random": 0, "stuck-bit": 1}
CFG = struct.Struct("<QQQQQIIHHBBBBBB6x")  # struct bs_cfg in shared/programs/corrupt.bpf.c
EVENT = struct.Struct("<QIHHHHBBBx")  # struct bs_event
# GRO merges segments before tc ingress and would hand the injector one large
# packet whose re-segmentation recomputes checksums; netem needs one MTU-sized
# packet at a time. The injector turns these off for its window and back after.
INGRESS_OFFLOADS = ("generic-receive-offload", "large-receive-offload")
NETEM_OFFLOADS = ("scatter-gather", "tcp-segmentation-offload", "generic-segmentation-offload")
ETHTOOL_NAMES = {
    "generic-receive-offload": "gro",
    "large-receive-offload": "lro",
    "scatter-gather": "sg",
    "tcp-segmentation-offload": "tso",
    "generic-segmentation-offload": "gso",
}
NETEM_MISSING = (
    "the netem backend needs sch_netem, which this kernel does not have "
    "(`tc qdisc add ... netem` says: {err}). Use the ebpf backend instead (badsum_experiment_backend=ebpf)."
)


def state_path(iface: str):
    return STATE / f"corruption-{iface}.json"


def load_state(iface: str) -> dict:
    try:
        return json.loads(state_path(iface).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def parse_ports(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    try:
        lo_i, hi_i = int(lo), int(hi or lo)
    except ValueError:
        raise HostError(f"bad port range {text!r}: want N or LO-HI") from None
    if not (1 <= lo_i <= hi_i <= 65535):
        raise HostError(f"bad port range {text!r}: want N or LO-HI within 1-65535")
    return lo_i, hi_i


# -- offloads the window needs off ---------------------------------------------------


def offloads_off(iface: str, names: tuple[str, ...]) -> list[str]:
    """Turn the named offloads off where they are on; return which ones were on (to restore)."""
    shown = net.features(iface)
    on = [n for n in names if shown.get(n, {}).get("on") and not shown[n]["fixed"]]
    if on:
        sh("ethtool", "--features", iface, *[w for n in on for w in (ETHTOOL_NAMES[n], "off")])
    return on


def offloads_on(iface: str, names: list[str]) -> None:
    if names and net.link_exists(iface):
        sh("ethtool", "--features", iface, *[w for n in names for w in (ETHTOOL_NAMES[n], "on")], check=False)


# -- ebpf --------------------------------------------------------------------------


def ebpf_arm(a: argparse.Namespace, lo: int, hi: int) -> dict:
    obj = bpf.object_path("corrupt")
    if not obj.exists():
        raise HostError(f"the injector's program {obj} is not built: run the corruption role first (prepare.yml)")
    added_qdisc = net.ensure_clsact(a.iface)
    net.attach_bpf(a.iface, a.hook, FILTER_PREF, str(obj))
    maps = attached_maps(a.iface, a.hook)
    now = time.monotonic_ns()  # CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns()
    expire = now + int((a.start_in + a.duration + a.expire_after) * 1e9)
    cfg = CFG.pack(
        0,
        int(a.start_in * 1e9),
        int(a.duration * 1e9),
        expire,
        0,
        round(a.rate * 10000),
        a.target,
        lo,
        hi,
        DIRECTIONS[a.direction],
        PATTERNS[a.pattern],
        a.stuck_bit,
        a.stuck_value,
        a.stuck_offset,
        1 if a.hook == "ingress" else 0,
    )
    # The maps start zeroed (inert) when tc loads the program; writing the
    # config is the single step that arms it.
    key = ["key", "hex", "00", "00", "00", "00"]
    sh("bpftool", "map", "update", "id", str(maps["bs_cfg"]), *key, "value", "hex", *[f"{b:02x}" for b in cfg])
    return {"added_qdisc": added_qdisc, "expire_ns": expire, "maps": maps}


def attached_maps(iface: str, hook: str) -> dict[str, int]:
    """The maps of the program attached to iface/hook, by name (each attachment has its own)."""
    maps = {k: v for k, v in net.attached_maps(net.filters(iface, hook, FILTER_PREF)).items() if k in MAPS}
    if set(maps) != set(MAPS):
        raise HostError(f"the program on {iface} {hook} has maps {sorted(maps)}, expected {list(MAPS)}")
    return maps


def ebpf_stats(maps: dict[str, int], clock_offset_ns: int) -> dict:
    now = time.monotonic_ns()  # before the counts: a window still open now was open for all of them
    stats = [struct.unpack("<Q", v)[0] for v in net.map_values(maps["bs_stats"])]
    matched, corrupted, changed_bytes, outside = stats[:4]
    events = []
    for v in net.map_values(maps["bs_events"]):
        ns, seq, off, plen, sport, dport, bit, old, new = EVENT.unpack(v[: EVENT.size])
        if ns:
            events.append(
                {
                    "time": (ns + clock_offset_ns) / 1e9,
                    "seq": seq,
                    "payload_off": off,
                    "payload_len": plen,
                    "sport": sport,
                    "dport": dport,
                    "bit": bit,
                    "old": old,
                    "new": new,
                }
            )
    events.sort(key=lambda e: e["time"])
    start, _delay, duration, expire, end, _rate, target = CFG.unpack(net.map_values(maps["bs_cfg"])[0])[:7]

    def epoch(ns: int) -> float:
        return (ns + clock_offset_ns) / 1e9

    closed = window.closed_by(
        epoch(start) if start else None,
        epoch(end) if end else None,
        target,
        duration / 1e9,
        epoch(now),
        now >= expire,
    )
    return {
        "matched_packets": matched,
        "corrupted_packets": corrupted,
        "corrupted_bytes": changed_bytes,
        "outside_window_packets": outside,
        "events": events,
        "counted_by": "ebpf",
        "target": target,
        **closed,
    }


# -- netem -------------------------------------------------------------------------


def netem_probe() -> str | None:
    """None when this kernel has sch_netem; else tc's complaint. Probed in a throw-away namespace."""
    probe = sh("unshare", "--net", "tc", "qdisc", "add", "dev", "lo", "root", "netem", check=False)
    return None if probe.returncode == 0 else (probe.stderr or probe.stdout).strip()


def netem_arm(a: argparse.Namespace, lo: int, hi: int) -> dict:
    err = netem_probe()
    if err is not None:
        raise HostError(NETEM_MISSING.format(err=err))
    if a.hook != "egress":
        raise HostError("netem corrupts on egress only: set the hook to egress (or use the ebpf backend)")
    if a.pattern != "random":
        raise HostError("netem can only flip random bits: use the ebpf backend for stuck-bit")
    netem_mark(a.iface).unlink(missing_ok=True)
    now = time.monotonic_ns()
    expire = now + int((a.start_in + a.duration + a.expire_after) * 1e9)
    # Its own session, detached from this SSH session: the host itself ends
    # the window; disarm ends the session's process group.
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            netem_timer(a, lo, hi, expire / 1e9)
        finally:
            os._exit(0)
    return {"timer_pid": pid, "expire_ns": expire}


def netem_commands(a: argparse.Namespace, lo: int, hi: int) -> tuple[list[list[str]], list[str]]:
    """The qdiscs and filters of netem's window, and the command that removes them all."""
    # A prio root sends everything to band 2, except the experiment's ports,
    # which go through netem in band 3: management traffic is never corrupted.
    setup = [
        ["tc", "qdisc", "add", "dev", a.iface, "root", "handle", "bad5:", "prio", "bands", "3", "priomap", *["1"] * 16],
        ["tc", "qdisc", "add", "dev", a.iface, "parent", "bad5:3", "handle", "bad6:", "netem", "corrupt", f"{a.rate}%"],
    ]
    sides = {"to-port": ["dport"], "from-port": ["sport"], "both": ["dport", "sport"]}[a.direction]
    for port in range(lo, hi + 1):
        for fam, kw in (("ip", "ip"), ("ipv6", "ip6")):
            for side in sides:
                match = ["match", kw, side, str(port), "0xffff", "flowid", "bad5:3"]
                setup.append(
                    [
                        "tc",
                        "filter",
                        "add",
                        "dev",
                        a.iface,
                        "parent",
                        "bad5:",
                        "protocol",
                        fam,
                        "prio",
                        "1",
                        "u32",
                        *match,
                    ]
                )
    return setup, ["tc", "qdisc", "del", "dev", a.iface, "root", "handle", "bad5:"]


def netem_timer(a: argparse.Namespace, lo: int, hi: int, expire: float) -> None:
    """The netem window, in the detached child: window.run() over what leaves the interface.

    tcpdump on the interface sees each experiment segment after netem (egress
    taps come after the qdisc): the first one opens the clock, as in the
    ebpf program, and one whose TCP checksum is wrong is one netem damaged
    (the sender's TX checksum offload is off, so every other checksum is
    right). Without traffic nothing is ever set up. The mark file says when
    the window really opened and closed, why, and what the timer counted.
    """
    setup, teardown = netem_commands(a, lo, hi)
    ports = {"to-port": "dst portrange", "from-port": "src portrange", "both": "portrange"}[a.direction]
    left = max(1, int(expire - time.monotonic()) + 1)
    dump = subprocess.Popen(
        [
            "timeout",
            str(left),
            "tcpdump",
            "-i",
            a.iface,
            "-Q",
            "out",
            "-l",
            "-n",
            "-vv",
            "--immediate-mode",
            f"tcp and {ports} {lo}-{hi}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert dump.stdout is not None
    fd = dump.stdout.fileno()  # read raw: a buffered reader would keep lines select() cannot see
    offset = time.time() - time.monotonic()
    mark = netem_mark(a.iface)
    pending = b""

    def events(timeout: float) -> list[window.Event]:
        nonlocal pending
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return []
        data = os.read(fd, 65536)
        if not data:  # tcpdump ended (its own bound): only time passes now
            time.sleep(timeout)
            return []
        now = time.monotonic()
        *lines, pending = (pending + data).split(b"\n")
        found: list[window.Event] = []
        for line in lines:
            if b"cksum 0x" in line:  # one TCP segment (IPv4's header line has none: its TCP line follows)
                found += [(now, "segment")] + ([(now, "damaged")] if b"incorrect" in line else [])
        return found

    def record(w: window.Window) -> None:
        atomic_write(
            mark,
            json.dumps(
                {
                    "window_start": w.opens + offset if w.opens is not None else None,
                    "window_end": w.closed + offset if w.closed is not None else None,
                    "window_closed_by": w.closed_by,
                    "timer_damaged": w.damaged,
                    "target": a.target,
                }
            ),
        )

    w = window.Window(a.start_in, a.duration, a.target, expire)

    def open_() -> None:
        for cmd in setup:
            sh(*cmd)
        record(w)

    try:
        window.run(w, events, time.monotonic, open_, lambda: sh(*teardown, check=False))
        record(w)
    finally:
        dump.terminate()
        dump.wait(timeout=5)


def netem_mark(iface: str) -> Path:
    return STATE / f"corruption-{iface}.netem.json"


def netem_window(iface: str, expired: bool) -> dict:
    """When the timer opened and closed netem's window (epoch seconds), why, and what it counted."""
    marks = {"window_start": None, "window_end": None, "window_closed_by": None}
    with contextlib.suppress(OSError, ValueError):
        marks.update(json.loads(netem_mark(iface).read_text()))
    if marks["window_closed_by"] is None:  # never opened, or still open: the injector goes now
        opened = marks["window_start"] is not None
        marks["window_closed_by"] = window.NO_TRAFFIC if expired and not opened else window.REMOVED
        marks["window_end"] = time.time() if opened else None
    return marks


def netem_left(iface: str) -> bool:
    return net.link_exists(iface) and "bad5:" in sh("tc", "qdisc", "show", "dev", iface).stdout


# -- actions -----------------------------------------------------------------------


def arm(a: argparse.Namespace) -> dict:
    net.require_link(a.iface, "the corruption interface")
    if not 0 <= a.rate <= 100:
        raise HostError(f"rate {a.rate} is outside 0-100 (percent)")
    if a.start_in < 0 or a.duration <= 0 or a.target < 0:
        raise HostError(
            f"the window needs start-in >= 0, duration > 0 and target >= 0 (got {a.start_in}, {a.duration}, {a.target})"
        )
    lo, hi = parse_ports(a.ports)
    if lo <= a.protect_port <= hi:
        raise HostError(f"port range {a.ports} includes the management port {a.protect_port}: refusing")
    if a.backend == "ebpf" and not shutil.which("bpftool"):
        raise HostError("bpftool is not installed on this host (Debian package: bpftool)")
    disarm(a)  # whatever an earlier run left here goes first
    offloads = offloads_off(a.iface, INGRESS_OFFLOADS if a.hook == "ingress" else ())
    if a.backend == "netem":
        offloads += offloads_off(a.iface, NETEM_OFFLOADS)
    try:
        armed = ebpf_arm(a, lo, hi) if a.backend == "ebpf" else netem_arm(a, lo, hi)
    except HostError:
        offloads_on(a.iface, offloads)
        raise
    offset = time.time_ns() - time.monotonic_ns()
    state = {
        "backend": a.backend,
        "iface": a.iface,
        "hook": a.hook,
        "ports": [lo, hi],
        "direction": a.direction,
        "rate": a.rate,
        "target": a.target,
        "duration": a.duration,
        "pattern": a.pattern,
        "stuck": {"bit": a.stuck_bit, "value": a.stuck_value, "offset": a.stuck_offset},
        # The window opens with the traffic and closes on evidence or time: known once it has (stats).
        "window_start": None,
        "window_end": None,
        "window_closed_by": None,
        "expires": (armed["expire_ns"] + offset) / 1e9,
        "clock_offset_ns": offset,
        "offloads_turned_off": offloads,
        **armed,
    }
    atomic_write(state_path(a.iface), json.dumps(state))
    return {"changed": True, **state}


def stats(a: argparse.Namespace) -> dict:
    state = load_state(a.iface)
    if not state:
        raise HostError(f"no corruption was armed on {a.iface} here")
    if state["backend"] == "ebpf":
        state["stats"] = ebpf_stats(state["maps"], state["clock_offset_ns"])
        state.update({k: v for k, v in state["stats"].items() if k.startswith("window_")})
    else:
        # netem keeps no count: the experiment counts bad checksums in a capture.
        marks = netem_window(a.iface, time.time() >= state["expires"])
        state["stats"] = {"corrupted_packets": None, "counted_by": "capture", **marks}
        state.update({k: v for k, v in marks.items() if k.startswith("window_")})
    state["expired"] = time.time() >= (state["window_end"] or state["expires"])
    return state


def collect(a: argparse.Namespace) -> dict:
    result = stats(a)
    disarm(a)
    return {**result, "changed": True, "disarmed": True}


def disarm(a: argparse.Namespace) -> dict:
    state = load_state(a.iface)
    changed = False
    if net.link_exists(a.iface):
        for hook in ("ingress", "egress"):
            # Only badsum's own program at that preference: a filter someone else put there stays.
            if PROGRAM_NAME in net.filters(a.iface, hook, FILTER_PREF):
                changed |= net.delete_filter(a.iface, hook, FILTER_PREF)
        if state.get("added_qdisc"):
            net.release_clsact(a.iface)
        if state.get("backend") == "netem" or netem_left(a.iface):
            if state.get("timer_pid"):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(state["timer_pid"], signal.SIGTERM)
            sh("tc", "qdisc", "del", "dev", a.iface, "root", "handle", "bad5:", check=False)
            netem_mark(a.iface).unlink(missing_ok=True)
            changed = True
        offloads_on(a.iface, state.get("offloads_turned_off", []))
    changed |= bool(state)
    state_path(a.iface).unlink(missing_ok=True)
    return {"changed": changed, "disarmed": a.iface, "was_armed": bool(state)}


def build_parser() -> Parser:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    a = sub.add_parser("arm", help="arm the injector for one window")
    a.add_argument("--backend", choices=["ebpf", "netem"], required=True)
    a.add_argument("--hook", choices=["egress", "ingress"], required=True)
    a.add_argument("--ports", required=True, help="N or LO-HI: the experiment's TCP ports")
    a.add_argument("--direction", choices=sorted(DIRECTIONS), required=True)
    a.add_argument("--rate", type=float, required=True, help="percent of matching segments damaged")
    a.add_argument("--pattern", choices=sorted(PATTERNS), required=True)
    a.add_argument("--stuck-bit", type=int, choices=range(8), required=True)
    a.add_argument("--stuck-value", type=int, choices=(0, 1), required=True)
    a.add_argument("--stuck-offset", type=int, choices=range(32), required=True)
    a.add_argument(
        "--start-in",
        type=float,
        required=True,
        help="seconds from the first experiment segment to the window",
    )
    a.add_argument(
        "--duration", type=float, required=True, help="seconds a fixed window lasts; the longest an evidence one does"
    )
    a.add_argument(
        "--target",
        type=int,
        required=True,
        help="damaged segments that close the window (evidence); 0: a fixed window of --duration",
    )
    a.add_argument(
        "--expire-after",
        type=float,
        required=True,
        help="inert this long after start-in + duration from now, even if no traffic came",
    )
    a.add_argument("--protect-port", type=int, required=True, help="the management (SSH) port")
    for name in ("stats", "collect", "disarm"):
        sub.add_parser(name, help=f"{name} the injector")
    for action in sub.choices.values():
        action.add_argument("--iface", required=True)
    return p


def run(args: argparse.Namespace) -> dict:
    return {"arm": arm, "stats": stats, "collect": collect, "disarm": disarm}[args.action](args)
