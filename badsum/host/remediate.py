"""The offload workaround on a fleet host: apply it, verify it, and roll it back to exactly what was there.

    remediate rollout  [--check] [audit options] [--guard ...] [--interval S] [--new-container] [--wait S]
                       this host's part of a rollout, in one call: audit; on an exposed host, apply,
                       verify, audit again
    remediate apply    [--check] [--guard auto|daemon|systemd|none] [--interval S]
                       [--cni-conf-dir DIR ...] [--cni-bin-dir DIR]
    remediate verify   [--new-container] [--cni-conf-dir DIR ...] [--cni-bin-dir DIR] [--wait S]
    remediate rollback [--check] [--audit [audit options]]
    remediate show     the record of what apply changed

apply turns rx-checksumming off on every container veth that has it on (the
receiving end veth_xmit() consulted: Mesos afd56ea597f5, kubernetes#18898,
moby#18776), and makes it stick for containers created later: the guard
(guard.py, persistence.py) for every runtime, and the badsum-rx-off CNI
plugin chained into each .conflist (cni.py) so pods are protected before
they start. Before it changes anything it records what it found
(persistence.py); rollback puts back exactly that: the veths it turned off,
and those the guard turned off since (those that still exist, made in this
boot), on again; the guard stopped and removed; every file it wrote restored
to its old bytes or removed. With --check both say what they would change,
as a diff, and change nothing. Physical NICs, bridges and host-only veths are
never changed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import time
from pathlib import Path

from . import audit, cni, containers, guard, metrics, netlink
from .common import HostError, Parser, atomic_write, boot_id, sh
from .persistence import (
    GUARD_DOWN,
    UNIT,
    UNIT_PATH,
    guard_gap,
    guard_mode,
    load_state,
    save_state,
    start_guard,
    state_dir,
    stop_guard,
    unit_text,
)

VERIFY_PREFIX = "bsverify-"


def file_diff(item: dict) -> dict:
    before, after = item["before"] or "", item["after"] or ""
    return {
        "before_header": item["path"] if item["before"] is not None else "(absent)",
        "after_header": item["path"] if item["after"] is not None else "(absent)",
        "before": before,
        "after": after,
    }


def apply(args: argparse.Namespace) -> dict:
    scope = containers.own_cgroup()
    mode = guard_mode(args.guard)
    veths = guard.sweep(scope, check=True)
    cni_items = cni.plan_install(args.cni_conf_dir, args.cni_bin_dir)
    state = load_state()
    # Started (under systemd: written, enabled, restarted) unless it already covers new containers.
    gap = guard_gap(mode) if mode != "none" else None
    start = gap is not None
    changes = [f"rx-checksumming on -> off: {v['ifname']} in {v['owner']}" for v in veths]
    changes += [f"write {item['path']}" for item in cni_items]
    if start:
        how = f"systemd unit {UNIT}" if mode == "systemd" else "daemon"
        verb = "start" if gap == GUARD_DOWN else "restart"
        changes.append(f"{verb} the guard ({how}): {gap[1]}")
    diff = [file_diff(item) for item in cni_items]
    if start and mode == "systemd":
        unit = {"path": str(UNIT_PATH), "before": _read(str(UNIT_PATH)), "after": unit_text(args.interval)}
        diff.append(file_diff(unit))
    if veths:
        diff.append(
            {
                "before_header": "container veths",
                "after_header": "container veths",
                "before": "".join(f"{v['ifname']} ({v['owner']}): rx on\n" for v in veths),
                "after": "".join(f"{v['ifname']} ({v['owner']}): rx off\n" for v in veths),
            }
        )
    if args.check:
        return {"changed": bool(changes), "changes": changes, "diff": diff, "check_mode": True}
    if state is None:
        state = {"version": 1, "host": os.uname().nodename, "recorded_at": time.time(), "veths": [], "files": {}}
    state["guard"] = {"mode": mode, "started_by_badsum": start or state.get("guard", {}).get("started_by_badsum")}
    state["cni"] = {"conf_dirs": args.cni_conf_dir, "bin_dir": args.cni_bin_dir}
    for item in cni_items:  # the first recorded bytes are the ones rollback restores
        state["files"].setdefault(item["path"], {"before": item["before"], "mode": item["mode"]})
    known = {guard.veth_key(v) for v in state["veths"]}
    state["veths"] += [{**v, "rx": "on"} for v in veths if guard.veth_key(v) not in known]
    save_state(state)  # before any change: an interrupted apply can still be rolled back
    done = guard.sweep(scope)
    cni.apply(cni_items)
    if start:
        start_guard(mode, args.interval)
    return {"changed": bool(changes) or bool(done), "changes": changes, "diff": diff, "state": str(state_dir())}


def _find(
    namespaces: dict[int, containers.Namespace], netns: int, ifindex: int, ifname: str
) -> containers.Namespace | None:
    ns = namespaces.get(netns)
    if ns is None:
        return None
    try:
        with containers.entered(ns):
            found = any(link.index == ifindex and link.name == ifname for link in netlink.links())
    except HostError:
        return None
    return ns if found else None


def rollback(args: argparse.Namespace) -> dict:
    state = load_state()
    if state is None:
        return {"changed": False, "changes": [], "msg": "nothing to roll back: no remediation recorded on this host"}
    _host, namespaces, _ = containers.discover(containers.own_cgroup())
    # What apply turned off, then what the guard turned off since (containers created later).
    current, earlier = guard.this_boots([*state["veths"], *guard.Files(str(state_dir())).changed()], boot_id())
    restore, gone = [], [(v, None) for v in earlier if not v["ifname"].startswith(VERIFY_PREFIX)]
    for v in current:
        ref = _find(namespaces, v["netns"], v["ifindex"], v["ifname"])
        if ref:
            restore.append((v, ref))
        elif not v["ifname"].startswith(VERIFY_PREFIX):  # verification's own veths are gone by design
            gone.append((v, ref))
    mode = state.get("guard", {}).get("mode", "none")
    stop = bool(state.get("guard", {}).get("started_by_badsum")) and mode != "none"
    changes = [f"rx-checksumming off -> {v['rx']}: {v['ifname']} in {v['owner']}" for v, _ in restore]
    changes += [f"{'restore' if f['before'] is not None else 'remove'} {p}" for p, f in state["files"].items()]
    if stop:
        changes.append(f"stop and remove the guard ({mode})")
    diff = [
        file_diff({"path": p, "before": _read(p), "after": f["before"]})
        for p, f in state["files"].items()
        if _read(p) != f["before"]
    ]
    if stop and mode == "systemd" and UNIT_PATH.exists():
        diff.append(file_diff({"path": str(UNIT_PATH), "before": _read(str(UNIT_PATH)), "after": None}))
    if args.check:
        return {
            "changed": True,
            "changes": changes,
            "diff": diff,
            "gone": [v["ifname"] for v, _ in gone],
            "check_mode": True,
        }
    if stop:
        stop_guard(mode)  # first: it would turn the restored veths off again
    for v, ns in restore:
        with containers.entered(ns):
            netlink.set_rx_checksumming(v["ifname"], v["rx"] == "on")
    for path, f in state["files"].items():
        if f["before"] is None:
            Path(path).unlink(missing_ok=True)
        else:
            atomic_write(Path(path), f["before"], f["mode"])
    (state_dir() / "state.json").unlink()
    for leftover in ("guard.log", "guard.log.1", "guard-changes.jsonl"):
        (state_dir() / leftover).unlink(missing_ok=True)
    # The record's directory and remediation/ above it, when nothing else is in them.
    for directory in (state_dir(), state_dir().parent):
        with contextlib.suppress(OSError):
            directory.rmdir()
    return {"changed": True, "changes": changes, "diff": diff, "gone": [v["ifname"] for v, _ in gone]}


def _read(path: str) -> str | None:
    p = Path(path)
    return p.read_text() if p.is_file() else None


class Throwaway:
    """A container-to-be: a process in a network namespace of its own (as a runtime's init is), bounded in time."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(["unshare", "--net", "sleep", "20"], stdin=subprocess.DEVNULL)
        self.ref = f"/proc/{self.proc.pid}/ns/net"
        deadline = time.monotonic() + 2
        while netlink.inode(self.ref) == netlink.inode():
            if time.monotonic() > deadline:
                raise HostError("unshare --net did not make a namespace within 2 s")
            time.sleep(0.005)
        # Its PID cannot be reused before we reap it: the path stays this namespace's until close().
        self.fd = os.open(self.ref, os.O_RDONLY | os.O_CLOEXEC)
        self.inode = os.fstat(self.fd).st_ino

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self.fd)


