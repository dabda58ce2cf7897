#!/usr/bin/env python3
"""Arm, read and disarm badsum's corruption injector on this host.

Standard library only: it runs on the lab's switch or on a real host, wherever
the corruption role places it. Every action prints one JSON object.

    arm     --backend ebpf|netem --iface IF --hook egress|ingress --ports LO-HI
            --direction to-port|from-port|both --rate PCT --pattern random|stuck-bit
            --start-in S --duration S [--obj FILE]
    stats   --iface IF         what the injector did (ebpf: exact counts and events)
    disarm  --iface IF         remove the filter (and with it the program's maps) and qdiscs we added

The corruption window is enforced on this host (by the kernel for ebpf, by a
detached timer process for netem), never by the controller staying alive.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

try:
    from badsum import hostnet as hn
except ImportError:  # inside the host kit
    import hostnet as hn  # type: ignore[no-redef]

MAPS = ("bs_cfg", "bs_stats", "bs_events")
STATE_DIR = Path("/run/badsum")
FILTER_PREF = "49"
DIRECTIONS = {"to-port": 1, "from-port": 2, "both": 3}
PATTERNS = {"random": 0, "stuck-bit": 1}
CFG = struct.Struct("<QQQQIHHBBBBBB2x")  # struct bs_cfg
EVENT = struct.Struct("<QIHHHHBBBx")
NETEM_MISSING = (
    "the netem backend needs sch_netem, which this kernel does not have "
    "(`tc qdisc add ... netem` says: {err}). Use the ebpf backend instead "
    "(badsum_corruption_backend: ebpf)."
)


class Fail(hn.HostError):
    """A refusal of this tool's own (bad input, missing backend): reported like any host error."""


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
    if check and proc.returncode != 0:
        raise Fail(f"`{' '.join(cmd)}` failed: {(proc.stderr or proc.stdout).strip()}")
    return proc


def state_path(iface: str) -> Path:
    return STATE_DIR / f"corruption-{iface}.json"


