"""The experiment's settings and inventory, checked before anything changes; the run's plan.

Every variable a user can pass (with -e, in group_vars, or through `badsum
reproduce -e`) is checked here for type, range, choices and the rules that
tie several together, and so is the inventory's shape: groups, pairing,
per-host variables. Every problem is reported at once, each naming the
variable, the value given and what is allowed.

The defaults themselves live in the roles' defaults/main.yml, and the
choices in their meta/argument_specs.yml (read through badsum.specs): this
module sees the values Ansible resolved (defaults, then inventory, then
extra vars). A badsum_* name that no role, inventory or playbook of badsum's
reads is refused too, naming the closest one that is (badsum.specs.unknown).

The plan says which server runs which cells with which client and corruptor;
the experiment role follows it, and the run's record (run.json) keeps it, so
the tests know exactly which cells were asked for.
"""

# Longer than ~300 lines: each experiment setting's check is a line or two; the rules that tie
#   several together (pairs, windows, ports) need them all in view.

from __future__ import annotations

import ipaddress
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from badsum import specs, topologies
from badsum.host.shared.framing import HEADER_LEN, MAX_PAYLOAD
from badsum.lab.spec import LAB_ID_RE, LAB_V4, LAB_V6, MAX_HOSTS

RUN_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_TRAFFIC_SECONDS = 600
MAX_STREAM_BYTES = 64 * 2**20
SSH_PORT = 22


class Invalid(ValueError):
    """One setting that cannot be used: names it, shows the value, says what is allowed."""

    def __init__(self, name: str, value: Any, allowed: str) -> None:
        shown = repr(value) if isinstance(value, str) else value
        if isinstance(value, str) and len(value) > 60:
            shown = repr(value[:60] + "...")
        super().__init__(f"{name}={shown}: {allowed}")


# -- one value ------------------------------------------------------------------------

NUMBER_RE = re.compile(r"\s*[-+]?(\d+(\.\d*)?|\.\d+)\s*")
INTEGER_RE = re.compile(r"\s*[-+]?\d+\s*")


def _numeric(value: Any, pattern: re.Pattern) -> bool:
    """A number, or a string that spells one (-e gives strings); never a bool."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return pattern is NUMBER_RE
    return isinstance(value, str) and bool(pattern.fullmatch(value))


def as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.strip().lower() in ("true", "yes", "on", "1")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise Invalid(name, value, "allowed: true or false")


def as_number(name: str, value: Any, lo: float, hi: float, what: str, lo_open: bool = False) -> float:
    allowed = f"a number {'above' if lo_open else 'from'} {lo:g} {'and up' if lo_open else ''} to {hi:g}, {what}"
    allowed = allowed.replace("  ", " ")
    number = float(value) if _numeric(value, NUMBER_RE) else None
    if number is None or not math.isfinite(number):
        raise Invalid(name, value, f"not a number; allowed: {allowed}")
    if number < lo or number > hi or (lo_open and number == lo):
        raise Invalid(name, value, f"allowed: {allowed}")
    return number


def as_int(name: str, value: Any, lo: int, hi: int, what: str) -> int:
    allowed = f"a whole number from {lo} to {hi}, {what}"
    if isinstance(value, bool):
        raise Invalid(name, value, f"allowed: {allowed}")
    if isinstance(value, int):
        number = value
    elif (isinstance(value, float) and value.is_integer()) or _numeric(value, INTEGER_RE):
        number = int(value)
    else:
        raise Invalid(name, value, f"not a whole number; allowed: {allowed}")
    if not lo <= number <= hi:
        raise Invalid(name, value, f"allowed: {allowed}")
    return number


def as_choice(name: str, value: Any, choices: tuple[str, ...], what: str = "") -> str:
    if isinstance(value, bool) or str(value) not in choices:
        raise Invalid(name, value, f"allowed: {', '.join(map(repr, choices))}{f' ({what})' if what else ''}")
    return str(value)


def as_list(name: str, value: Any, choices: tuple[str, ...]) -> list[str]:
    example = f"""-e '{{"{name}": [{", ".join(f'"{c}"' for c in choices[:2])}]}}'"""
    if not isinstance(value, (list, tuple)):
        raise Invalid(name, value, f"must be a list, e.g. {example}; allowed items: {', '.join(choices)}")
    items = [str(v) for v in value]
    wrong = [v for v in items if v not in choices]
    if wrong:
        raise Invalid(name, value, f"unknown {', '.join(map(repr, wrong))}; allowed items: {', '.join(choices)}")
    if not items:
        raise Invalid(name, value, f"must name at least one of {', '.join(choices)}")
    if len(set(items)) != len(items):
        raise Invalid(name, value, "lists an item twice")
    return items


def as_address(name: str, value: Any, version: int, network: bool = False) -> str:
    kind = f"an IPv{version} {'prefix' if network else 'address'}"
    if network and version == 4:
        kind += " like 198.19.128.0/28"
    try:
        parsed = ipaddress.ip_network(str(value), strict=False) if network else ipaddress.ip_address(str(value))
    except ValueError:
        raise Invalid(name, value, f"must be {kind}") from None
    if parsed.version != version or (network and "/" not in str(value)):
        raise Invalid(name, value, f"must be {kind}")
    return str(value)


def as_interface(name: str, value: Any) -> str:
    """docker0's address: an address with its prefix (198.18.128.1/28)."""
    try:
        iface = ipaddress.ip_interface(str(value))
    except ValueError:
        raise Invalid(name, value, "must be an IPv4 address with its prefix, like 198.18.128.1/28") from None
    if iface.version != 4 or "/" not in str(value):
        raise Invalid(name, value, "must be an IPv4 address with its prefix, like 198.18.128.1/28")
    if iface.network.overlaps(ipaddress.ip_network("172.16.0.0/12")):
        raise Invalid(name, value, f"is in 172.16.0.0/12, docker's defaults: pick a prefix from {LAB_V4}")
    return str(value)


