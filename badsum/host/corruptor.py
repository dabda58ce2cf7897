"""Arm, read and disarm badsum's corruption injector on this host.

    corruptor arm     --backend ebpf|netem --iface IF --hook egress|ingress --ports LO-HI ...
    corruptor stats   --iface IF      what the injector did (ebpf: exact counts and events)
    corruptor collect --iface IF      stats, then disarm: the end of a window in one call
    corruptor disarm  --iface IF      remove the filter (and with it the program's maps)

The corruption window is enforced on this host (by the kernel for ebpf, by a
detached timer process for netem), never by the controller staying alive.
Only TCP payload to or from the experiment's ports is ever touched, and a
port range holding the management port is refused.

The program shares the device's clsact with anything else there (the Mesos
topology's redirect filters on host B's NIC): it sits at a lower preference,
so it runs first and the redirected packets are the damaged ones, and it
hands every packet on to the next filter.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import struct
import subprocess
import time
from pathlib import Path

from . import bpf, net
from .common import STATE, HostError, Parser, atomic_write, sh

MAPS = ("bs_cfg", "bs_stats", "bs_events")
# Lower than every other badsum filter (Mesos uses 90 and up): it runs first.
FILTER_PREF = 49
DIRECTIONS = {"to-port": 1, "from-port": 2, "both": 3}
PATTERNS = {"random": 0, "stuck-bit": 1}
CFG = struct.Struct("<QQQQIHHBBBBBB2x")  # struct bs_cfg in bpf/corrupt.bpf.c
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
        round(a.rate * 10000),
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
    start, _delay, duration, _expire = CFG.unpack(net.map_values(maps["bs_cfg"])[0])[:4]
    window = (
        {"window_start": (start + clock_offset_ns) / 1e9, "window_end": (start + duration + clock_offset_ns) / 1e9}
        if start
        else {}
    )
    return {
        "matched_packets": matched,
        "corrupted_packets": corrupted,
        "corrupted_bytes": changed_bytes,
        "outside_window_packets": outside,
        "events": events,
        "counted_by": "ebpf",
        **window,
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
    # A prio root sends everything to band 2, except the experiment's ports,
    # which go through netem in band 3: management traffic is never corrupted.
    setup = [
        f"tc qdisc add dev {a.iface} root handle bad5: prio bands 3 priomap {' '.join(['1'] * 16)}",
        f"tc qdisc add dev {a.iface} parent bad5:3 handle bad6: netem corrupt {a.rate}%",
    ]
    sides = {"to-port": ["dport"], "from-port": ["sport"], "both": ["dport", "sport"]}[a.direction]
    for port in range(lo, hi + 1):
        for fam, kw in (("ip", "ip"), ("ipv6", "ip6")):
            for side in sides:
                setup.append(
                    f"tc filter add dev {a.iface} parent bad5: protocol {fam} prio 1 u32 "
                    f"match {kw} {side} {port} 0xffff flowid bad5:3"
                )
    teardown = f"tc qdisc del dev {a.iface} root handle bad5:"
    # The window opens start-in seconds after the first experiment segment
    # leaves the interface, as the ebpf program's does: a window timed from
    # the arming would end before a slow topology (a container to start, a
    # guest under emulation) sends anything. The wait for it is bounded by
    # expire-after; without traffic nothing is ever set up. The marks say
    # when the window really opened and closed.
    first = {"to-port": "dst portrange", "from-port": "src portrange", "both": "portrange"}[a.direction]
    marks = {k: netem_mark(a.iface, k) for k in ("start", "end")}
    for mark in marks.values():
        mark.unlink(missing_ok=True)
    script = "; ".join(
        [
            f"timeout {a.expire_after:g} tcpdump -i {a.iface} -n -q -c 1 'tcp and {first} {lo}-{hi}' "
            ">/dev/null 2>&1 || exit 0",
            f"sleep {a.start_in:g}",
            *setup,
            f"date +%s.%N > {marks['start']}",
            f"sleep {a.duration:g}",
            teardown,
            f"date +%s.%N > {marks['end']}",
        ]
    )
    # Its own session and process group (sh leads it), detached from this SSH
    # session: the host itself ends the window; disarm ends the group.
    proc = subprocess.Popen(
        ["sh", "-c", script],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    now = time.monotonic_ns()
    return {"timer_pid": proc.pid, "expire_ns": now + int((a.expire_after + a.start_in + a.duration) * 1e9)}


def netem_mark(iface: str, which: str) -> Path:
    return STATE / f"corruption-{iface}.netem-{which}"


def netem_window(iface: str) -> dict:
    """When the timer really opened and closed netem's window (epoch seconds), as far as it got."""
    window = {}
    for key in ("start", "end"):
        with contextlib.suppress(OSError, ValueError):
            window[f"window_{key}"] = float(netem_mark(iface, key).read_text())
    return window


def netem_left(iface: str) -> bool:
    return net.link_exists(iface) and "bad5:" in sh("tc", "qdisc", "show", "dev", iface).stdout


# -- actions -----------------------------------------------------------------------


def arm(a: argparse.Namespace) -> dict:
    net.require_link(a.iface, "the corruption interface")
    if not 0 <= a.rate <= 100:
        raise HostError(f"rate {a.rate} is outside 0-100 (percent)")
    if a.start_in < 0 or a.duration <= 0:
        raise HostError(f"the window needs start-in >= 0 and duration > 0 (got {a.start_in}, {a.duration})")
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
        "pattern": a.pattern,
        "stuck": {"bit": a.stuck_bit, "value": a.stuck_value, "offset": a.stuck_offset},
        # The window opens with the traffic: known once it has (stats).
        "window_start": (armed["start_ns"] + offset) / 1e9 if "start_ns" in armed else None,
        "window_end": (armed["end_ns"] + offset) / 1e9 if "end_ns" in armed else None,
        "expires": (armed.get("expire_ns", armed.get("end_ns", 0)) + offset) / 1e9,
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
        state["stats"] = {"corrupted_packets": None, "counted_by": "capture"}
        state.update(netem_window(a.iface))
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
            changed |= net.delete_filter(a.iface, hook, FILTER_PREF)
        if state.get("added_qdisc"):
            net.release_clsact(a.iface)
        if state.get("backend") == "netem" or netem_left(a.iface):
            if state.get("timer_pid"):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(state["timer_pid"], signal.SIGTERM)
            sh("tc", "qdisc", "del", "dev", a.iface, "root", "handle", "bad5:", check=False)
            for which in ("start", "end"):
                netem_mark(a.iface, which).unlink(missing_ok=True)
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
    a.add_argument("--duration", type=float, required=True, help="seconds the window lasts")
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
