"""What a student may ask of their own lab - the `lab` command's actions - done for them by the service.

A student is not root anywhere (root on an emulated host would be root on
this machine), so every privileged step goes through here: each action
checks its arguments against a fixed list, acts on that student's lab alone
(through the kit's own playbooks and host-kit calls, with the lab's
inventory), and answers with text for the terminal and data for the checks.
Every action is written to the student's activity log, which the dashboard
and the checks read.
"""

# Longer than ~300 lines: every action a student may ask for, each a short function behind one
#   allow-list; that list is the seat's security boundary and is read in one place.

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import yaml

from badsum import ansible, paths, specs, topologies
from badsum.analysis import results, signature
from badsum.workshop import runs
from badsum.workshop.room import Room, Seat

# The other playbooks (containers, the fleet's) side by side on 2 cores: more would only slow each one down.
# Runs (`lab run`) go to the room's batches instead (badsum.workshop.runs).
PLAYBOOKS_AT_ONCE = threading.BoundedSemaphore(int(os.environ.get("BADSUM_WORKSHOP_PLAYBOOKS_AT_ONCE", "4")))
FLEET = ("audit", "remediate", "remediate-check", "rollback")
_room_runs: runs.Runs | None = None
_room_runs_lock = threading.Lock()


def room_runs() -> runs.Runs:
    """The room's one queue of runs (made on first use: the service's)."""
    global _room_runs
    with _room_runs_lock:
        if _room_runs is None:
            _room_runs = runs.Runs()
        return _room_runs


class Refused(ValueError):
    """A request the service will not carry out, with the reason for the student."""


def _playbook(seat: Seat, playbook: str, extra: dict, *options: str, timeout: int = 600) -> subprocess.CompletedProcess:
    with PLAYBOOKS_AT_ONCE:
        return ansible.playbook(playbook, seat.inventory, extra, options=options, timeout=timeout)


def _kit(seat: Seat, host: str, tool: str, action: str, args: dict) -> dict:
    """One host-kit call on one host of the student's lab (ansible's ad-hoc mode, the badsum.kit.run module)."""
    try:
        result = ansible.module(seat.inventory, host, "badsum.kit.run", {"tool": tool, "action": action, "args": args})
    except ansible.ModuleError as exc:
        raise Refused(f"the lab did not answer ({exc})") from None
    if result.get("failed") or result.get("unreachable"):
        raise Refused(result.get("msg", "failed"))
    return result


def _standing_file(seat: Seat) -> Path:
    return seat.dir / "standing.json"


def standing(seat: Seat) -> dict | None:
    path = _standing_file(seat)
    return json.loads(path.read_text()) if path.exists() else None


def _choice(value, allowed, what: str) -> str:
    if value not in allowed:
        raise Refused(f"{what} {value!r}: choose one of {', '.join(allowed)}")
    return value


def _run_id(seat: Seat, topology: str, condition: str) -> str:
    """The run's id, its directory made now: two runs asked for at the same moment never share one."""
    seat.results.mkdir(parents=True, exist_ok=True)
    n = sum(1 for _ in seat.results.glob("r*"))
    while True:
        n += 1
        run_id = f"r{n:03d}-{topology}-{condition}"
        try:
            (seat.results / run_id).mkdir()
        except FileExistsError:
            continue
        return run_id


def run(seat: Seat, args: dict) -> dict:
    """One cell on the student's lab, in the room's next batch (badsum.workshop.runs)."""
    topology = _choice(args.get("topology"), topologies.names(), "topology")
    condition = _choice(args.get("condition"), specs.choices("badsum_experiment_conditions"), "condition")
    extra: dict = {
        "badsum_experiment_topologies": [topology],
        "badsum_experiment_conditions": [condition],
        "badsum_experiment_results_dir": str(seat.results),
        "badsum_experiment_capture": bool(args.get("capture")),
    }
    if args.get("preset"):
        _choice(args["preset"], ("article",), "preset")
        extra.update(yaml.safe_load((paths.PRESETS / "article.yml").read_text()))
    if args.get("pattern"):
        patterns = specs.choices("badsum_experiment_pattern")
        extra["badsum_experiment_pattern"] = _choice(args["pattern"], patterns, "pattern")
    if args.get("conntrack_checksum") is not None:
        knob = tuple(v for v in specs.choices("badsum_experiment_conntrack_checksum") if v)  # "" is "leave it"
        extra["badsum_experiment_conntrack_checksum"] = _choice(
            str(args["conntrack_checksum"]), knob, "conntrack checksum"
        )
    run_id = extra["badsum_experiment_run_id"] = _run_id(seat, topology, condition)
    run_dir = seat.results / run_id
    try:
        room_runs().run(seat, extra)
    except runs.RunRefused as exc:
        with contextlib.suppress(OSError):
            run_dir.rmdir()  # refused before it began: no run to show
        raise Refused(str(exc)) from None
    finally:
        was = standing(seat)
        if was and was["topology"] == topology:
            _standing_file(seat).unlink()  # the cell used it, and its teardown took it down
    cells, _problems = results.load_run(run_dir)
    if not cells:
        raise Refused("the run ended without a result")
    cell = cells[0]
    return {"text": _describe(cell, run_id), "data": {"run": run_id, "cell": _brief(cell)}}