def _wait_rx_off(box: Throwaway, ifname: str, wait: float) -> float | None:
    """Seconds until rx-checksumming went off on the device, or None if it stayed on."""
    start = time.monotonic()
    while time.monotonic() - start < wait:
        with netlink.inside(box.ref, expect=box.inode):
            if not netlink.rx_checksumming(ifname):
                return time.monotonic() - start
        time.sleep(0.002)
    return None


def new_containers(args: argparse.Namespace) -> list[dict]:
    """Containers started now come up protected: a veth made the Docker/Mesos way and one made the CNI way."""
    results = []
    host = os.open(netlink.SELF, os.O_RDONLY | os.O_CLOEXEC)  # this thread's namespace: the host's
    box = Throwaway()
    try:
        # Docker, Mesos: the pair is made in the host namespace, one end moved in.
        netlink.add_veth("bsverify-h1", "bsverify-c1")
        netlink.move_link("bsverify-c1", box.fd)
        took = _wait_rx_off(box, "bsverify-c1", args.wait)
        results.append({"how": "made in the host namespace, moved in (Docker, Mesos)", "seconds": took})
        # CNI bridge: the pair is made inside the pod's namespace, the host end moved out.
        with netlink.inside(box.ref, expect=box.inode):
            netlink.add_veth("bsverify-c2", "bsverify-h2")
            netlink.move_link("bsverify-h2", host)
        took = _wait_rx_off(box, "bsverify-c2", args.wait)
        results.append({"how": "made in the pod's namespace, host end moved out (CNI bridge)", "seconds": took})
        status = cni.status(args.cni_conf_dir, args.cni_bin_dir)
        if any(v is True for v in status["conflists"].values()):
            with netlink.inside(box.ref, expect=box.inode):
                netlink.add_veth("bsverify-c3", "bsverify-p3")
            env = dict(
                os.environ,
                CNI_COMMAND="ADD",
                CNI_NETNS=box.ref,
                CNI_IFNAME="bsverify-c3",
                CNI_CONTAINERID="badsum-verify",
                CNI_PATH=args.cni_bin_dir,
            )
            conf = json.dumps({"cniVersion": "1.0.0", "name": "badsum-verify", "type": cni.PLUGIN})
            sh(status["plugin"], stdin=conf, env=env)
            with netlink.inside(box.ref, expect=box.inode):
                off = not netlink.rx_checksumming("bsverify-c3")
            how = "the chained CNI plugin, called as a runtime calls it"
            results.append({"how": how, "seconds": 0.0 if off else None})
    finally:
        box.close()
        os.close(host)
        netlink.delete_link("bsverify-h1")
        netlink.delete_link("bsverify-h2")
    return results