def load_state(iface: str) -> dict:
    try:
        return json.loads(state_path(iface).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def iface_exists(iface: str) -> bool:
    return sh("ip", "link", "show", "dev", iface, check=False).returncode == 0


def parse_ports(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    lo_i, hi_i = int(lo), int(hi or lo)
    if not (1 <= lo_i <= hi_i <= 65535):
        raise Fail(f"bad port range {text!r}: want N or LO-HI within 1-65535")
    return lo_i, hi_i


# -- ebpf ------------------------------------------------------------------------


def ebpf_arm(a: argparse.Namespace, lo: int, hi: int) -> dict:
    if not Path(a.obj).exists():
        raise Fail(f"BPF object {a.obj} not found: the corruption role compiles it first")
    added_qdisc = "clsact" not in sh("tc", "qdisc", "show", "dev", a.iface).stdout
    if added_qdisc:
        sh("tc", "qdisc", "add", "dev", a.iface, "clsact")
    sh(
        "tc",
        "filter",
        "replace",
        "dev",
        a.iface,
        a.hook,
        "pref",
        FILTER_PREF,
        "handle",
        "1",
        "bpf",
        "da",
        "obj",
        a.obj,
        "sec",
        "tc",
    )
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
    value = ["value", "hex", *[f"{b:02x}" for b in cfg]]
    sh("bpftool", "map", "update", "id", str(maps["bs_cfg"]), *key, *value)
    return {"added_qdisc": added_qdisc, "expire_ns": expire, "maps": maps}


def attached_maps(iface: str, hook: str) -> dict[str, int]:
    """The maps of the program attached to iface/hook, by name (each attachment has its own)."""
    shown = sh("tc", "filter", "show", "dev", iface, hook, "pref", FILTER_PREF).stdout
    maps = {name: i for name, i in hn.attached_maps(shown).items() if name in MAPS}
    if set(maps) != set(MAPS):
        raise Fail(f"the program on {iface} has maps {sorted(maps)}, expected {list(MAPS)}")
    return maps


def ebpf_disarm(iface: str, hook: str, added_qdisc: bool) -> None:
    """Detaching the program frees it and its maps: nothing else to remove."""
    if iface_exists(iface):
        sh("tc", "filter", "del", "dev", iface, hook, "pref", FILTER_PREF, check=False)
        if added_qdisc:
            sh("tc", "qdisc", "del", "dev", iface, "clsact", check=False)


def ebpf_stats(maps: dict[str, int]) -> dict:
    stats = [struct.unpack("<Q", v)[0] for v in hn.map_values(maps["bs_stats"])]
    matched, corrupted, changed_bytes, outside = stats[:4]
    events = []
    for v in hn.map_values(maps["bs_events"]):
        ns, seq, off, plen, sport, dport, bit, old, new = EVENT.unpack(v[: EVENT.size])
        if ns:
            events.append(
                {
                    "ns": ns,
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
    events.sort(key=lambda e: e["ns"])
    return {
        "matched_packets": matched,
        "corrupted_packets": corrupted,
        "corrupted_bytes": changed_bytes,
        "outside_window_packets": outside,
        "events": events,
        "counted_by": "ebpf",
    }


# -- netem -----------------------------------------------------------------------


def netem_available(iface: str) -> str | None:
    probe = sh("tc", "qdisc", "add", "dev", iface, "root", "handle", "bad5:", "netem", check=False)
    if probe.returncode == 0:
        sh("tc", "qdisc", "del", "dev", iface, "root", "handle", "bad5:", check=False)
        return None
    return (probe.stderr or probe.stdout).strip()


def netem_arm(a: argparse.Namespace, lo: int, hi: int) -> dict:
    err = netem_available(a.iface)
    if err is not None:
        raise Fail(NETEM_MISSING.format(err=err))
    if a.hook != "egress":
        raise Fail("netem corrupts on egress only: set the hook to egress")
    if a.pattern != "random":
        raise Fail("netem can only flip random bits: use the ebpf backend for stuck-bit")
    # A prio root sends everything to band 2, except the experiment's ports,
    # which go through netem in band 3: management traffic is never corrupted.
    setup = [
        f"tc qdisc add dev {a.iface} root handle bad5: prio bands 3 priomap {' '.join(['1'] * 16)}",
        f"tc qdisc add dev {a.iface} parent bad5:3 handle bad6: netem corrupt {a.rate}%",
    ]
    for lo_port in range(lo, hi + 1):
        for fam, kw in (("ip", "ip"), ("ipv6", "ip6")):
            for side in {"to-port": ["dport"], "from-port": ["sport"], "both": ["dport", "sport"]}[
                a.direction
            ]:
                setup.append(
                    f"tc filter add dev {a.iface} parent bad5: protocol {fam} prio 1 u32 "
                    f"match {kw} {side} {lo_port} 0xffff flowid bad5:3"
                )
    teardown = f"tc qdisc del dev {a.iface} root handle bad5:"
    script = f"sleep {a.start_in}; {'; '.join(setup)}; sleep {a.duration}; {teardown}"
    # Detached from this SSH session: the host itself ends the window.
    proc = subprocess.Popen(
        ["setsid", "sh", "-c", script],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    now = time.monotonic_ns()
    return {
        "timer_pid": proc.pid,
        "start_ns": now + int(a.start_in * 1e9),
        "end_ns": now + int((a.start_in + a.duration) * 1e9),
    }


def netem_disarm(iface: str, timer_pid: int | None) -> None:
    if timer_pid:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(timer_pid, 15)
    if iface_exists(iface):
        sh("tc", "qdisc", "del", "dev", iface, "root", "handle", "bad5:", check=False)


# -- commands ----------------------------------------------------------------------


def cmd_arm(a: argparse.Namespace) -> dict:
    if not iface_exists(a.iface):
        raise Fail(f"interface {a.iface} does not exist on this host: check badsum_corruption_iface")
    if not 0 <= a.rate <= 100:
        raise Fail(f"rate {a.rate} is outside 0-100 (percent)")
    lo, hi = parse_ports(a.ports)
    if lo <= a.protect_port <= hi:
        raise Fail(f"port range {a.ports} includes the management port {a.protect_port}: refusing")
    if a.backend == "ebpf" and not shutil.which("bpftool"):
        raise Fail("bpftool is not installed on this host (Debian package: bpftool)")
    cmd_disarm(a)  # whatever an earlier run left here goes first
    armed = ebpf_arm(a, lo, hi) if a.backend == "ebpf" else netem_arm(a, lo, hi)
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
        # ebpf: the window opens with the traffic, known once it has (stats);
        # netem: it is timed from now by the host.
        "window_start": (armed["start_ns"] + offset) / 1e9 if "start_ns" in armed else None,
        "window_end": (armed["end_ns"] + offset) / 1e9 if "end_ns" in armed else None,
        "expires": (armed.get("expire_ns", armed.get("end_ns", 0)) + offset) / 1e9,
        "clock_offset_ns": offset,
        **armed,
    }
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    state_path(a.iface).write_text(json.dumps(state))
    return state


def cmd_stats(a: argparse.Namespace) -> dict:
    state = load_state(a.iface)
    if not state:
        raise Fail(f"no corruption was armed on {a.iface} here")
    if state["backend"] == "ebpf":
        if not state.get("maps"):
            raise Fail(f"no ebpf corruptor was armed on {a.iface} here")
        stats = ebpf_stats(state["maps"])
        for ev in stats["events"]:
            ev["time"] = (ev.pop("ns") + state["clock_offset_ns"]) / 1e9
        start, _delay, duration, _expire = CFG.unpack(hn.map_values(state["maps"]["bs_cfg"])[0])[:4]
        if start:
            state["window_start"] = (start + state["clock_offset_ns"]) / 1e9
            state["window_end"] = (start + duration + state["clock_offset_ns"]) / 1e9
        state["stats"] = stats
    else:
        # netem keeps no count: the traffic role counts bad checksums in a capture.
        state["stats"] = {"corrupted_packets": None, "counted_by": "capture"}
    state["expired"] = time.time() >= (state["window_end"] or state["expires"])
    if a.disarm:
        cmd_disarm(a)
        state["disarmed"] = True
    return state


def cmd_disarm(a: argparse.Namespace) -> dict:
    state = load_state(a.iface)
    ebpf_disarm(a.iface, state.get("hook", a.hook or "egress"), state.get("added_qdisc", False))
    if state.get("backend") == "netem" or netem_left(a.iface):
        netem_disarm(a.iface, state.get("timer_pid"))
    state_path(a.iface).unlink(missing_ok=True)
    return {"disarmed": a.iface, "was_armed": bool(state)}


def netem_left(iface: str) -> bool:
    return iface_exists(iface) and "bad5:" in sh("tc", "qdisc", "show", "dev", iface).stdout


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["arm", "stats", "disarm"])
    p.add_argument("--iface", required=True)
    p.add_argument("--backend", choices=["ebpf", "netem"], default="ebpf")
    p.add_argument("--hook", choices=["egress", "ingress"], default="egress")
    p.add_argument("--ports", default="5001")
    p.add_argument("--direction", choices=sorted(DIRECTIONS), default="to-port")
    p.add_argument("--rate", type=float, default=10.0)
    p.add_argument("--pattern", choices=sorted(PATTERNS), default="random")
    p.add_argument("--stuck-bit", type=int, choices=range(8), default=2)
    p.add_argument("--stuck-value", type=int, choices=(0, 1), default=1)
    p.add_argument("--stuck-offset", type=int, choices=range(32), default=13)
    p.add_argument(
        "--start-in",
        type=float,
        default=1.0,
        help="ebpf: seconds from the first experiment segment to the window; netem: from now",
    )
    p.add_argument("--duration", type=float, default=3.0, help="seconds the window lasts")
    p.add_argument(
        "--expire-after",
        type=float,
        default=120.0,
        help="ebpf: inert this long after start-in + duration from now, even if no traffic came",
    )
    p.add_argument("--protect-port", type=int, default=22)
    p.add_argument("--disarm", action="store_true", help="stats: remove the injector after reading it")
    p.add_argument("--obj", default="/var/lib/badsum/badsum_corrupt.bpf.o")
    return p


def main() -> int:
    args = build_parser().parse_args()
    return hn.report(
        "corruptor", lambda: {"arm": cmd_arm, "stats": cmd_stats, "disarm": cmd_disarm}[args.action](args)
    )


if __name__ == "__main__":
    sys.exit(main())