# -- the settings ----------------------------------------------------------------------


@dataclass
class Checked:
    values: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def take(self, name: str, raw: Mapping[str, Any], check: Callable[[str, Any], Any]) -> Any:
        if name not in raw:
            self.problems.append(f"{name} is not set (a badsum bug: its role has no default)")
            return None
        try:
            self.values[name] = check(name, raw[name])
        except Invalid as exc:
            self.problems.append(str(exc))
        return self.values.get(name)


def experiment_settings(raw: Mapping[str, Any], names: Iterable[str] | None = None) -> Checked:
    """The experiment's own settings (badsum_experiment_*) and the corruption pattern's.

    `names`: every badsum_* variable the run was given (default: raw's), each
    of which must be one badsum knows.
    """
    c = Checked()
    c.problems += specs.unknown(raw if names is None else names)
    p = "badsum_experiment_"
    c.take(p + "topologies", raw, lambda n, v: as_list(n, v, topologies.names()))
    c.take(p + "conditions", raw, lambda n, v: as_list(n, v, specs.choices(n)))
    c.take(p + "spread", raw, as_bool)
    c.take(p + "servers", raw, _host_list)
    c.take(p + "backend", raw, lambda n, v: as_choice(n, v, specs.choices(n), "the corruption injector"))
    c.take(p + "rate", raw, lambda n, v: as_number(n, v, 0, 100, "percent of experiment segments corrupted"))
    c.take(p + "pattern", raw, lambda n, v: as_choice(n, v, specs.choices(n)))
    c.take(
        p + "corruption_start_in",
        raw,
        lambda n, v: as_number(n, v, 0, 300, "seconds from the first segment to the window"),
    )
    c.take(
        p + "corruption_window",
        raw,
        lambda n, v: as_choice(
            n, v, specs.choices(n), "evidence: close once enough segments were damaged; fixed: a set length"
        ),
    )
    c.take(
        p + "corruption_duration",
        raw,
        lambda n, v: as_number(
            n, v, 0, 300, "seconds a fixed window lasts, or the longest an evidence window does", lo_open=True
        ),
    )
    c.take(
        p + "corruption_margin",
        raw,
        lambda n, v: as_int(
            n, v, 0, 1_000_000, "damaged segments beyond min_corrupted before an evidence window closes"
        ),
    )
    c.take(p + "port", raw, lambda n, v: as_int(n, v, 1, 65535, "the experiment's TCP port"))
    c.take(p + "count", raw, lambda n, v: as_int(n, v, 1, 100_000, "messages sent"))
    c.take(p + "interval", raw, lambda n, v: as_number(n, v, 0, 10, "seconds between messages"))
    c.take(p + "size", raw, lambda n, v: as_int(n, v, 1, MAX_PAYLOAD, "payload bytes per message"))
    c.take(
        p + "min_corrupted",
        raw,
        lambda n, v: as_int(n, v, 0, 1_000_000, "fewer corrupted packets make a clean cell inconclusive"),
    )
    c.take(p + "capture", raw, as_bool)
    c.take(p + "conntrack_checksum", raw, lambda n, v: as_choice(n, "" if v is None else str(v), specs.choices(n)))
    c.take(p + "kernel_fixed", raw, _kernel_fixed)
    c.take(
        p + "run_id",
        raw,
        lambda n, v: (
            v
            if v == ""
            else _matching(
                n, v, RUN_ID_RE, "empty (one is made from the time) or 1-64 letters, digits, '.', '_' or '-'"
            )
        ),
    )
    c.take(p + "results_dir", raw, lambda n, v: _matching(n, v, re.compile(r"^/"), "an absolute path"))
    # The corruption role's own settings: its defaults are not loaded here, so
    # only what the user gave is checked (the role checks the rest itself).
    for name, check in (
        ("badsum_corruption_direction", lambda n, v: as_choice(n, v, specs.choices(n))),
        ("badsum_corruption_stuck_bit", lambda n, v: _int_choice(n, v, "the stuck bit (0 = lowest)")),
        ("badsum_corruption_stuck_value", lambda n, v: _int_choice(n, v, "the value it is stuck at")),
        ("badsum_corruption_stuck_offset", lambda n, v: as_int(n, v, 0, 31, "its byte offset mod 32 of the stream")),
    ):
        if name in raw:
            c.take(name, raw, check)
    _cross_checks(c)
    return c


