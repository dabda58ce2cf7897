"""The offload workaround on a fleet host: apply it, verify it, and roll back exactly what badsum did.

    remediate rollout  [--check] AUDIT --guard MODE --interval S --vxlan MODE [--new-container] --wait S [--retire]
                       this host's part of a rollout, in one call: audit; on an exposed host, apply,
                       verify, audit again - and put back what this call did when verification fails;
                       with --retire, on a host whose kernel has the fix, roll the workaround back
    remediate apply    [--check] --guard auto|daemon|systemd|none --interval S --vxlan never|exposed|latent CNI
    remediate verify   [--new-container] CNI --wait S
    remediate rollback [--check] [--audit] AUDIT
    remediate show     the record of what apply changed

    AUDIT: [--no-probe] [--emulate-bug] CNI --textfile-dir DIR|""  (audit.py)
    CNI:   --cni-conf-dir DIR [...] --cni-bin-dir DIR

Every value comes from the fleet role, which passes each on every call: their
defaults live in roles/badsum_fleet/defaults/main.yml alone.

apply turns rx-checksumming off on every container veth that has it on (the
receiving end veth_xmit() consulted: Mesos afd56ea597f5, kubernetes#18898,
moby#18776), and makes it stick for containers created later: the guard
(guard.py, persistence.py) for every runtime, and the badsum-rx-off CNI
plugin chained into each CNI configuration that can chain (cni.py), so pods
are protected before they start. Before it changes anything it records what
it is about to change (persistence.py), durably.

The second hazard (vxlan.py): with --vxlan exposed (or latent), on a host
whose VXLAN class is that, apply turns tx-checksum-ip-generic off on every
affected vxlan device that has it on, records each (boot, ifindex, name),
and the guard turns it off again on a device the overlay recreates. A rollout
on a host exposed to the second hazard only leaves its veths alone (the
record says so: `veth: false`, and the guard then looks at vxlan devices only).
rollback turns the knob on again only on the very device badsum turned off
(same boot, ifindex and name) if it is still off; one recreated since, or
turned on by someone, is counted and left alone.

rollback undoes what badsum did and nothing else:
- a veth's rx goes back on only where badsum turned it off - apply, or the
  guard since - and only on that very veth (its namespace's cookie, or its
  inode and a witness of its life: containers.Veth.key) if its rx is still
  off as badsum left it; a container that is gone, or one whose rx was
  turned on since, is counted and left alone;
- badsum's entry is taken out of each CNI configuration as it is now (later
  edits stay, a file deleted since stays deleted), and the plugin binary
  goes once no configuration names it;
- the guard is stopped and its unit removed;
- with no record (lib dir wiped, host renamed, an empty or corrupt record),
  it finds badsum's unit, guard, plugin and CNI entries by their marks and
  removes them; the veths it turned off then stay off (nothing says which
  they were: the safe side).
With --check both say what they would change, as a diff, and change
nothing. Physical NICs, bridges and host-only veths are never changed.
"""

# Longer than ~300 lines: apply, verify and rollback are one transaction: exact undo is checked by
#   reading it beside what it undoes.

import argparse
import json
import os
import subprocess
import time
from typing import Dict, List, Optional, Tuple

from ..shared import metrics, netlink
from ..shared.common import HostError, Parser, boot_id, read_text, sh, shown
from . import audit, cni, containers, guard, vxlan
from .persistence import (
    GUARD_DOWN,
    UNIT,
    UNIT_PATH,
    guard_gap,
    guard_mode,
    machine_id,
    read_record,
    remove_state_dir,
    save_state,
    start_guard,
    state_dir,
    stop_guard,
    stray_guards,
    unit_is_ours,
    unit_text,
)

VERIFY_PREFIX = "bsverify-"
CNI_LOG = "cni-plugin.jsonl"  # where the chained plugin says why it left a pod's rx on (persistence.OWN_FILES)
RECORD_VERSION = 2


def file_diff(item: dict) -> dict:
    before, after = item["before"] or "", item["after"] or ""
    return {
        "before_header": item["path"] if item["before"] is not None else "(absent)",
        "after_header": item["path"] if item["after"] is not None else "(absent)",
        "before": before,
        "after": after,
    }


def _read(path: str) -> Optional[str]:
    try:
        return read_text(path)
    except OSError:
        return None


