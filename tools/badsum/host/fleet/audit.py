"""Read-only audit of one host for the veth checksum bug: kernel, probe, runtimes, veths, risk.

    audit show [--no-probe] [--emulate-bug] --cni-conf-dir DIR [...] --cni-bin-dir DIR --textfile-dir DIR|""

The CNI directories and the textfile directory have no defaults here: the
fleet role passes them on every call, from its defaults/main.yml.

Changes nothing on the host (the probe's namespaces are its own and vanish
with it). The risk class, with its reason:

    exposed              a container veth receives with rx-checksumming on, or a
                         runtime will create new ones unprotected (no guard running,
                         or a systemd guard that is not enabled: gone after a reboot)
    mitigated            every container veth has rx off, and the guard covers new ones
    obsolete-workaround  the kernel has the fix, and the host still carries badsum's
                         workaround (after a kernel upgrade): `remediate.yml -e
                         badsum_fleet_retire=true` or rollback.yml takes it away
    patched              the kernel has the fix (the probe says so; or the release
                         table, when the probe could not run)
    not-applicable       the kernel lacks it (or may), but nothing receives through
                         a container veth: no runtime and no container namespace

The second hazard, NAT and a VXLAN overlay's outer UDP checksum (2020), has
a class of its own beside this one: `vxlan.risk` (vxlan.py: exposed, latent,
mitigated, not-affected, not-applicable). The two are independent: a host
may be patched for the first and exposed to the second.
"""

import argparse
import os
import time
from typing import Dict, List, Optional, Tuple

from ..shared import kernels, metrics
from ..shared.common import HostError, Parser, shown
from . import cni, containers, persistence, probe, vxlan
from .guard import Files, status

RISKS = ("exposed", "obsolete-workaround", "mitigated", "patched", "not-applicable")


def vulnerability(kernel: dict, probed: Optional[dict]) -> Tuple[str, str]:
    """(yes|no|unknown, how that was decided): the probe's behaviour wins over the release table."""
    if probed and probed["verdict"] in ("vulnerable", "fixed"):
        kind = f"probe ({probed['kind']})"
        return ("yes" if probed["verdict"] == "vulnerable" else "no"), f"{kind}: {probed['reason']}"
    table = {"fixed": "no", "unfixed": "yes"}.get(kernel["status"], "unknown")
    return table, f"release table: {kernel['reason']}"


class Found:
    """What the audit found that the risk class is decided from."""

    def __init__(
        self,
        container_veths: int,
        rx_on: List[dict],
        rx_on_total: int,
        runtimes: Dict[str, int],
        guard_gap: Optional[Tuple[str, str]],
        cni_lists: dict,
        workaround: List[str],
    ) -> None:
        self.container_veths, self.rx_on, self.rx_on_total = container_veths, rx_on, rx_on_total
        self.runtimes, self.guard_gap, self.cni_lists, self.workaround = runtimes, guard_gap, cni_lists, workaround


def risk(vulnerable: str, found: Found) -> Tuple[str, str]:
    """The host's class and why; found.guard_gap: when new containers would escape the guard, and why."""
    if vulnerable == "no":
        if found.workaround:
            return (
                "obsolete-workaround",
                "the kernel has the fix, and badsum's workaround is still here ("
                + ", ".join(found.workaround)
                + "): remediate with badsum_fleet_retire=true, or roll back, to take it away",
            )
        return "patched", "the kernel has the fix: rx-checksumming on a veth cannot let bad data in"
    if not found.runtimes and not found.container_veths and not found.cni_lists:
        return "not-applicable", "no container runtime, CNI configuration or container namespace on this host"
    maybe = "" if vulnerable == "yes" else " (the kernel may lack the fix: treated as lacking it)"
    if found.rx_on_total:
        names = ", ".join(f"{v['ifname']} ({v['owner']})" for v in found.rx_on[:5])
        more = " ..." if found.rx_on_total > 5 else ""
        return (
            "exposed",
            f"{found.rx_on_total} of {found.container_veths} container veths receive with rx on: {names}{more}{maybe}",
        )
    made_by = ", ".join(found.runtimes) or "CNI"
    if found.guard_gap:
        when, why = found.guard_gap
        return "exposed", f"containers created {when} ({made_by}) come up with rx on: {why}{maybe}"
    return "mitigated", f"all {found.container_veths} container veths have rx off and the guard covers new ones{maybe}"


