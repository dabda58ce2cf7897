"""The known state of a host around a topology: firewall rules and forwarding sysctls.

A topology snapshots them before it changes anything (dockerd's FORWARD DROP
and NAT rules, CNI's chains, ip_forward) and puts them back exactly at
teardown, so the next cell starts where the first one did.
"""

from __future__ import annotations

import json

from ..shared.common import STATE, atomic_write, sh

SYSCTLS = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding", "net.ipv4.conf.all.rp_filter")

BUILTIN_CHAINS = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}


def _path(name: str):
    return STATE / f"snapshot-{name}.json"


def read() -> dict:
    return {
        "iptables": sh("iptables-save").stdout,
        "ip6tables": sh("ip6tables-save").stdout,
        "sysctl": {k: sh("sysctl", "-n", k).stdout.strip() for k in SYSCTLS},
    }


def snapshot(name: str) -> bool:
    """Record the firewall and sysctls a topology is about to change (once: a re-run keeps the first)."""
    if _path(name).exists():
        return False
    atomic_write(_path(name), json.dumps(read()))
    return True


def tables(save: str) -> set[str]:
    return {line[1:].strip() for line in save.splitlines() if line.startswith("*")}


def full_restore_input(snapshot: str, current: str) -> str:
    """The snapshot, plus an empty section for each table created since.

    iptables-restore replaces only the tables it is given, one atomic commit
    each: a table the snapshot did not have (docker's nat) must be given empty.
    """
    extra = []
    for table in sorted(tables(current) - tables(snapshot)):
        chains = "".join(f":{c} ACCEPT [0:0]\n" for c in BUILTIN_CHAINS.get(table, ()))
        extra.append(f"*{table}\n{chains}COMMIT\n")
    return snapshot + "".join(extra)


def restore(name: str) -> bool:
    """Put the firewall and sysctls back exactly as the snapshot found them."""
    path = _path(name)
    if not path.exists():
        return False
    data = json.loads(path.read_text())
    for tool in ("iptables", "ip6tables"):
        current = sh(f"{tool}-save").stdout
        sh(f"{tool}-restore", stdin=full_restore_input(data[tool], current))
    for key, value in data["sysctl"].items():
        sh("sysctl", "-qw", f"{key}={value}")
    path.unlink()
    return True