def _host_list(name: str, value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise Invalid(name, value, 'must be a list of host names, e.g. ["host2"]; [] means every host in group servers')
    if len(set(value)) != len(value):
        raise Invalid(name, value, "lists a host twice")
    return list(value)


def _kernel_fixed(name: str, value: Any) -> str:
    if isinstance(value, bool):  # YAML's yes/no
        return "yes" if value else "no"
    return as_choice(name, value, specs.choices(name), "does host B's kernel have the fix; auto: from its release")


def _int_choice(name: str, value: Any, what: str) -> int:
    """A whole number in the range its spec's choices span."""
    allowed = specs.choices(name)
    return as_int(name, value, min(allowed), max(allowed), what)


def _matching(name: str, value: Any, pattern: re.Pattern, allowed: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise Invalid(name, value, f"allowed: {allowed}")
    return value


def _cross_checks(c: Checked) -> None:
    v, p = c.values, "badsum_experiment_"
    count, interval, size = v.get(p + "count"), v.get(p + "interval"), v.get(p + "size")
    start, duration = v.get(p + "corruption_start_in"), v.get(p + "corruption_duration")
    if None not in (count, interval, start, duration):
        traffic = count * interval
        if start + duration > traffic:
            c.problems.append(
                f"{p}corruption_start_in + {p}corruption_duration = {start + duration:g} s: the corruption "
                f"window must end before the traffic does ({p}count x {p}interval = {traffic:g} s), so that "
                "every message can still arrive after it"
            )
        if traffic > MAX_TRAFFIC_SECONDS:
            c.problems.append(f"{p}count x {p}interval = {traffic:g} s: allowed up to {MAX_TRAFFIC_SECONDS} s")
    if None not in (count, size) and count * (size + HEADER_LEN) > MAX_STREAM_BYTES:
        c.problems.append(
            f"{p}count x {p}size = {count * size} bytes: allowed up to {MAX_STREAM_BYTES // 2**20} MiB per cell"
        )
    nothing_to_wait_for = v.get(p + "min_corrupted") == 0 and v.get(p + "corruption_margin") == 0
    if v.get(p + "corruption_window") == "evidence" and nothing_to_wait_for:
        c.problems.append(
            f"{p}min_corrupted=0 with {p}corruption_margin=0: an evidence window would close before it damaged "
            f"anything; allowed: a sum of at least 1, or {p}corruption_window='fixed'"
        )
    if v.get(p + "backend") == "netem" and v.get(p + "pattern") == "stuck-bit":
        c.problems.append(f"{p}pattern='stuck-bit' needs {p}backend=ebpf: netem only flips random bits")
    if v.get(p + "port") == SSH_PORT:
        c.problems.append(f"{p}port=22: that is SSH's port; corruption on it would hit management traffic")


def corruption_window(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The window every cell's injector is armed with (see tools/badsum/host/experiment/window.py).

    An evidence window closes once `target` segments were damaged: what a
    verdict needs (min_corrupted) plus the margin, or after `duration` at
    most; a fixed one (target 0) lasts `duration`.
    """
    p = "badsum_experiment_"
    evidence = settings[p + "corruption_window"] == "evidence"
    return {
        "mode": settings[p + "corruption_window"],
        "start_in": settings[p + "corruption_start_in"],
        "duration": settings[p + "corruption_duration"],
        "target": settings[p + "min_corrupted"] + settings[p + "corruption_margin"] if evidence else 0,
    }


def lab_settings(raw: Mapping[str, Any]) -> Checked:
    """The embedded lab's settings, where they are given (the lab provider's defaults apply otherwise)."""
    c = Checked()
    if "badsum_lab_id" in raw:
        c.take(
            "badsum_lab_id",
            raw,
            lambda n, v: _matching(n, v, LAB_ID_RE, "1-6 lowercase letters or digits, starting with a letter"),
        )
    if "badsum_lab_hosts" in raw:
        hosts = c.take("badsum_lab_hosts", raw, lambda n, v: as_int(n, v, 2, MAX_HOSTS, "emulated hosts"))
        if hosts and hosts % 2:
            c.problems.append(f"badsum_lab_hosts={hosts}: allowed: an even number (hosts pair up: client, server)")
    return c


# -- the inventory and the plan ---------------------------------------------------------


def _host_var(hostvars: Mapping[str, Mapping[str, Any]], host: str, name: str, fallback: Mapping[str, Any]):
    value = hostvars.get(host, {}).get(name)
    return fallback.get(name) if value is None else value


def client_of(groups: Mapping[str, list[str]], hostvars: Mapping[str, Mapping[str, Any]], server: str) -> str | None:
    """A server's client (host A): its badsum_experiment_client, else the client at its own position in the groups."""
    servers, clients = list(groups.get("servers", [])), list(groups.get("clients", []))
    named = hostvars.get(server, {}).get("badsum_experiment_client")
    if named:
        return named
    index = servers.index(server) if server in servers else len(clients)
    return clients[index] if index < len(clients) else None


def plan(
    raw: Mapping[str, Any],
    groups: Mapping[str, list[str]],
    hostvars: Mapping[str, Mapping[str, Any]],
    settings: Mapping[str, Any],
) -> tuple[dict, list[str]]:
    """Pair servers with clients and corruptors, assign the cells, check each host's variables."""
    problems: list[str] = []
    servers, clients = list(groups.get("servers", [])), list(groups.get("clients", []))
    switches = list(groups.get("switches", []))
    if not servers or not clients:
        missing = " and ".join(g for g, hosts in (("servers", servers), ("clients", clients)) if not hosts)
        return {}, [
            f"the inventory has no hosts in group {missing}: a server (host B, runs nc and the containers) "
            "and a client (host A, sends) are needed, e.g. inventories/examples/two-hosts/hosts.yml"
        ]
    p = "badsum_experiment_"
    chosen = settings.get(p + "servers") or []
    strangers = [s for s in chosen if s not in servers]
    if strangers:
        return {}, [
            f"{p}servers={chosen!r}: {', '.join(strangers)} not in group servers (it has: {', '.join(servers)})"
        ]
    wanted = settings.get(p + "topologies") or []
    pairs: dict[str, dict] = {}
    # Without badsum_experiment_client, a server's client is the client at its own position.
    for server in chosen or servers:
        client = client_of(groups, hostvars, server)
        if client is None:
            problems.append(
                f"server {server} has no client: group clients has {len(clients)} host(s) for "
                f"{len(servers)} server(s); add one or set badsum_experiment_client on {server}"
            )
            continue
        if client not in hostvars:
            problems.append(f"{p}client={client!r} (on {server}): not a host of this inventory")
            continue
        if client == server:
            problems.append(f"{p}client={client!r} (on {server}): a server cannot be its own client")
            continue
        corruptor = _host_var(hostvars, server, p + "corruptor", raw) or (switches[0] if switches else None)
        if not corruptor:
            problems.append(
                f"{p}corruptor is not set (on {server}) and there is no switch: name the host that injects "
                f"corruption, e.g. {server} with {p}corruption_hook=ingress (ebpf) or {client} with egress (netem)"
            )
            continue
        if corruptor not in hostvars:
            problems.append(f"{p}corruptor={corruptor!r} (on {server}): not a host of this inventory")
            continue
        iface = _host_var(hostvars, server, p + "corruption_iface", raw)
        hook = _host_var(hostvars, server, p + "corruption_hook", raw)
        if not iface:
            problems.append(f"{p}corruption_iface is not set for {server}: the interface on {corruptor} to corrupt")
        hooks = specs.choices(p + "corruption_hook")
        if hook not in hooks:
            problems.append(f"{p}corruption_hook={hook!r} (for {server}): allowed: {', '.join(repr(h) for h in hooks)}")
        elif settings.get(p + "backend") == "netem" and hook != "egress":
            problems.append(
                f"{p}corruption_hook='ingress' with {p}backend=netem (for {server}): netem corrupts on egress only; "
                f"put it on host A's data NIC, egress ({client}), or use the ebpf backend"
            )
        pairs[server] = {
            "client": client,
            "corruptor": corruptor,
            "corruption_iface": iface,
            "corruption_hook": hook,
            "cells": [],
        }
        problems += _host_problems(hostvars, server, "server", wanted, settings)
        problems += _host_problems(hostvars, client, "client", [], settings)
    if problems:
        return {}, problems
    cells = [
        {"topology": t, "condition": c, "name": f"{t}-{c}"}
        for t in wanted
        for c in settings.get(p + "conditions") or []
    ]
    order = list(pairs)
    for i, cell in enumerate(cells):
        server = order[i % len(order)] if settings.get(p + "spread") else order[0]
        pairs[server]["cells"].append({**cell, "server": server})
        cell["server"] = server
    hosts = {h for server, pair in pairs.items() for h in (server, pair["client"], pair["corruptor"])}
    return {"cells": cells, "servers": pairs, "hosts": sorted(hosts), "emulators": emulators(pairs)}, []


def emulators(pairs: Mapping[str, dict]) -> dict[str, list[str]]:
    """The eBPF emulators each host's cells may need, built in the prepare step (host -> programs).

    Only where a cell's condition can be emulated (topologies.EMULATORS): a run
    without such a cell builds nothing, and no host builds a program that its
    end of the pair never runs.
    """
    needed: dict[str, set[str]] = {}
    for server, pair in pairs.items():
        for cell in pair["cells"]:
            if cell["condition"] in topologies.EMULATED_CONDITIONS:
                program, end = topologies.EMULATORS[topologies.get(cell["topology"]).bug]
                needed.setdefault(server if end == "server" else pair["client"], set()).add(program)
    return {host: sorted(programs) for host, programs in sorted(needed.items())}


def _host_problems(hostvars, host: str, part: str, cells_topologies, settings) -> list[str]:
    problems = []
    embedded = bool(hostvars.get(host, {}).get("badsum_embedded_lab"))
    needed = {"badsum_data_iface", "badsum_data_ipv4", "badsum_data_ipv6"}
    for topology in cells_topologies:
        needed.update(topologies.get(topology).inventory)  # what its catalogue record says it reads
    checks = {
        "badsum_data_iface": lambda n, v: _matching(n, v, re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$"), "an interface name"),
        "badsum_data_ipv4": lambda n, v: as_address(n, v, 4),
        "badsum_data_ipv6": lambda n, v: as_address(n, v, 6),
        "badsum_pod_cidr": lambda n, v: as_address(n, v, 4, network=True),
        "badsum_docker_bip": as_interface,
        "badsum_docker_ipv6_cidr": lambda n, v: as_address(n, v, 6, network=True),
    }
    for name in sorted(needed):
        value = hostvars.get(host, {}).get(name)
        if value in (None, ""):
            problems.append(f"{name} is not set on {host} (the {part}): see inventories/examples/two-hosts")
            continue
        try:
            checks[name](name, value)
        except Invalid as exc:
            problems.append(f"{exc} (on {host})")
            continue
        if embedded and name != "badsum_data_iface":
            addr = ipaddress.ip_network(str(value), strict=False)
            if not (addr.subnet_of(LAB_V4) if addr.version == 4 else addr.subnet_of(LAB_V6)):
                problems.append(
                    f"{name}={value!r} (on {host}) is outside the embedded lab's ranges ({LAB_V4}, {LAB_V6}): "
                    "re-create the lab with `badsum lab up`"
                )
    port = hostvars.get(host, {}).get("ansible_port")
    if port is not None and str(port) == str(settings.get("badsum_experiment_port")):
        problems.append(
            f"badsum_experiment_port={settings.get('badsum_experiment_port')}: it is {host}'s SSH port "
            "(ansible_port); corruption on it would hit management traffic"
        )
    return problems


def run_paths(settings: Mapping[str, Any]) -> dict[str, str]:
    """The run's id and directories: the given id, or one made from the time (never an existing one)."""
    results = Path(settings["badsum_experiment_results_dir"])
    run_id = settings["badsum_experiment_run_id"]
    if not run_id:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        run_id, n = stamp, 1
        while (results / run_id).exists():
            n += 1
            run_id = f"{stamp}-{n}"
    return {"run_id": run_id, "results_dir": str(results), "run_dir": str(results / run_id)}