def verify(args: argparse.Namespace) -> dict:
    state = load_state()
    scope = containers.own_cgroup()
    inv = containers.inventory(scope)
    problems = [
        f"{v['ifname']} in {v['owner']} still has rx-checksumming on"
        for v in inv["veths"]
        if v["role"] == "container" and v["rx"] == "on"
    ]
    mode = (state or {}).get("guard", {}).get("mode", "none")
    gap = guard_gap(mode) if state is not None and mode != "none" else None
    if state is None:
        problems.append("no remediation is recorded on this host")
    elif gap:
        when, why = gap
        problems.append(f"containers created {when} would come up with rx on: {why}")
    cni_status = cni.status(args.cni_conf_dir, args.cni_bin_dir)
    problems += [f"{p} does not chain {cni.PLUGIN}" for p, ok in cni_status["conflists"].items() if ok is not True]
    if cni_status["conflists"] and not cni_status["plugin_installed"]:
        problems.append(f"{cni_status['plugin']} is missing or not the kit's")
    checks = new_containers(args) if args.new_container else []
    problems += [f"a new veth ({c['how']}) kept rx on for {args.wait:g} s" for c in checks if c["seconds"] is None]
    return {
        "changed": False,
        "ok": not problems,
        "problems": problems,
        **({"msg": "; ".join(problems)} if problems else {}),
        "container_veths": sum(v["role"] == "container" for v in inv["veths"]),
        "new_containers": checks,
        "guard": mode,
        "cni": cni_status,
    }


