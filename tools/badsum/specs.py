"""The roles' interface as the roles declare it: every setting's default, type and choices.

One value, one place. A setting's default lives in its role's
defaults/main.yml (the commented interface); its type, choices and
description in the role's meta/argument_specs.yml. Everything else that
needs them - badsum.settings (the experiment, the lab, the workshop),
badsum.fleet.settings, the badsum.kit action plugins - reads them here
instead of keeping a copy. Read once per process (badsum.kit.preload reads
them before Ansible forks its workers, which then share them).

The other half of this module is the set of every `badsum_*` variable badsum
knows: the roles' options and defaults, the variables an inventory gives a
host (documented below, and in docs/guide/real-hosts.md), the few a playbook reads, and
the facts the kit sets. A name outside it is refused, with the closest one
badsum knows (`unknown`), before anything changes.

    specs.role("badsum_fleet").defaults            the role's defaults/main.yml
    specs.role("badsum_fleet").entry_points        entry point -> option -> its spec
    specs.option("badsum_experiment_rate")         an option's spec (type, choices...)
    specs.choices("badsum_experiment_pattern")     ('random', 'stuck-bit')
    specs.default("badsum_fleet_guard_interval")   60
    specs.known()                                  every badsum_* name badsum knows
    specs.unknown(names, where="", also=())        a problem for each name it does not
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from badsum import paths

PREFIX = "badsum_"

# The variables an inventory gives a host (or the lab writes into the one it
# makes), which no role's defaults carry. docs/guide/real-hosts.md documents
# them for users; the docs' variables reference lists these tables (badsum/docs.py).
INVENTORY = {
    "badsum_embedded_lab": "the inventory is the embedded lab's (inventories/local): its settings apply",
    "badsum_lib_dir": "where the host kit and its programs live on the host (default /var/lib/badsum)",
    "badsum_data_iface": "the host's data NIC, facing the other host",
    "badsum_data_ipv4": "the host's data-plane IPv4 address",
    "badsum_data_ipv6": "the host's data-plane IPv6 address",
    "badsum_pod_cidr": "kubernetes: the server's pod prefix",
    "badsum_docker_bip": "docker: docker0's address with its prefix on the server",
    "badsum_docker_ipv6_cidr": "docker: the containers' routed IPv6 prefix on the server",
    # written by the embedded lab (badsum.lab.inventory) and the VM lab (badsum.vm.inventory)
    "badsum_lab_slot": "the lab's slot: its addresses and names",
    "badsum_switch_port": "the switch's port towards this host",
    "badsum_data_ipv4_prefix": "the lab's data network (IPv4)",
    "badsum_data_ipv6_prefix": "the lab's data network (IPv6)",
    "badsum_mgmt_ipv4_prefix": "the lab's management network (IPv4)",
    "badsum_vm_lab": "the VM lab's description (kernel, init)",
}
# Variables a playbook reads that belong to no role.
PLAYBOOK = {
    "badsum_verify": "outcome.yml: run the testinfra suites at the end of a run",
    "badsum_fleet_lab_mix": "fleet_lab.yml: what runs on each host of the emulated fleet",
    "badsum_fleet_lab_recreate": "fleet_lab.yml: take every container down and start it again",
    "badsum_molecule_topology": "molecule: the scenario's topology",
    "badsum_molecule_port": "molecule: the scenario's experiment port",
}
# What the kit sets (register, set_fact), which a later play reads back.
OUTPUTS = {
    "badsum_experiment_plan": "badsum.kit.validate's plan of the run (on localhost)",
    "badsum_fleet_plan": "badsum.kit.fleet_plan's plan of the fleet run (on localhost)",
    "badsum_common_facts": "the host's facts, as the host kit read them",
    "badsum_topology_result": "the topology contract (every topology role returns it)",
    "badsum_condition_result": "the cell's kernel condition",
    "badsum_condition_stats": "the veth-bug emulator's counts",
    "badsum_corruption_stats": "what the injector did",
    "badsum_traffic_serve": "the server's record",
    "badsum_traffic_client": "the client's record",
    "badsum_traffic_received": "what the server received",
    "badsum_workaround_result": "what the workaround changed",
}


def roles_dir() -> Path:
    """The roles: beside this package in a checkout, else where Ansible finds them (an installed package).

    An AWX execution environment installs the package apart from the project
    its playbooks come from; there Ansible's roles_path (the project's
    ansible.cfg) names the roles.
    """
    here = paths.ROLES
    if (here / "badsum_experiment").is_dir():
        return here
    from ansible import constants as C

    for path in C.DEFAULT_ROLES_PATH:
        if (Path(path) / "badsum_experiment").is_dir():
            return Path(path)
    raise FileNotFoundError(f"badsum's roles are neither in {here} nor on Ansible's roles_path")


def _load(path: Path) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(path.read_text(), Loader=loader) if path.is_file() else None


@dataclass(frozen=True)
class Role:
    name: str
    defaults: dict[str, Any]
    entry_points: dict[str, dict[str, dict[str, Any]]]

    def options(self) -> dict[str, dict[str, Any]]:
        """Every option of every entry point (the first entry point's spec where two name one)."""
        found: dict[str, dict[str, Any]] = {}
        for options in self.entry_points.values():
            for name, spec in options.items():
                found.setdefault(name, spec)
        return found


@functools.cache
def role(name: str) -> Role:
    path = roles_dir() / name
    if not path.is_dir():
        raise KeyError(f"no role {name} in {roles_dir()}")
    specs = (_load(path / "meta" / "argument_specs.yml") or {}).get("argument_specs") or {}
    return Role(
        name,
        _load(path / "defaults" / "main.yml") or {},
        {entry: dict(spec.get("options") or {}) for entry, spec in specs.items()},
    )


@functools.cache
def roles() -> tuple[str, ...]:
    return tuple(sorted(p.name for p in roles_dir().iterdir() if p.name.startswith(PREFIX) and p.is_dir()))


def owner(variable: str) -> str | None:
    """The role a variable belongs to, by its prefix: the longest role name it starts with."""
    matches = [r for r in roles() if variable.startswith(r + "_")]
    return max(matches, key=len) if matches else None


def option(variable: str) -> dict[str, Any]:
    name = owner(variable)
    spec = role(name).options().get(variable) if name else None
    if spec is None:
        raise KeyError(f"{variable} is no option of any role's meta/argument_specs.yml")
    return spec


def choices(variable: str) -> tuple:
    """An option's allowed values (of its items, for a list), as its role's spec lists them."""
    allowed = option(variable).get("choices")
    if not allowed:
        raise KeyError(f"{variable} has no choices in its role's meta/argument_specs.yml")
    return tuple(allowed)


def default(variable: str) -> Any:
    name = owner(variable)
    defaults = role(name).defaults if name else {}
    if variable not in defaults:
        raise KeyError(f"{variable} has no default in its role's defaults/main.yml")
    return defaults[variable]


@functools.cache
def known() -> frozenset[str]:
    """Every badsum_* variable badsum knows: the roles' options and defaults, the inventory's, outputs."""
    names = set(INVENTORY) | set(PLAYBOOK) | set(OUTPUTS)
    for name in roles():
        names |= set(role(name).defaults) | set(role(name).options())
    return frozenset(n for n in names if n.startswith(PREFIX))


def where_documented(variable: str) -> str:
    name = owner(variable)
    if name and (variable in role(name).defaults or variable in role(name).options()):
        return f"roles/{name}/defaults/main.yml"
    return "docs/guide/real-hosts.md" if variable in INVENTORY else "site/reference/variables.html, after `make docs`"


def closest(variable: str) -> str | None:
    """The known name nearest a misspelt one, compared without the prefix every name shares."""
    stems = {n.removeprefix(PREFIX): n for n in known()}
    found = difflib.get_close_matches(variable.removeprefix(PREFIX), sorted(stems), n=1, cutoff=0.6)
    return stems[found[0]] if found else None


def unknown(names: Iterable[str] | Mapping[str, Any], where: str = "", also: Iterable[str] = ()) -> list[str]:
    """A problem for each badsum_* name badsum does not know, naming the closest one it does.

    `also`: names the caller's own job knows besides (the fleet's counts, which AWX hands to a
    workflow's next job as variables: badsum.fleet.stats.KEYS).
    """
    problems = []
    allowed = known() | set(also)
    for name in sorted(n for n in set(names) if n.startswith(PREFIX) and n not in allowed):
        close = closest(name)
        if close:
            hint = f"did you mean {close}? (see {where_documented(close)})"
        else:
            hint = "see the roles' defaults/main.yml, or site/reference/variables.html after `make docs`"
        problems.append(f"{name}{where}: not a variable badsum knows; {hint}")
    return problems