def _veth_diff(veths: List[dict], before: str, after: str) -> dict:
    return {
        "before_header": "container veths",
        "after_header": "container veths",
        "before": "".join(f"{v['ifname']} ({v['owner']}): rx {before}\n" for v in veths),
        "after": "".join(f"{v['ifname']} ({v['owner']}): rx {after}\n" for v in veths),
    }


class Applied:
    """What one apply did: what undoing this call alone takes (rollout, when verification fails)."""

    def __init__(self) -> None:
        self.new_record = True  # no remediation before it: undoing it is undoing everything
        self.veths: List[dict] = []
        self.cni_paths: List[str] = []
        self.guard_started: Optional[str] = None
        self.vxlan: List[dict] = []


def _vxlan_diff(devices: List[dict], before: str, after: str) -> dict:
    return {
        "before_header": "vxlan devices",
        "after_header": "vxlan devices",
        "before": "".join(f"{d['ifname']}: tx-checksum-ip-generic {before}\n" for d in devices),
        "after": "".join(f"{d['ifname']}: tx-checksum-ip-generic {after}\n" for d in devices),
    }


def apply(args: argparse.Namespace, applied: Optional[Applied] = None, veths_too: bool = True) -> dict:
    """The workaround; veths_too=False: the second hazard's part only (a rollout on a host exposed to it alone)."""
    scope = containers.own_cgroup()
    mode = guard_mode(args.guard)
    state, problem, _path = read_record()
    if problem:
        raise HostError(f"the remediation record is unusable ({problem}): roll back first (rollback.yml)")
    veth_part = veths_too or bool((state or {}).get("veth", state is not None))
    veths = guard.sweep(scope, check=True) if veth_part else []
    cni_items = (
        cni.plan_install(args.cni_conf_dir, args.cni_bin_dir, log=str(state_dir() / CNI_LOG)) if veth_part else []
    )
    # The bug emulated (labs): the rollout's --emulate-bug, or the record's from an earlier apply.
    emulated = bool(getattr(args, "emulate_bug", False) or (state or {}).get("vxlan", {}).get("emulate_bug"))
    hazard = vxlan.audit(emulate_bug=emulated) if vxlan.MODES[args.vxlan] else {"risk": "not-applicable"}
    vxlan_part = hazard["risk"] in vxlan.MODES[args.vxlan] or bool((state or {}).get("vxlan", {}).get("guard"))
    devices = vxlan.switch_off(check=True, emulate_bug=emulated) if vxlan_part else []
    # Started (under systemd: written, enabled, restarted) unless it already covers new containers.
    gap = guard_gap(mode) if mode != "none" else None
    start = gap is not None
    changes = [f"rx-checksumming on -> off: {v['ifname']} in {v['owner']}" for v in veths]
    changes += [f"write {item['path']}" for item in cni_items]
    changes += [f"tx-checksum-ip-generic on -> off: {d['ifname']} (vxlan)" for d in devices]
    if start:
        how = f"systemd unit {UNIT}" if mode == "systemd" else "daemon"
        verb = "start" if gap == GUARD_DOWN else "restart"
        changes.append(f"{verb} the guard ({how}): {gap[1]}")
    diff = [file_diff(item) for item in cni_items]
    if start and mode == "systemd":
        unit = {"path": str(UNIT_PATH), "before": _read(str(UNIT_PATH)), "after": unit_text(args.interval)}
        diff.append(file_diff(unit))
    if veths:
        diff.append(_veth_diff(veths, "on", "off"))
    if devices:
        diff.append(_vxlan_diff(devices, "on", "off"))
    if args.check:
        return {"changed": bool(changes), "changes": changes, "diff": diff, "check_mode": True}
    applied = applied or Applied()
    applied.new_record = state is None
    if state is None:
        state = {
            "version": RECORD_VERSION,
            "host": os.uname().nodename,
            "machine_id": machine_id(),
            "recorded_at": time.time(),
            "veths": [],
        }
    state["version"] = RECORD_VERSION
    state["veth"] = veth_part
    recorded_vxlan = (state.get("vxlan") or {}).get("devices", [])
    state["vxlan"] = {
        "mode": args.vxlan,
        "guard": vxlan_part,
        # The guard treats ea64d8d6c675 as missing too (vxlan.py: the emulated fleet's canary cell).
        "emulate_bug": emulated,
        "devices": recorded_vxlan + [d for d in devices if vxlan.key(d) not in {vxlan.key(r) for r in recorded_vxlan}],
    }
    state["guard"] = {"mode": mode, "started_by_badsum": start or state.get("guard", {}).get("started_by_badsum")}
    state["cni"] = {"conf_dirs": args.cni_conf_dir, "bin_dir": args.cni_bin_dir}
    state["cni_files"] = sorted({*state.get("cni_files", []), *(i["path"] for i in cni_items if i["after"])})
    known = {guard.veth_key(v) for v in state["veths"]}
    state["veths"] += [v for v in veths if guard.veth_key(v) not in known]
    save_state(state)  # before any change, durably: an interrupted apply can still be rolled back
    done = guard.sweep(scope) if veth_part else []
    applied.veths = done
    switched = vxlan.switch_off(emulate_bug=emulated) if vxlan_part else []
    applied.vxlan = switched
    more = [d for d in switched if vxlan.key(d) not in {vxlan.key(r) for r in state["vxlan"]["devices"]}]
    if more:  # made between the look and the change (the overlay recreated it): recorded too
        state["vxlan"]["devices"] += more
        save_state(state)
    extra = [v for v in done if guard.veth_key(v) not in {guard.veth_key(w) for w in state["veths"]}]
    if extra:  # made between the look and the change: recorded too
        state["veths"] += extra
        save_state(state)
    # What is undone if what follows fails half way: planned before it starts.
    applied.cni_paths = [i["path"] for i in cni_items if i["after"] is not None]
    left = cni.apply(cni_items)
    if start:
        # A guard that ran before this call (an older unit, a disabled one) is better restarted than
        # stopped if the call fails: only a guard this call brought to the host is taken away again.
        applied.guard_started = mode if applied.new_record else None
        start_guard(mode, args.interval)
    changed = bool(changes) or bool(done) or bool(switched)
    result = {"changed": changed, "changes": changes, "diff": diff, "state": str(state_dir())}
    return {**result, "cni_left_alone": left} if left else result