def _brief(cell: dict) -> dict:
    keys = (
        "topology",
        "condition",
        "condition_kind",
        "verdict",
        "verdict_reason",
        "corrupted_packets",
        "csum_errors",
        "conntrack_invalid",
        "messages",
        "emulator",
        "held_messages",
        "pattern",
        "overlay",
        "connect_s",
    )
    return {k: cell.get(k) for k in keys} | {"offsets_mod32": sorted(signature.bit_offsets_mod32(cell))}


def _describe(cell: dict, run: str) -> str:
    m = cell.get("messages") or {}
    lines = [
        f"run {run}: {cell['topology']} / {cell['condition']} ({cell.get('condition_kind', '')} kernel condition)",
        f"verdict: {cell['verdict']} - {cell.get('verdict_reason', '')}",
        f"packets the switch corrupted: {cell.get('corrupted_packets')}",
        f"messages: sent {m.get('sent')}, intact {m.get('intact')}, corrupt {m.get('corrupt')}, "
        f"missing {m.get('missing')}",
    ]
    for where, counters in (cell.get("csum_errors") or {}).items():
        lines.append(
            f"checksum errors counted ({where}): " + ", ".join(f"{k}={v}" for k, v in counters.items() if v)
            or f"checksum errors counted ({where}): none"
        )
    held = cell.get("held_messages") or {}
    if held.get("count"):
        lines.append(f"messages held back until the window closed: {held['count']}")
    overlay = cell.get("overlay")
    if overlay:  # the 2020 row (vxlan-nat): what host B's capture saw of the outer UDP header
        lines.append(f"connection opened in: {cell.get('connect_s')} s")
        lines.append(
            f"outer packets from host A at host B: {overlay.get('outer_packets')}, bad udp cksum "
            f"{overlay.get('bad_outer')} (values written: {overlay.get('written')}), no cksum "
            f"{overlay.get('no_cksum_outer')}; outer flows host A's NAT rewrote: {overlay.get('natted_flows')}"
        )
        lines += [f"  {line}" for line in overlay.get("samples", [])[:3]]
        counts = (cell.get("emulator") or {}).get("counts")
        if counts:
            lines.append("emulator on host A's NIC: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    return "\n".join(lines)


def results_(seat: Seat, args: dict) -> dict:
    runs = sorted(p for p in seat.results.glob("r*") if p.is_dir()) if seat.results.is_dir() else []
    if args.get("run"):
        run_dir = seat.results / _choice(args["run"], [p.name for p in runs], "run")
        cells, _ = results.load_run(run_dir)
        cell = cells[0] if cells else {}
        text = _describe(cell, run_dir.name) if cell else f"run {run_dir.name}: no result"
        offsets = signature.bit_offsets_mod32(cell)
        if offsets:
            shown = ", ".join(f"{o}: {n}" for o, n in sorted(offsets.items()))
            text += f"\ndamaged bits by stream offset mod 32 (offset: bits): {shown}"
        return {"text": text, "data": {"run": run_dir.name, "cell": _brief(cell) if cell else {}}}
    rows = []
    for run_dir in runs:
        cells, _ = results.load_run(run_dir)
        rows += [f"{run_dir.name:32} {c['verdict']:18} {c.get('condition_kind', '')}" for c in cells]
    return {
        "text": "\n".join(rows) or "no runs yet: try `lab run bare patched`",
        "data": {"runs": [p.name for p in runs]},
    }


def counters(seat: Seat, args: dict) -> dict:
    namespaces = ["host=self"]
    was = standing(seat)
    if was:
        namespaces += [f"container={v['netns']}" for v in was["container_veths"][:1]]
    result = _kit(seat, "host2", "counters", "read", {"ns": namespaces})
    lines = [
        f"{label}: " + ", ".join(f"{k}={v}" for k, v in sorted(values.items()))
        for label, values in result["counters"].items()
    ]
    return {"text": "\n".join(lines), "data": result["counters"]}


def _container_playbook(seat: Seat, topology: str, state: str) -> dict:
    out = seat.dir / "container.json"
    out.unlink(missing_ok=True)
    extra = {"workshop_topology": topology, "workshop_state": state, "workshop_result_file": str(out)}
    proc = _playbook(seat, "playbooks/workshop_container.yml", extra)
    if proc.returncode != 0 or not out.exists():
        raise Refused(f"the container did not go {state}:\n" + "\n".join(proc.stdout.splitlines()[-10:]))
    return json.loads(out.read_text())


def container(seat: Seat, args: dict) -> dict:
    state = _choice(args.get("state"), ("up", "down"), "state")
    was = standing(seat)
    if state == "up":
        topology = _choice(args.get("topology"), topologies.with_containers(), "topology")
        if was and was["topology"] != topology:
            raise Refused(f"a {was['topology']} container stands already: `lab container {was['topology']} down`")
        result = _container_playbook(seat, topology, "up")
        _standing_file(seat).write_text(json.dumps({"topology": topology, **result}))
        return {"text": f"a {topology} container stands on host B: {result['path']}", "data": result}
    if not was:
        return {"text": "no container stands", "data": {}}
    _container_playbook(seat, was["topology"], "down")
    _standing_file(seat).unlink()
    return {"text": f"the {was['topology']} container is down", "data": {}}


def ethtool(seat: Seat, args: dict) -> dict:
    was = standing(seat)
    if not was:
        raise Refused("no container stands: `lab container mesos up` first")
    veth = was["container_veths"][0]
    spec = f"{veth['netns']}:{veth['ifname']}"
    if args.get("rx"):
        rx = _choice(args["rx"], ("on", "off"), "rx")
        _kit(seat, "host2", "offload", "set", {"veth": [spec], "rx": rx})
    shown = _kit(seat, "host2", "offload", "show", {"veth": [spec]})["veths"][0]
    return {
        "text": f"{shown['ifname']} (inside the {was['topology']} container): rx-checksumming {shown['rx']}",
        "data": shown,
    }


def pcap(seat: Seat, args: dict) -> dict:
    runs = [p.name for p in seat.results.glob("r*")] if seat.results.is_dir() else []
    run_dir = seat.results / _choice(args.get("run"), runs, "run")
    files = {p.name: base64.b64encode(p.read_bytes()).decode() for p in run_dir.rglob("*.pcap")}
    if not files:
        raise Refused(f"run {run_dir.name} has no captures: run it with --capture")
    return {"text": f"{len(files)} captures of {run_dir.name}", "data": {"run": run_dir.name}, "files": files}


def fleet(seat: Seat, args: dict) -> dict:
    step = _choice(args.get("step"), FLEET, "fleet step")
    playbook = f"playbooks/{step.removesuffix('-check')}.yml"
    run_id = (
        f"f{sum(1 for _ in (seat.dir / 'fleet').glob('f*')) + 1:03d}-{step}"
        if (seat.dir / "fleet").is_dir()
        else f"f001-{step}"
    )
    extra = {"badsum_fleet_results_dir": str(seat.dir / "fleet"), "badsum_fleet_run_id": run_id}
    proc = _playbook(seat, playbook, extra, *(["--check", "--diff"] if step.endswith("-check") else []))
    table = seat.dir / "fleet" / run_id / "fleet.json"
    if not table.exists():
        raise Refused("the fleet run did not start:\n" + "\n".join(proc.stdout.splitlines()[-10:]))
    data = json.loads(table.read_text())
    text = "\n".join(
        f"{r['host']:6} {r['status']:6} risk {r['risk'] or '-':15} after {r['risk_after'] or '-':15} {r['action']}"
        for r in data["rows"]
    )
    return {"text": f"{step} ({run_id}):\n{text}", "data": {"run": run_id, "summary": data}}


def time_left(room: Room) -> dict:
    left = room.seconds_left()
    return {"text": f"{int(left // 3600)} h {int(left % 3600 // 60)} min left", "data": {"seconds": left}}


ACTIONS = {
    "run": run,
    "results": results_,
    "counters": counters,
    "container": container,
    "ethtool": ethtool,
    "pcap": pcap,
    "fleet": fleet,
}


def record(seat: Seat, action: str, args: dict, ok: bool, data: dict | None) -> None:
    seat.dir.mkdir(parents=True, exist_ok=True)
    entry = {"time": time.time(), "action": action, "args": args, "ok": ok, "data": data or {}}
    with (seat.dir / "activity.jsonl").open("a") as f:
        f.write(json.dumps(entry) + "\n")


def activity(seat: Seat) -> list[dict]:
    path = seat.dir / "activity.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


def carry_out(room: Room, seat: Seat, request: dict) -> dict:
    """Do one request of a student; the answer always has ok and text."""
    action, args = request.get("action"), request.get("args") or {}
    if not isinstance(args, dict):
        return {"ok": False, "text": "args must be an object"}
    if action == "time":
        return {"ok": True, **time_left(room)}
    if time.time() > room.deadline:
        return {"ok": False, "text": "the workshop has ended"}
    if action == "check":
        from badsum.workshop import checks  # pytest and testinfra: only for this action

        answer = checks.check_one(room, seat, args.get("exercise"))
        record(seat, "check", args, answer["ok"], answer.get("data"))
        return answer
    if action not in ACTIONS:
        return {"ok": False, "text": f"no action {action!r} (actions: {', '.join([*ACTIONS, 'check', 'time'])})"}
    try:
        answer = ACTIONS[action](seat, args)
    except Refused as exc:
        record(seat, action, args, False, {"error": str(exc)})
        return {"ok": False, "text": str(exc)}
    except subprocess.TimeoutExpired:
        record(seat, action, args, False, {"error": "timeout"})
        return {"ok": False, "text": "it took too long; try again (ask the trainer if it keeps happening)"}
    record(seat, action, args, True, answer.get("data"))
    return {"ok": True, **answer}
