"""The topology catalogue: every fact about a topology, declared once, in its role.

A topology is the way traffic reaches the server in one of the incident's
rows (bare, Mesos, Kubernetes, Docker...). Each has a role of its own,
roles/badsum_topology_<name>/, whose meta/topology.yml is its one record:

    name         the topology's name (badsum_experiment_topologies, the reports)
    row          its row in the outcome table
    summary      one line: what it stands for (the host module says, for
                 each cell, the exact path its traffic took)
    module       its host module, tools/badsum/host/experiment/topology/<module>.py
    mode         what that module is told (one module may serve two topologies)
    options      host-module option -> the variable that gives it on the server
    inventory    the server's inventory variables it needs (checked up front)
    container    what runs the server: none, mesos, cni or docker (what an
                 emulated fleet or a workshop starts when asked for it)
    exposed      on a kernel without the fix, does corrupt data reach the
                 server: always, never, or without-conntrack-checksum (the
                 path is guarded by conntrack's checksum check only)
    client_route the route host A needs to a container prefix: [prefix
                 variable, via variable], or [] (what cleanup takes away)
    bug          which incident's bug the row shows: veth (2016: corrupt
                 data delivered; the condition acts on host B's container
                 veths) or vxlan-nat (2020: valid data dropped; the condition
                 acts on host A, whose NAT rewrites the outer VXLAN packets)
    client_side  does the topology have an end on host A too (an overlay):
                 the same host module wires it there with side=client, and
                 unwires it, around the server's side; only the 2020 bug's
                 cells take that step (a 2016 cell does not queue it)

Every other layer reads it: the settings (names, inventory), the incident's
table, the fleet's canary, the workshop, the VM table, molecule, the tests.
Adding a topology is adding a role with this record and a host module
(CONTRIBUTING.md).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import yaml

from badsum.paths import ROLES

RECORD = "meta/topology.yml"
SHARED = "badsum_topology_"  # the shared tasks' own variables (roles/badsum_topology/defaults/main.yml)
CONTAINERS = ("none", "mesos", "cni", "docker")
EXPOSED = ("always", "never", "without-conntrack-checksum")
BUGS = ("veth", "vxlan-nat")
# Each bug is its own incident, with its own outcome table (tools/badsum/analysis/incident.py).
INCIDENTS = {"veth": "2016", "vxlan-nat": "2020"}
# Where a kernel has the fix, the bug's conditions vulnerable and workaround are
# emulated: the eBPF program (tools/badsum/host/shared/programs/) and the end
# of the pair it acts on (the condition role's tasks).
EMULATORS = {"veth": ("vethbug", "server"), "vxlan-nat": ("vxlannat", "client")}
EMULATED_CONDITIONS = ("vulnerable", "workaround")
FIELDS = {
    "name": str,
    "row": int,
    "summary": str,
    "module": str,
    "mode": str,
    "options": dict,
    "inventory": list,
    "container": str,
    "exposed": str,
    "client_route": list,
    "bug": str,
    "client_side": bool,
}


class TopologyError(ValueError):
    """A record that cannot be used: names the file and the field."""


@dataclass(frozen=True)
class Topology:
    name: str
    row: int
    summary: str
    module: str
    mode: str
    options: dict[str, str]
    inventory: tuple[str, ...]
    container: str
    exposed: str
    client_route: tuple[str, ...]
    bug: str
    client_side: bool
    role: str

    @property
    def incident(self) -> str:
        return INCIDENTS[self.bug]

    def real_with_fix(self, condition: str) -> bool:
        """Whether the condition is measured for real on a kernel with this row's bug fixed.

        vulnerable and workaround are the kernel itself where it lacks the fix (2016: veth_xmit()'s
        two lines, 2020: udp_manip_pkt()'s zero-checksum test), patched is the kernel with it; the
        other way round a condition is the emulator's (vulnerable) or not meaningful (patched).
        The VM tier reads it to pick the lab kernel of each of its runs (tools/badsum/vm/real.py).
        """
        return condition == "patched"

    def expected(self, condition: str, conntrack_checksum: str = "") -> str:
        """The incident's verdict for this topology under a condition (never used to judge a cell)."""
        if self.bug == "vxlan-nat":  # 2020: NAT's wrong outer checksum made host B drop valid data
            return "valid-dropped" if condition == "vulnerable" else "clean"
        if condition != "vulnerable" or self.exposed == "never":
            return "clean"
        if self.exposed == "without-conntrack-checksum" and str(conntrack_checksum) != "0":
            return "clean"
        return "corrupt-delivered"


def _load(path: Path) -> Topology:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise TopologyError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise TopologyError(f"{path}: not a mapping")
    for field, kind in FIELDS.items():
        if not isinstance(data.get(field), kind):
            raise TopologyError(f"{path}: {field} must be a {kind.__name__} (got {data.get(field)!r})")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise TopologyError(f"{path}: unknown fields {', '.join(unknown)} (allowed: {', '.join(FIELDS)})")
    role = path.parents[1].name
    if role != "badsum_topology_" + data["name"].replace("-", "_"):
        raise TopologyError(f"{path}: name {data['name']!r} is not its role's ({role})")
    if data["container"] not in CONTAINERS:
        raise TopologyError(f"{path}: container must be one of {', '.join(CONTAINERS)}")
    if data["exposed"] not in EXPOSED:
        raise TopologyError(f"{path}: exposed must be one of {', '.join(EXPOSED)}")
    if data["bug"] not in BUGS:
        raise TopologyError(f"{path}: bug must be one of {', '.join(BUGS)}")
    if data["client_side"] and data["bug"] != "vxlan-nat":
        # The 2016 cells (roles/badsum_experiment/tasks/cell_veth.yml) wire host B's end alone.
        raise TopologyError(
            f"{path}: client_side is for the 2020 bug's overlays (bug vxlan-nat), not bug {data['bug']}"
        )
    if len(data["client_route"]) not in (0, 2):
        raise TopologyError(f"{path}: client_route must be [] or [prefix variable, via variable]")
    # An option comes from the server's inventory, or from the shared role's defaults (roles/badsum_topology).
    missing = sorted(v for v in set(data["options"].values()) - set(data["inventory"]) if not v.startswith(SHARED))
    if missing:
        raise TopologyError(f"{path}: options read {', '.join(missing)}, which inventory does not list")
    return Topology(
        **{**data, "inventory": tuple(data["inventory"]), "client_route": tuple(data["client_route"])}, role=role
    )


@functools.cache
def catalogue(roles: Path = ROLES) -> dict[str, Topology]:
    """Every topology, by name, in the order of the outcome table's rows."""
    found = sorted(map(_load, sorted(roles.glob(f"badsum_topology_*/{RECORD}"))), key=lambda t: (t.row, t.name))
    return {t.name: t for t in found}


def names() -> tuple[str, ...]:
    return tuple(catalogue())


def get(name: str) -> Topology:
    try:
        return catalogue()[name]
    except KeyError:
        raise TopologyError(f"no topology {name!r} (topologies: {', '.join(names())})") from None


def of_incident(incident: str) -> tuple[str, ...]:
    """The topologies whose rows make up one incident's table (2016 or 2020)."""
    return tuple(t.name for t in catalogue().values() if t.incident == incident)


def with_containers() -> tuple[str, ...]:
    """The topologies whose server runs in a container (what a workshop or an emulated fleet can start)."""
    return tuple(t.name for t in catalogue().values() if t.container != "none")


if __name__ == "__main__":  # `python -m badsum.topologies`: the names, one per line (make molecule)
    print("\n".join(names()))