def rollout(args: argparse.Namespace) -> dict:
    """Audit; on an exposed host, apply, verify and audit again. A failed step fails the call, with what was found."""
    result: dict = {"changed": False, "before": audit.show(args), "apply": None, "verify": None, "after": None}
    if result["before"]["risk"] != "exposed":
        return {**result, "action": f"left alone: {result['before']['risk']}", "after": result["before"]}
    try:
        result["apply"] = apply(args)
        result["changed"] = result["apply"]["changed"]
        if args.check:
            return {
                **result,
                "action": f"would make {len(result['apply']['changes'])} changes",
                "diff": result["apply"]["diff"],
            }
        result["verify"] = verify(args)
        result["after"] = audit.show(args, probed=result["before"]["probe"])
    except HostError as exc:
        return {**result, "failed": True, "msg": str(exc), "action": "failed"}
    problems = result["verify"]["problems"] + (
        [f"still exposed: {result['after']['reason']}"] if result["after"]["risk"] == "exposed" else []
    )
    action = f"remediated ({len(result['apply']['changes'])} changes)"
    if problems:
        return {**result, "failed": True, "msg": "; ".join(problems), "action": action}
    return {**result, "action": action, "diff": result["apply"]["diff"]}


def build_parser() -> Parser:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    ro = sub.add_parser("rollout", help="this host's part of a rollout: audit, apply, verify, audit again")
    a = sub.add_parser("apply", help="rx off on container veths, and the guard and CNI plugin for later ones")
    v = sub.add_parser("verify", help="is the workaround in place (read-only, but for --new-container)")
    r = sub.add_parser("rollback", help="put back what apply recorded")
    for parser in (ro, a, r):
        parser.add_argument("--check", action="store_true", help="say what would change (a diff), change nothing")
    for parser in (ro, a):
        parser.add_argument("--guard", choices=["auto", "daemon", "systemd", "none"], default="auto")
        parser.add_argument("--interval", type=float, default=60.0, help="the guard's pass without link events (s)")
    for parser in (ro, v):
        parser.add_argument("--new-container", action="store_true", help="also make veths the runtimes' ways")
        parser.add_argument("--wait", type=float, default=2.0, help="how long a new veth may keep rx on, seconds")
    for parser in (ro, a, v, r):
        audit.add_options(parser, probe=parser in (ro, r))
    r.add_argument("--audit", action="store_true", help="audit the host after the rollback")
    sub.add_parser("show", help="the record of what apply changed")
    return p


def run(args: argparse.Namespace) -> dict:
    if getattr(args, "interval", 1) <= 0:
        raise HostError(f"--interval must be above 0 (got {args.interval})")
    if hasattr(args, "cni_conf_dir"):
        args.cni_conf_dir = args.cni_conf_dir or [audit.CNI_CONF_DIR]
    if args.action == "rollout":
        return metrics.publish(args, "remediate", rollout(args))
    if args.action == "apply":
        return apply(args)
    if args.action == "verify":
        return verify(args)
    if args.action == "rollback":
        result = rollback(args)
        if args.audit and not args.check:
            result["after"] = audit.show(args)
        return metrics.publish(args, "rollback", result)
    state = load_state()
    return {"recorded": state is not None, "state": state or {}, "dir": str(state_dir())}
