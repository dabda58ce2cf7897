"""The offload workaround on a fleet host: apply it, verify it, and roll it back to exactly what was there.

    remediate apply    [--check] [--guard auto|daemon|systemd|none] [--interval S]
                       [--cni-conf-dir DIR ...] [--cni-bin-dir DIR]
    remediate verify   [--new-container] [--cni-conf-dir DIR ...] [--cni-bin-dir DIR] [--wait S]
    remediate rollback [--check]
    remediate show                 the record of what apply changed

apply turns rx-checksumming off on every container veth that has it on (the
receiving end veth_xmit() consulted: Mesos afd56ea597f5, kubernetes#18898,
moby#18776), and makes it stick for containers created later: the guard
(guard.py) for every runtime, and the badsum-rx-off CNI plugin chained into
each .conflist (cni.py) so pods are protected before they start. Before it
changes anything it records what it found in
<lib_dir>/remediation/<hostname>/state.json; rollback puts back exactly
that: the veths it turned off, and those the guard turned off since (the
ones that still exist), on again; the guard stopped and removed; every file
it wrote restored to its old bytes or removed. With --check both say what they would change, as a diff, and change
nothing. Physical NICs, bridges and host-only veths are never changed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import cni, containers, guard, netlink
from .common import HostError, Parser, atomic_write, kill, kit_path, lib_dir, sh, wait_gone

UNIT = "badsum-rx-guard.service"
VERIFY_PREFIX = "bsverify-"
UNIT_PATH = Path("/etc/systemd/system") / UNIT


def state_dir() -> Path:
    # lib_dir is shared by the emulated hosts of a lab: one record per host name.
    return lib_dir() / "remediation" / platform.node()


def load_state() -> dict | None:
    path = state_dir() / "state.json"
    return json.loads(path.read_text()) if path.exists() else None


def save_state(state: dict) -> None:
    atomic_write(state_dir() / "state.json", json.dumps(state, indent=1))


def has_systemd() -> bool:
    return Path("/run/systemd/system").is_dir()


def guard_mode(wanted: str) -> str:
    if wanted == "auto":
        return "systemd" if has_systemd() else "daemon"
    if wanted == "systemd" and not has_systemd():
        raise HostError("--guard systemd: systemd is not running on this host (use daemon or auto)")
    return wanted


def unit_text(interval: float) -> str:
    return (
        "# Written by badsum (remediate apply); `remediate rollback` removes it.\n"
        "[Unit]\n"
        "Description=badsum: rx-checksumming off on every container veth (veth checksum bug workaround)\n"
        "After=network.target\n\n"
        "[Service]\n"
        f"ExecStart=/usr/bin/python3 -I {kit_path()} guard run --state-dir {state_dir()} --interval {interval:g}\n"
        "Restart=always\n"
        "RestartSec=2\n\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def guard_running(mode: str) -> bool:
    if mode == "systemd":
        return sh("systemctl", "is-active", "--quiet", UNIT, check=False).returncode == 0
    return guard.Files(str(state_dir())).running() is not None


def start_guard(mode: str, interval: float) -> None:
    if mode == "systemd":
        atomic_write(UNIT_PATH, unit_text(interval))
        sh("systemctl", "daemon-reload")
        sh("systemctl", "enable", "--now", UNIT)
        return
    files = guard.Files(str(state_dir()))
    files.dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-I", str(kit_path()), "guard", "run", "--state-dir", str(files.dir)]
    with open(os.devnull, "rb") as devnull, files.log.open("ab") as log:
        # Its own session: it outlives the SSH connection that started it, in the
        # caller's cgroup (on the embedded lab: the emulated host's, which teardown kills).
        subprocess.Popen([*argv, "--interval", f"{interval:g}"], stdin=devnull, stdout=log, stderr=log,
                         start_new_session=True, close_fds=True)  # fmt: skip
    deadline = time.monotonic() + 5
    while files.running() is None:
        if time.monotonic() > deadline:
            raise HostError(f"the guard did not start; its log: {files.log.read_text()[-800:]}")
        time.sleep(0.02)


def stop_guard(mode: str) -> None:
    if mode == "systemd":
        sh("systemctl", "disable", "--now", UNIT, check=False)
        UNIT_PATH.unlink(missing_ok=True)
        sh("systemctl", "daemon-reload", check=False)
        return
    files = guard.Files(str(state_dir()))
    pid = files.running()
    if pid:
        kill([pid], signal.SIGTERM)
        if not wait_gone([pid], 3):
            kill([pid], signal.SIGKILL)
            wait_gone([pid], 3)
    for path in (files.pid, files.status):
        path.unlink(missing_ok=True)


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
    start = mode != "none" and not guard_running(mode)
    changes = [f"rx-checksumming on -> off: {v['ifname']} in {v['owner']}" for v in veths]
    changes += [f"write {item['path']}" for item in cni_items]
    if start:
        changes.append(f"start the guard ({'systemd unit ' + UNIT if mode == 'systemd' else 'daemon'})")
    diff = [file_diff(item) for item in cni_items]
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
        state = {"version": 1, "host": platform.node(), "recorded_at": time.time(), "veths": [], "files": {}}
    state["guard"] = {"mode": mode, "started_by_badsum": start or state.get("guard", {}).get("started_by_badsum")}
    state["cni"] = {"conf_dirs": args.cni_conf_dir, "bin_dir": args.cni_bin_dir}
    for item in cni_items:  # the first recorded bytes are the ones rollback restores
        state["files"].setdefault(item["path"], {"before": item["before"], "mode": item["mode"]})
    known = {(v["netns"], v["ifindex"]) for v in state["veths"]}
    state["veths"] += [{**v, "rx": "on"} for v in veths if (v["netns"], v["ifindex"]) not in known]
    save_state(state)  # before any change: an interrupted apply can still be rolled back
    done = guard.sweep(scope)
    cni.apply(cni_items)
    if start:
        start_guard(mode, args.interval)
    return {"changed": bool(changes) or bool(done), "changes": changes, "diff": diff, "state": str(state_dir())}


def _find(namespaces: dict[int, containers.Namespace], netns: int, ifindex: int, ifname: str) -> str | None:
    ns = namespaces.get(netns)
    if ns is None:
        return None
    try:
        with netlink.inside(ns.ref, expect=netns):
            return ns.ref if any(link.index == ifindex and link.name == ifname for link in netlink.links()) else None
    except HostError:
        return None


def rollback(args: argparse.Namespace) -> dict:
    state = load_state()
    if state is None:
        return {"changed": False, "changes": [], "msg": "nothing to roll back: no remediation recorded on this host"}
    _host, namespaces, _ = containers.discover(containers.own_cgroup())
    restore, gone = [], []
    # What apply turned off, then what the guard turned off since (containers created later).
    recorded = {(v["netns"], v["ifindex"]): v for v in [*state["veths"], *guard.Files(str(state_dir())).changed()]}
    for v in recorded.values():
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
    if args.check:
        return {"changed": True, "changes": changes, "diff": diff, "gone": [v["ifname"] for v, _ in gone],
                "check_mode": True}  # fmt: skip
    if stop:
        stop_guard(mode)  # first: it would turn the restored veths off again
    for v, ref in restore:
        with netlink.inside(ref, expect=v["netns"]):
            netlink.set_rx_checksumming(v["ifname"], v["rx"] == "on")
    for path, f in state["files"].items():
        if f["before"] is None:
            Path(path).unlink(missing_ok=True)
        else:
            atomic_write(Path(path), f["before"], f["mode"])
    (state_dir() / "state.json").unlink()
    for leftover in ("guard.log", "guard.log.1", "guard-changes.jsonl"):
        (state_dir() / leftover).unlink(missing_ok=True)
    if state_dir().is_dir() and not any(state_dir().iterdir()):
        state_dir().rmdir()
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
        self.inode = netlink.inode(self.ref)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


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
    box = Throwaway()
    try:
        # Docker, Mesos: the pair is made in the host namespace, one end moved in.
        sh("ip", "link", "add", "bsverify-h1", "type", "veth", "peer", "name", "bsverify-c1")
        sh("ip", "link", "set", "bsverify-c1", "netns", str(box.proc.pid))
        took = _wait_rx_off(box, "bsverify-c1", args.wait)
        results.append({"how": "made in the host namespace, moved in (Docker, Mesos)", "seconds": took})
        # CNI bridge: the pair is made inside the pod's namespace, the host end moved out.
        with netlink.inside(box.ref, expect=box.inode):
            sh("ip", "link", "add", "bsverify-c2", "type", "veth", "peer", "name", "bsverify-h2")
        # from the host side, where /proc/<our pid>/ns/net is the host namespace
        sh("nsenter", f"--net={box.ref}", "ip", "link", "set", "bsverify-h2", "netns", str(os.getpid()))
        took = _wait_rx_off(box, "bsverify-c2", args.wait)
        results.append({"how": "made in the pod's namespace, host end moved out (CNI bridge)", "seconds": took})
        status = cni.status(args.cni_conf_dir, args.cni_bin_dir)
        if any(v is True for v in status["conflists"].values()):
            with netlink.inside(box.ref, expect=box.inode):
                sh("ip", "link", "add", "bsverify-c3", "type", "veth", "peer", "name", "bsverify-p3")
            env = dict(os.environ, CNI_COMMAND="ADD", CNI_NETNS=box.ref, CNI_IFNAME="bsverify-c3",
                       CNI_CONTAINERID="badsum-verify", CNI_PATH=args.cni_bin_dir)  # fmt: skip
            conf = json.dumps({"cniVersion": "1.0.0", "name": "badsum-verify", "type": cni.PLUGIN})
            sh(status["plugin"], stdin=conf, env=env)
            with netlink.inside(box.ref, expect=box.inode):
                off = not netlink.rx_checksumming("bsverify-c3")
            how = "the chained CNI plugin, called as a runtime calls it"
            results.append({"how": how, "seconds": 0.0 if off else None})
    finally:
        box.close()
        sh("ip", "link", "del", "bsverify-h1", check=False)
        sh("ip", "link", "del", "bsverify-h2", check=False)
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
    if state is None:
        problems.append("no remediation is recorded on this host")
    elif mode != "none" and not guard_running(mode):
        problems.append(f"the guard ({mode}) is not running: containers created from now on are exposed")
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


def build_parser() -> Parser:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    a = sub.add_parser("apply", help="rx off on container veths, and the guard and CNI plugin for later ones")
    a.add_argument("--check", action="store_true", help="say what would change (with a diff), change nothing")
    a.add_argument("--guard", choices=["auto", "daemon", "systemd", "none"], default="auto")
    a.add_argument("--interval", type=float, default=60.0, help="the guard's pass without link events, seconds")
    v = sub.add_parser("verify", help="is the workaround in place (read-only, but for --new-container)")
    v.add_argument("--new-container", action="store_true", help="also make throw-away veths the runtimes' ways")
    v.add_argument("--wait", type=float, default=2.0, help="how long a new veth may keep rx on, seconds")
    for parser in (a, v):
        parser.add_argument("--cni-conf-dir", action="append", default=[], help="a CNI configuration directory")
        parser.add_argument("--cni-bin-dir", default="/opt/cni/bin", help="where the runtime finds CNI plugins")
    r = sub.add_parser("rollback", help="put back what apply recorded")
    r.add_argument("--check", action="store_true", help="say what would change, change nothing")
    sub.add_parser("show", help="the record of what apply changed")
    return p


def run(args: argparse.Namespace) -> dict:
    if args.action == "apply":
        if not args.interval > 0:
            raise HostError(f"--interval must be above 0 (got {args.interval})")
        if not args.cni_conf_dir:
            args.cni_conf_dir = ["/etc/cni/net.d"]
        return apply(args)
    if args.action == "verify":
        args.cni_conf_dir = args.cni_conf_dir or ["/etc/cni/net.d"]
        return verify(args)
    if args.action == "rollback":
        return rollback(args)
    state = load_state()
    return {"recorded": state is not None, "state": state or {}, "dir": str(state_dir())}