def _identity(ns: containers.Namespace) -> Tuple[Optional[int], str]:
    with containers.entered(ns):
        return netlink.netns_cookie(), ns.witness


def _same_namespace(v: dict, ns: containers.Namespace) -> bool:
    """Is the namespace found now the one the record names (not a newer one with the inode reused)?"""
    cookie, witness = _identity(ns)
    if v.get("netns_cookie") is not None:
        return cookie == v["netns_cookie"]
    if v.get("witness") is not None:
        return witness == v["witness"]
    return False  # an older badsum's record: nothing tells a reused inode apart, so it is left off


class Restore:
    """What rollback does with the recorded veths, decided before anything changes."""

    def __init__(self) -> None:
        self.on: List[Tuple[dict, containers.Namespace, str]] = []  # turned on again (the link's own name)
        self.gone: List[dict] = []  # the container, or that veth, is gone
        self.turned_on: List[dict] = []  # someone turned rx on since: left as it is
        self.unsure: List[dict] = []  # recorded without a unique identity (an older badsum): left off


def _plan_restore(recorded: List[dict]) -> Restore:
    plan = Restore()
    current, earlier = guard.this_boots(recorded, boot_id())
    plan.gone += [v for v in earlier if not v["ifname"].startswith(VERIFY_PREFIX)]
    _host, namespaces, _ = containers.discover(containers.own_cgroup())
    for v in current:
        if v["ifname"].startswith(VERIFY_PREFIX):
            continue  # verification's own veths are gone by design
        ns = namespaces.get(v["netns"])
        try:
            if ns is None or not _same_namespace(v, ns):
                if ns is not None and v.get("netns_cookie") is None and v.get("witness") is None:
                    plan.unsure.append(v)
                else:
                    plan.gone.append(v)
                continue
            with containers.entered(ns):
                link = next(
                    (x for x in netlink.links() if x.index == v["ifindex"] and shown(x.name) == v["ifname"]), None
                )
                rx = netlink.rx_checksumming(link.name) if link else None
        except (HostError, OSError):
            plan.gone.append(v)  # it ended while we looked
            continue
        if link is None:
            plan.gone.append(v)
        elif rx:
            plan.turned_on.append(v)
        else:
            plan.on.append((v, ns, link.name))
    return plan


def _restore(plan: Restore) -> None:
    for v, ns, name in list(plan.on):
        try:
            with containers.entered(ns):
                netlink.set_rx_checksumming(name, True)
        except (HostError, OSError):  # the container exited meanwhile: counted, never fatal
            plan.on.remove((v, ns, name))
            plan.gone.append(v)