def workaround_here(record: Optional[dict], problem: Optional[str], cni_status: dict) -> List[str]:
    """What of badsum's workaround this host carries, each part found by badsum's own mark."""
    parts = []
    if record is not None and not record.get("veth", True):
        return parts  # a record of the second hazard's workaround only: nothing of the veth one (vxlan.py)
    if record is not None:
        parts.append("a remediation record")
    elif problem:
        parts.append(f"a remediation record that cannot be used ({problem})")
    if persistence.unit_is_ours():
        parts.append(f"the guard's unit {persistence.UNIT}")
    if persistence.guard_running("daemon") or persistence.stray_guards():
        parts.append("a guard daemon")
    chained = [p for p, ok in cni_status["conflists"].items() if ok is True]
    if chained:
        parts.append(f"{cni.PLUGIN} in {len(chained)} CNI configuration files")
    elif cni_status.get("plugin_is_badsums"):
        parts.append(f"the {cni.PLUGIN} plugin")
    return parts


def show(args: argparse.Namespace, probed: Optional[dict] = None) -> dict:
    """The audit; `probed` is a probe already made in this call (the kernel has not changed since)."""
    started = time.perf_counter()
    release = os.uname().release
    kernel = {"release": release, **kernels.classify(release)}
    if probed is None and args.probe:
        try:
            probed = probe.run_probe(args.emulate_bug)
        except HostError as exc:
            probed = {"verdict": "inconclusive", "kind": "real", "reason": f"the probe could not run: {exc}"}
    vulnerable, decided_by = vulnerability(kernel, probed)
    scope = containers.own_cgroup()
    inv = containers.inventory(scope)
    record, problem, _path = persistence.read_record()
    guard_info = status(Files(str(persistence.state_dir())))
    mode = (record or {}).get("guard", {}).get("mode")
    gap = persistence.guard_gap(mode)
    cni_status = cni.status(args.cni_conf_dir, args.cni_bin_dir)
    if cni_status["conflists"] or cni_status["plain_confs"]:
        inv["runtimes"]["cni"] = len(cni_status["conflists"]) + len(cni_status["plain_confs"])
    carried = workaround_here(record, problem, cni_status)
    # Why the chained plugin left a pod's rx on (not a veth, a fault): the guard's next pass covers a veth.
    cni_status["left_alone"] = [r for log in cni_status["logs"] for r in cni.read_log(log, limit=20)][-20:]
    found = Found(
        inv["container_veths"],
        inv["container_veths_rx_on_list"],
        inv["container_veths_rx_on"],
        inv["runtimes"],
        gap,
        cni_status["conflists"],
        carried,
    )
    klass, reason = risk(vulnerable, found)
    try:
        hazard = vxlan.audit(probe=args.probe, emulate_bug=args.emulate_bug)
    except HostError as exc:
        hazard = {"risk": "unknown", "reason": f"the VXLAN audit could not run: {exc}", "devices": []}
    return {
        "host": shown(os.uname().nodename),
        "kernel": kernel,
        "probe": probed,
        "vulnerable": vulnerable,
        "decided_by": decided_by,
        "risk": klass,
        "reason": reason,
        "container_veths": inv["container_veths"],
        "container_veths_rx_on": inv["container_veths_rx_on"],
        "runtimes": inv["runtimes"],
        "cni": cni_status,
        "guard": {**guard_info, "running": gap != persistence.GUARD_DOWN, "mode": mode, "gap": gap and gap[1]},
        "remediation": {
            "recorded": record is not None,
            "at": (record or {}).get("recorded_at"),
            **({"problem": problem} if problem else {}),
        },
        "workaround": carried,
        "scope": inv["scope"],
        "namespaces": inv["namespaces"],
        "namespaces_total": inv["namespaces_total"],
        "namespaces_unreadable": inv["namespaces_unreadable"],
        "veths": inv["veths"],
        "veths_total": inv["veths_total"],
        "devices": inv["devices"],
        "vxlan": hazard,
        "seconds": round(time.perf_counter() - started, 3),
    }


def add_options(parser: argparse.ArgumentParser, probe: bool = True, publish: bool = True) -> None:
    """What an audit needs to know; remediate's actions take the same options (publish: those that write badsum.prom).

    Required, every one: the fleet passes them on every call, from the one
    place their defaults live (roles/badsum_fleet/defaults/main.yml).
    """
    if probe:
        parser.add_argument("--no-probe", dest="probe", action="store_false", help="judge the kernel by the table")
        parser.add_argument("--emulate-bug", action="store_true", help="probe with the veth-bug emulator (labs)")
    parser.add_argument(
        "--cni-conf-dir", action="append", required=True, help="a CNI configuration directory (repeatable)"
    )
    parser.add_argument("--cni-bin-dir", required=True, help="where the runtime finds CNI plugins")
    if publish:
        parser.add_argument(
            "--textfile-dir", type=metrics.textfile_dir, required=True, help='write badsum.prom there too ("": off)'
        )


def build_parser() -> Parser:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", parser_class=Parser)
    sub.required = True  # add_subparsers(required=) is Python 3.7
    add_options(sub.add_parser("show", help="audit this host (read-only)"))
    return p


def run(args: argparse.Namespace) -> dict:
    return metrics.publish(args, "audit", show(args))
