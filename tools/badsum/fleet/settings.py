"""The fleet playbooks' settings and inventory, checked before any host is touched; the fleet run's plan.

Like badsum.settings for the experiment: every badsum_fleet_* variable is
checked for type, range and choices, every badsum_* name must be one badsum
knows, and the inventory is checked for its shape (a group `fleet`; a canary
that can run the experiment's vulnerable cell). The defaults live in
roles/badsum_fleet/defaults/main.yml only, the choices in the role's
meta/argument_specs.yml (read through badsum.specs).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from badsum import settings as experiment
from badsum import specs, topologies
from badsum.fleet import stats
from badsum.settings import Checked, Invalid, as_bool, as_choice, as_int, as_number

P = "badsum_fleet_"
GROUP = "fleet"


# The second hazard's topology record names its bug (issue 24: `bug: vxlan-nat`); the 2016 ones name none.
VXLAN_BUG = "vxlan-nat"


def hazard(topology: str) -> str:
    """Which of the fleet's two hazards a topology's vulnerable cell shows: "veth" (2016) or "vxlan" (2020)."""
    record = topologies.catalogue().get(topology)
    return "vxlan" if getattr(record, "bug", "") == VXLAN_BUG else "veth"


def canary_topologies() -> tuple[str, ...]:
    """The canary cell must be one whose vulnerable cell goes wrong when unprotected: corrupt data delivered into a
    container (2016), or valid data dropped (2020, vxlan-nat). For vxlan-nat the canary is the cell's host A, its
    client - where the offload on the cell's vxlan device and NAT are, what remediation changes - and the server is
    the host that names it as its client (canary_cell_hosts). On the emulated fleet (badsum_fleet_emulate_bug) the
    kernel has ea64d8d6c675: the audit, the record and the guard then treat it as missing (host/fleet/vxlan.py), as
    the cell's emulator does, so the guard switches the cell's own zero-checksum device off too."""
    return tuple(
        t.name
        for t in topologies.catalogue().values()
        if (t.exposed == "always" and t.container != "none") or t.bug == VXLAN_BUG
    )


def canary_cell_hosts(
    values: Mapping[str, Any], groups: Mapping[str, list[str]], hostvars: Mapping[str, Mapping[str, Any]]
) -> tuple[str, str, str]:
    """(canary, the cell's server, a problem or ""): the canary is the cell's server (2016) or its client (2020).

    Unnamed (badsum_fleet_canary: ""), it is the first host of group fleet that can be that: a server (veth), or
    a server's client (vxlan). Either way the other end of the pair need not be in group fleet.
    """
    fleet, servers = list(groups.get(GROUP, [])), list(groups.get("servers", []))
    named = values.get(P + "canary") or ""
    if hazard(values[P + "canary_topology"]) == "veth":
        canary = named or next((h for h in fleet if h in servers), "")
        return canary, canary, ""
    clients = {s: experiment.client_of(groups, hostvars, s) for s in servers}
    if named:
        server = next((s for s in servers if clients[s] == named), "")
        if not server and named in fleet:
            return (
                named,
                "",
                (
                    f"{P}canary={named!r}: the {values[P + 'canary_topology']} cell's canary is its host A, the client "
                    "of a server: no host of group servers has it as its badsum_experiment_client"
                ),
            )
        return named, server, ""
    server = next((s for h in fleet for s in servers if clients[s] == h), "")
    return clients[server] if server else "", server, ""


BATCH_RE = re.compile(r"^([1-9]\d{0,5})$|^([1-9]\d?|100)%$")


def _batches(name: str, value: Any) -> list[int | str]:
    allowed = 'a list of batch sizes, each a host count or a percentage, e.g. ["10%", "30%", "100%"]'
    if not isinstance(value, (list, tuple)) or not value:
        raise Invalid(name, value, allowed)
    out: list[int | str] = []
    for item in value:
        text = str(item).strip()
        if isinstance(item, bool) or not BATCH_RE.match(text):
            raise Invalid(name, value, f"{item!r} is not a count (1 or more) or a percentage (1%-100%); {allowed}")
        out.append(text if text.endswith("%") else int(text))
    return out


def _abs_path(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/") or "\n" in value:
        raise Invalid(name, value, "allowed: an absolute path")
    return value.rstrip("/") or "/"


def _abs_paths(name: str, value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)) or not value:
        raise Invalid(name, value, 'allowed: a list of absolute paths, e.g. ["/etc/cni/net.d"]')
    return [_abs_path(name, v) for v in value]


def _textfile_dir(name: str, value: Any) -> str:
    # Checked again on each host (badsum.host.shared.metrics: it must exist there, root's alone).
    if value == "":
        return ""
    if not isinstance(value, str) or not value.startswith("/") or "\n" in value:
        raise Invalid(name, value, 'allowed: "" (off) or an absolute path: node_exporter\'s textfile directory')
    return value.rstrip("/") or "/"


def _host(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(name, value, 'allowed: a host of group fleet, or "" (the first one that is in group servers)')
    return value


def _waiver(name: str, value: Any) -> str:
    if not isinstance(value, str) or "\n" in value or len(value) > 200:
        raise Invalid(name, value, 'allowed: "" or one line (200 characters at most): why there is no canary cell')
    return value.strip()


def _run_id(name: str, value: Any) -> str:
    if value == "":
        return ""
    if not isinstance(value, str) or not experiment.RUN_ID_RE.match(value):
        raise Invalid(name, value, "allowed: empty (one is made from the time) or 1-64 letters, digits, '.', '_', '-'")
    return value


CHECKS = {
    "probe": as_bool,
    "emulate_bug": as_bool,
    "cni_conf_dirs": _abs_paths,
    "cni_bin_dir": _abs_path,
    "batches": _batches,
    "max_fail_percentage": lambda n, v: as_int(n, v, 0, 100, "failed hosts a batch may have"),
    "guard": lambda n, v: as_choice(n, v, specs.choices(n)),
    "guard_interval": lambda n, v: as_number(n, v, 0, 3600, "seconds", lo_open=True),
    "verify_new_container": as_bool,
    "verify_wait": lambda n, v: as_number(n, v, 0, 60, "seconds", lo_open=True),
    "canary_cell": as_bool,
    "canary_cell_waiver": _waiver,
    "canary": _host,
    "canary_topology": lambda n, v: as_choice(n, v, canary_topologies(), "a routed container path, or vxlan-nat"),
    "retire": as_bool,
    "vxlan_remediation": lambda n, v: as_choice(n, v, specs.choices(n)),
    "transport": lambda n, v: as_choice(n, v, specs.choices("badsum_fleet_transport")),
    "python": _abs_path,
    "results_dir": _abs_path,
    "run_id": _run_id,
    "textfile_dir": _textfile_dir,
}
# Settings a host of the fleet may have its own value of (inventory host or group variables).
PER_HOST = ("transport", "python")


def fleet_settings(raw: Mapping[str, Any], names: Iterable[str] | None = None) -> Checked:
    """The fleet's settings; `names`: every badsum_* variable the run was given (default: raw's)."""
    c = Checked()
    c.problems += specs.unknown(raw if names is None else names, also=stats.KEYS)
    for name, check in CHECKS.items():
        c.take(P + name, raw, check)
    if c.values.get(P + "canary_cell") is False and not c.values.get(P + "canary_cell_waiver"):
        c.problems.append(
            f"{P}canary_cell=false: a rollout without its proof on the canary needs a second, explicit setting - "
            f'{P}canary_cell_waiver="why" (recorded in the run\'s plan and report)'
        )
    return c


def plan(
    values: Mapping[str, Any],
    groups: Mapping[str, list[str]],
    hostvars: Mapping[str, Mapping[str, Any]],
    play_vars: Mapping[str, Any],
    playbook: str,
) -> tuple[dict, list[str]]:
    """The hosts, the canary and its cell, and where the run's files go."""
    fleet = list(groups.get(GROUP, []))
    if not fleet:
        return {}, [
            f"the inventory has no hosts in group {GROUP}: put the hosts to audit or remediate in it "
            "(inventories/examples/fleet/hosts.yml shows how)"
        ]
    problems: list[str] = []
    out: dict[str, Any] = {"hosts": fleet, "canary": "", "canary_server": "", "canary_hosts": []}
    for host in fleet:
        for name in PER_HOST:
            if P + name in hostvars.get(host, {}):
                try:
                    CHECKS[name](f"{P}{name} (on {host})", hostvars[host][P + name])
                except Invalid as exc:
                    problems.append(str(exc))
    if playbook == "remediate" and values.get(P + "canary_cell"):
        canary, server, problem = canary_cell_hosts(values, groups, hostvars)
        if not canary:
            problems.append(
                f"{P}canary_cell=true, but no host of group {GROUP} is in group servers with a client"
                + (" (for vxlan-nat: the client of one)" if hazard(values[P + "canary_topology"]) == "vxlan" else "")
                + f": name one with {P}canary (and give it badsum_experiment_client), or set {P}canary_cell=false"
            )
        elif canary not in fleet:
            problems.append(f"{P}canary={canary!r}: not a host of group {GROUP}")
        elif problem:
            problems.append(problem)
        else:
            cell_settings = {
                "badsum_experiment_topologies": [values[P + "canary_topology"]],
                "badsum_experiment_conditions": ["vulnerable"],
                "badsum_experiment_servers": [server],
                "badsum_experiment_spread": False,
                "badsum_experiment_backend": play_vars.get("badsum_experiment_backend", "ebpf"),
                "badsum_experiment_port": play_vars.get("badsum_experiment_port"),
            }
            cell_plan, cell_problems = experiment.plan(play_vars, groups, hostvars, cell_settings)
            problems += [f"the canary cell on {canary}: {p}" for p in cell_problems]
            if cell_plan:
                out.update(
                    canary=canary,
                    canary_server=server,
                    canary_hosts=cell_plan["hosts"],
                    canary_hazard=hazard(values[P + "canary_topology"]),
                )
    if problems:
        return {}, problems
    results = Path(values[P + "results_dir"])
    run_id = values[P + "run_id"] or f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{playbook}"
    n, base = 1, run_id
    while not values[P + "run_id"] and (results / run_id).exists():
        n += 1
        run_id = f"{base}-{n}"
    out.update(playbook=playbook, run_id=run_id, run_dir=str(results / run_id), settings=dict(values))
    return out, []