def _cni_undo(args: argparse.Namespace, only: Optional[Applied], state: Optional[dict]) -> List[dict]:
    """badsum's CNI entries to take out: all of them, or only those one apply call added (the plugin then stays
    unless no configuration would name it any more). Where the record says apply chained it, and where this
    rollback is told to look."""
    recorded = (state or {}).get("cni") or {}
    conf_dirs = list(dict.fromkeys([*recorded.get("conf_dirs", []), *args.cni_conf_dir]))
    items = cni.plan_uninstall(conf_dirs, args.cni_bin_dir)
    if recorded.get("bin_dir") and recorded["bin_dir"] != args.cni_bin_dir:
        items += [i for i in cni.plan_uninstall(conf_dirs, recorded["bin_dir"]) if i["kind"] == "plugin"]
    if only is None:
        return items
    confs = [i for i in items if i["kind"] == "conf"]
    mine = [i for i in confs if i["path"] in only.cni_paths]
    return mine + [i for i in items if i["kind"] == "plugin"] if len(mine) == len(confs) else mine


def rollback(args: argparse.Namespace, only: Optional[Applied] = None) -> dict:
    """Undo badsum's workaround on this host (or, with `only`, what one apply call did)."""
    state, problem, record_path = read_record()
    if only is not None and only.new_record:
        only = None  # there was nothing of badsum's before that call: undoing it is undoing everything
    recorded = list((state or {}).get("veths", []))
    if only is None:
        recorded += guard.Files(str(state_dir())).changed()
    else:
        recorded = only.veths
    plan = _plan_restore([v for v in recorded if v.get("kind") != "vxlan"])
    if only is None:
        recorded_vxlan = list(((state or {}).get("vxlan") or {}).get("devices", []))
        recorded_vxlan += guard.Files(str(state_dir())).changed_vxlan()
    else:
        recorded_vxlan = only.vxlan
    vplan = vxlan.plan_restore(recorded_vxlan)
    cni_items = _cni_undo(args, only, state)
    mode = (state or {}).get("guard", {}).get("mode", "none")
    stop_unit = unit_is_ours() and (only is None or only.guard_started == "systemd")
    strays = stray_guards() if only is None or only.guard_started == "daemon" else []
    stop_daemon = bool(strays) or (mode == "daemon" and (only is None or only.guard_started == "daemon"))
    changes = [f"rx-checksumming off -> on: {v['ifname']} in {v['owner']}" for v, _, _ in plan.on]
    changes += [f"tx-checksum-ip-generic off -> on: {d['ifname']} (vxlan)" for d, _ in vplan.on]
    changes += [f"{'restore' if item['after'] is not None else 'remove'} {item['path']}" for item in cni_items]
    if stop_unit:
        changes.append(f"stop, disable and remove {UNIT}")
    if stop_daemon:
        changes.append("stop the guard daemon")
    if problem:
        changes.append(f"remove the unusable remediation record ({problem})")
    elif state is not None and only is None:
        changes.append(f"remove the remediation record {record_path}")
    diff = [file_diff(item) for item in cni_items]
    if stop_unit:
        diff.append(file_diff({"path": str(UNIT_PATH), "before": _read(str(UNIT_PATH)), "after": None}))
    if plan.on:
        diff.append(_veth_diff([v for v, _, _ in plan.on], "off", "on"))
    if vplan.on:
        diff.append(_vxlan_diff([d for d, _ in vplan.on], "off", "on"))
    summary = {
        "gone": [v["ifname"] for v in plan.gone],
        "turned_on_since": [v["ifname"] for v in plan.turned_on],
        "left_off_unsure": [v["ifname"] for v in plan.unsure],
        "vxlan_gone": [d["ifname"] for d in vplan.gone],
        "vxlan_turned_on_since": [d["ifname"] for d in vplan.turned_on],
    }
    if state is None and not problem and not changes:
        return {
            "changed": False,
            "changes": [],
            "msg": "nothing to roll back: no remediation and nothing of badsum's on this host",
            **summary,
        }
    if state is None and only is None:
        summary["msg"] = (
            "no usable record: badsum's guard, unit and CNI entries found by their marks; "
            "container veths left as they are"
        )
    if args.check:
        return {"changed": bool(changes), "changes": changes, "diff": diff, "check_mode": True, **summary}
    # The guard first: it would turn the restored veths off again.
    if stop_unit:
        stop_guard("systemd")
    if stop_daemon:
        stop_guard("daemon")
    if only is None and (stop_unit or stop_daemon):
        # What the guard turned off until it stopped: the list read above may be a pass behind.
        plan = _plan_restore(list((state or {}).get("veths", [])) + guard.Files(str(state_dir())).changed())
    cni.apply(cni_items)
    _restore(plan)
    vxlan.restore(vplan)
    if only is None:
        remove_state_dir(record_path.parent)
        if record_path.parent != state_dir():
            remove_state_dir()
    changes = [c for c in changes if not c.startswith(("rx-checksumming", "tx-checksum-ip-generic"))]
    changes += [f"rx-checksumming off -> on: {v['ifname']} in {v['owner']}" for v, _, _ in plan.on]
    changes += [f"tx-checksum-ip-generic off -> on: {d['ifname']} (vxlan)" for d, _ in vplan.on]
    summary["gone"] = [v["ifname"] for v in plan.gone]
    summary["vxlan_gone"] = [d["ifname"] for d in vplan.gone]
    return {"changed": bool(changes), "changes": changes, "diff": diff, **summary}


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


