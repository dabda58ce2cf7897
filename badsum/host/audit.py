"""Read-only audit of one host for the veth checksum bug: kernel, probe, runtimes, veths, risk.

    audit show [--no-probe] [--emulate-bug] [--cni-conf-dir DIR ...] [--cni-bin-dir DIR]

Changes nothing on the host (the probe's namespaces are its own and vanish
with it). The risk class, with its reason:

    patched         the kernel has the fix (the probe says so; or the release
                    table, when the probe could not run)
    not-applicable  the kernel lacks it (or may), but nothing receives through
                    a container veth: no runtime and no container namespace
    exposed         a container veth receives with rx-checksumming on, or a
                    runtime will create new ones unprotected (no guard running,
                    or a systemd guard that is not enabled: gone after a reboot)
    mitigated       every container veth has rx off, and the guard covers new ones
"""

from __future__ import annotations

import argparse
import os
import time

from . import cni, containers, kernels, metrics, persistence, probe
from .common import HostError, Parser
from .guard import Files, status

CNI_CONF_DIR = "/etc/cni/net.d"


def vulnerability(kernel: dict, probed: dict | None) -> tuple[str, str]:
    """(yes|no|unknown, how that was decided): the probe's behaviour wins over the release table."""
    if probed and probed["verdict"] in ("vulnerable", "fixed"):
        kind = f"probe ({probed['kind']})"
        return ("yes" if probed["verdict"] == "vulnerable" else "no"), f"{kind}: {probed['reason']}"
    table = {"fixed": "no", "unfixed": "yes"}.get(kernel["status"], "unknown")
    return table, f"release table: {kernel['reason']}"


def risk(
    vulnerable: str,
    veths: list[dict],
    runtimes: dict,
    guard_gap: tuple[str, str] | None,
    cni_lists: dict,
) -> tuple[str, str]:
    """The host's class and why; guard_gap: when new containers would escape the guard, and why (persistence)."""
    container = [v for v in veths if v["role"] == "container"]
    on = [v for v in container if v["rx"] == "on"]
    if vulnerable == "no":
        return "patched", "the kernel has the fix: rx-checksumming on a veth cannot let bad data in"
    if not runtimes and not container and not cni_lists:
        return "not-applicable", "no container runtime, CNI configuration or container namespace on this host"
    maybe = "" if vulnerable == "yes" else " (the kernel may lack the fix: treated as lacking it)"
    if on:
        names = ", ".join(f"{v['ifname']} ({v['owner']})" for v in on[:5]) + (" ..." if len(on) > 5 else "")
        return "exposed", f"{len(on)} of {len(container)} container veths receive with rx on: {names}{maybe}"
    made_by = ", ".join(runtimes) or "CNI"
    if guard_gap:
        when, why = guard_gap
        return "exposed", f"containers created {when} ({made_by}) come up with rx on: {why}{maybe}"
    return "mitigated", f"all {len(container)} container veths have rx off and the guard covers new ones{maybe}"


def show(args: argparse.Namespace, probed: dict | None = None) -> dict:
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
    record = persistence.load_state()
    guard_info = status(Files(str(persistence.state_dir())))
    mode = (record or {}).get("guard", {}).get("mode")
    gap = persistence.guard_gap(mode)
    cni_status = cni.status(args.cni_conf_dir or [CNI_CONF_DIR], args.cni_bin_dir)
    if cni_status["conflists"] or cni_status["plain_confs"]:
        inv["runtimes"]["cni"] = len(cni_status["conflists"]) + len(cni_status["plain_confs"])
    klass, reason = risk(vulnerable, inv["veths"], inv["runtimes"], gap, cni_status["conflists"])
    container = [v for v in inv["veths"] if v["role"] == "container"]
    return {
        "host": os.uname().nodename,
        "kernel": kernel,
        "probe": probed,
        "vulnerable": vulnerable,
        "decided_by": decided_by,
        "risk": klass,
        "reason": reason,
        "container_veths": len(container),
        "container_veths_rx_on": sum(v["rx"] == "on" for v in container),
        "runtimes": inv["runtimes"],
        "cni": cni_status,
        "guard": {**guard_info, "running": gap != persistence.GUARD_DOWN, "mode": mode, "gap": gap and gap[1]},
        "remediation": {"recorded": record is not None, "at": (record or {}).get("recorded_at")},
        "scope": inv["scope"],
        "namespaces": inv["namespaces"],
        "veths": inv["veths"],
        "devices": inv["devices"],
        "seconds": round(time.perf_counter() - started, 3),
    }


def add_options(parser: argparse.ArgumentParser, probe: bool = True) -> None:
    """What an audit needs to know; remediate's actions take the same options."""
    if probe:
        parser.add_argument("--no-probe", dest="probe", action="store_false", help="judge the kernel by the table")
        parser.add_argument("--emulate-bug", action="store_true", help="probe with the veth-bug emulator (labs)")
    parser.add_argument(
        "--cni-conf-dir",
        action="append",
        default=[],
        help=f"a CNI configuration directory (repeatable; default {CNI_CONF_DIR})",
    )
    parser.add_argument("--cni-bin-dir", default="/opt/cni/bin", help="where the runtime finds CNI plugins")
    parser.add_argument("--textfile-dir", type=metrics.textfile_dir, default="", help="write badsum.prom there too")


def build_parser() -> Parser:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    add_options(sub.add_parser("show", help="audit this host (read-only)"))
    return p


def run(args: argparse.Namespace) -> dict:
    return metrics.publish(args, "audit", show(args))