def _wait_rx_off(box: Throwaway, ifname: str, wait: float) -> Optional[float]:
    """Seconds until rx-checksumming went off on the device, or None if it stayed on."""
    start = time.monotonic()
    while time.monotonic() - start < wait:
        with netlink.inside(box.ref, expect=box.inode):
            if not netlink.rx_checksumming(ifname):
                return time.monotonic() - start
        time.sleep(0.002)
    return None


def new_containers(args: argparse.Namespace) -> List[dict]:
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
    state, problem, _path = read_record()
    scope = containers.own_cgroup()
    inv = containers.inventory(scope)
    problems = [
        f"{v['ifname']} in {v['owner']} still has rx-checksumming on" for v in inv["container_veths_rx_on_list"]
    ]
    if inv["container_veths_rx_on"] > len(inv["container_veths_rx_on_list"]):
        problems.append(f"{inv['container_veths_rx_on']} container veths in all still have rx-checksumming on")
    mode = (state or {}).get("guard", {}).get("mode", "none")
    gap = guard_gap(mode) if state is not None and mode != "none" else None
    if state is None:
        problems.append(f"no remediation is recorded on this host{f' ({problem})' if problem else ''}")
    elif gap:
        when, why = gap
        problems.append(f"containers created {when} would come up with rx on: {why}")
    if (state or {}).get("vxlan", {}).get("guard"):
        emulated = bool(state["vxlan"].get("emulate_bug"))
        found = vxlan.audit(emulate_bug=emulated)["devices"]
        still = [d["ifname"] for d in found if d["affected"] and d["tx_csum_generic"] != "off"]
        problems += [f"{name} (vxlan) still has tx-checksum-ip-generic on" for name in still]
    veth = state is None or bool(state.get("veth", True))  # False: the second hazard's workaround only
    if not veth:
        problems = [p for p in problems if "rx-checksumming on" not in p]
    cni_status = cni.status(args.cni_conf_dir, args.cni_bin_dir)
    if veth:
        # False: a list that can chain and does not; a string says why one cannot (left to the guard).
        problems += [f"{p} does not chain {cni.PLUGIN}" for p, ok in cni_status["conflists"].items() if ok is False]
        if any(ok is True for ok in cni_status["conflists"].values()) and not cni_status["plugin_installed"]:
            problems.append(f"{cni_status['plugin']} is missing or not the kit's")
    checks = new_containers(args) if args.new_container and veth else []
    problems += [f"a new veth ({c['how']}) kept rx on for {args.wait:g} s" for c in checks if c["seconds"] is None]
    return {
        "changed": False,
        "ok": not problems,
        "problems": problems,
        **({"msg": "; ".join(problems)} if problems else {}),
        "container_veths": inv["container_veths"],
        "new_containers": checks,
        "guard": mode,
        "cni": cni_status,
    }


def rollout(args: argparse.Namespace) -> dict:
    """Audit; on an exposed host, apply, verify and audit again; put back what this call did when that fails.

    A failed step fails the call, with what was found and what was put back:
    the batch counts the host as failed, and the host is as it was before.
    """
    result: Dict[str, object] = {"changed": False, "before": audit.show(args), "apply": None, "verify": None}
    before = result["before"]
    if before["risk"] == "obsolete-workaround" and args.retire:
        undone = rollback(args)
        action = f"retired the workaround ({len(undone['changes'])} changes): the kernel has the fix"
        # The veth fix says nothing of the second hazard: its part is put back at once, on its own record.
        if (
            not args.check
            and (before.get("vxlan") or {}).get("risk") == "mitigated"
            and vxlan.audit(emulate_bug=args.emulate_bug)["risk"] in vxlan.MODES[args.vxlan]
        ):
            result["apply"] = apply(args, veths_too=False)
            action += "; the VXLAN workaround kept"
        after = audit.show(args, probed=before["probe"]) if not args.check else before
        return {
            **result,
            "changed": undone["changed"],
            "rollback": undone,
            "action": action,
            "after": after,
            "diff": undone.get("diff", []),
        }
    veths_too = before["risk"] == "exposed"
    second = (before.get("vxlan") or {}).get("risk", "unknown")
    if not veths_too and second not in vxlan.MODES[args.vxlan]:
        return {**result, "action": f"left alone: {before['risk']}, vxlan {second}", "after": before}
    applied = Applied()
    try:
        result["apply"] = apply(args, applied, veths_too=veths_too)
        result["changed"] = result["apply"]["changed"]
        if args.check:
            return {
                **result,
                "action": f"would make {len(result['apply']['changes'])} changes",
                "diff": result["apply"]["diff"],
            }
        result["verify"] = verify(args)
        result["after"] = audit.show(args, probed=before["probe"])
        problems = list(result["verify"]["problems"])
        if result["after"]["risk"] == "exposed" and veths_too:
            problems.append(f"still exposed: {result['after']['reason']}")
        after_vxlan = result["after"].get("vxlan") or {}
        if second in vxlan.MODES[args.vxlan] and after_vxlan.get("risk") in ("exposed", "latent", "unknown"):
            problems.append(f"still exposed to the VXLAN hazard: {after_vxlan.get('reason')}")
    except HostError as exc:
        problems = [str(exc)]
    action = f"remediated ({len(result['apply']['changes'])} changes)" if result["apply"] else "failed"
    if not problems:
        return {**result, "action": action, "diff": result["apply"]["diff"]}
    # Put back what this call did: the host is as it was before, and the batch counts it as failed.
    try:
        result["put_back"] = rollback(args, only=applied)
        result["after"] = audit.show(args, probed=before["probe"])
        back = "put back as it was"
    except HostError as exc:
        back = f"could NOT be put back: {exc}"
    return {**result, "failed": True, "msg": "; ".join(problems) + f" - {back}", "action": f"failed, {back}"}


def build_parser() -> Parser:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", parser_class=Parser)
    sub.required = True  # add_subparsers(required=) is Python 3.7
    ro = sub.add_parser("rollout", help="this host's part of a rollout: audit, apply, verify, audit again")
    a = sub.add_parser("apply", help="rx off on container veths, and the guard and CNI plugin for later ones")
    v = sub.add_parser("verify", help="is the workaround in place (read-only, but for --new-container)")
    r = sub.add_parser("rollback", help="undo what badsum did")
    for parser in (ro, a, r):
        parser.add_argument("--check", action="store_true", help="say what would change (a diff), change nothing")
    for parser in (ro, a):
        parser.add_argument("--guard", choices=["auto", "daemon", "systemd", "none"], required=True)
        parser.add_argument("--interval", type=float, required=True, help="the guard's pass without link events (s)")
        parser.add_argument(
            "--vxlan",
            choices=list(vxlan.MODES),
            required=True,
            help="the VXLAN classes whose devices get tx-checksum-ip-generic off (never: audit only)",
        )
    for parser in (ro, v):
        parser.add_argument("--new-container", action="store_true", help="also make veths the runtimes' ways")
        parser.add_argument("--wait", type=float, required=True, help="how long a new veth may keep rx on, seconds")
    ro.add_argument(
        "--retire", action="store_true", help="on a host whose kernel has the fix, roll the workaround back"
    )
    for parser in (ro, a, v, r):
        audit.add_options(parser, probe=parser in (ro, r), publish=parser in (ro, r))
    r.add_argument("--audit", action="store_true", help="audit the host after the rollback")
    sub.add_parser("show", help="the record of what apply changed")
    return p


def run(args: argparse.Namespace) -> dict:
    if getattr(args, "interval", 1) <= 0:
        raise HostError(f"--interval must be above 0 (got {args.interval})")
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
    state, problem, path = read_record()
    return {"recorded": state is not None, "state": state or {}, "dir": str(path.parent), "problem": problem}
