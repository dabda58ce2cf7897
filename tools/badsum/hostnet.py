"""Small, idempotent network operations on one host, for the topology helpers.

Standard library only (part of the host kit). Every `ensure_*` returns True
when it changed something, so the Ansible tasks calling the helpers can
report `changed` honestly and stay idempotent.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

STATE = Path("/run/badsum")


class HostError(Exception):
    pass


def sh(*cmd: str, check: bool = True, stdin: str | None = None, env: dict | None = None,
       timeout: float = 30) -> subprocess.CompletedProcess[str]:  # fmt: skip
    proc = subprocess.run(
        cmd, input=stdin, capture_output=True, text=True, check=False, timeout=timeout, env=env
    )
    if check and proc.returncode != 0:
        raise HostError(f"`{' '.join(cmd)}` failed: {(proc.stderr or proc.stdout).strip()}")
    return proc


def ip_json(*args: str, netns: str | None = None) -> list[dict]:
    prefix = ["ip", "-n", netns] if netns else ["ip"]
    out = sh(*prefix, "-j", *args, check=False).stdout
    return json.loads(out) if out.strip() else []


def netns_exists(name: str) -> bool:
    return Path(f"/run/netns/{name}").exists()


def ensure_netns(name: str) -> bool:
    if netns_exists(name):
        return False
    sh("ip", "netns", "add", name)
    return True


def delete_netns(name: str) -> bool:
    if not netns_exists(name):
        return False
    sh("ip", "netns", "del", name)
    return True


def link_exists(name: str, netns: str | None = None) -> bool:
    return bool(ip_json("link", "show", "dev", name, netns=netns))


def delete_link(name: str) -> bool:
    if not link_exists(name):
        return False
    sh("ip", "link", "del", name)
    return True


def mac_of(iface: str) -> str:
    links = ip_json("link", "show", "dev", iface)
    if not links:
        raise HostError(f"interface {iface} does not exist on this host")
    return links[0]["address"]


def prefixlen_of(iface: str, address: str) -> int:
    for link in ip_json("addr", "show", "dev", iface):
        for info in link.get("addr_info", []):
            if info.get("local") == address:
                return int(info["prefixlen"])
    raise HostError(f"{address} is not an address of {iface} on this host")


def has_address(iface: str, address: str, netns: str | None = None) -> bool:
    return any(
        info.get("local") == address
        for link in ip_json("addr", "show", "dev", iface, netns=netns)
        for info in link.get("addr_info", [])
    )


def ensure_clsact(iface: str, netns: str | None = None) -> bool:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    if "clsact" in sh(*prefix, "tc", "qdisc", "show", "dev", iface).stdout:
        return False
    sh(*prefix, "tc", "qdisc", "add", "dev", iface, "clsact")
    return True


def has_filter(iface: str, hook: str, pref: int, netns: str | None = None) -> bool:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    out = sh(*prefix, "tc", "filter", "show", "dev", iface, hook, "pref", str(pref), check=False).stdout
    return bool(out.strip())


def ensure_filter(iface: str, hook: str, pref: int, spec: list[str], netns: str | None = None) -> bool:
    if has_filter(iface, hook, pref, netns):
        return False
    prefix = ["ip", "netns", "exec", netns] if netns else []
    sh(*prefix, "tc", "filter", "add", "dev", iface, hook, "pref", str(pref), *spec)
    return True


def delete_filter(iface: str, hook: str, pref: int) -> bool:
    if not link_exists(iface) or not has_filter(iface, hook, pref):
        return False
    sh("tc", "filter", "del", "dev", iface, hook, "pref", str(pref))
    return True


# -- eBPF programs attached with tc -------------------------------------------------


def attached_maps(tc_filter_show: str) -> dict[str, int]:
    """Map ids by name, of the program that `tc filter show` lists (tc loads maps unpinned)."""
    ids = [line.split(" id ", 1)[1].split()[0] for line in tc_filter_show.splitlines() if " id " in line]
    if not ids:
        return {}
    prog = json.loads(sh("bpftool", "-j", "prog", "show", "id", ids[0]).stdout)
    maps = {}
    for map_id in prog.get("map_ids", []):
        info = json.loads(sh("bpftool", "-j", "map", "show", "id", str(map_id)).stdout)
        maps[info.get("name", "")] = int(map_id)
    return maps


def map_values(map_id: int) -> list[bytes]:
    """A map's values as raw bytes (bpftool's JSON has them next to the BTF-formatted value)."""
    values = []
    for row in json.loads(sh("bpftool", "-j", "map", "dump", "id", str(map_id)).stdout):
        if not isinstance(row.get("value"), list):
            raise HostError(f"unexpected bpftool output for map {map_id}: {row}")
        values.append(bytes(int(x, 16) for x in row["value"]))
    return values


# -- the known state of a host: firewall and forwarding -------------------------------

SYSCTLS = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding", "net.ipv4.conf.all.rp_filter")


def snapshot(name: str) -> bool:
    """Record the firewall and sysctls a topology is about to change (once)."""
    path = STATE / f"snapshot-{name}.json"
    if path.exists():
        return False
    STATE.mkdir(parents=True, exist_ok=True)
    data = {
        "iptables": sh("iptables-save").stdout,
        "ip6tables": sh("ip6tables-save").stdout,
        "sysctl": {k: sh("sysctl", "-n", k).stdout.strip() for k in SYSCTLS},
    }
    path.write_text(json.dumps(data))
    return True


BUILTIN_CHAINS = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}


def _tables(save: str) -> set[str]:
    return {line[1:].strip() for line in save.splitlines() if line.startswith("*")}


def full_restore_input(snapshot: str, current: str) -> str:
    """The snapshot, plus an empty section for each table created since.

    iptables-restore replaces only the tables it is given, one atomic commit
    each: a table the snapshot did not have (docker's nat) must be given empty.
    """
    extra = []
    for table in sorted(_tables(current) - _tables(snapshot)):
        chains = "".join(f":{c} ACCEPT [0:0]\n" for c in BUILTIN_CHAINS.get(table, ()))
        extra.append(f"*{table}\n{chains}COMMIT\n")
    return snapshot + "".join(extra)


def restore(name: str) -> bool:
    """Put the firewall and sysctls back exactly as the snapshot found them."""
    path = STATE / f"snapshot-{name}.json"
    if not path.exists():
        return False
    data = json.loads(path.read_text())
    for tool, key in (("iptables", "iptables"), ("ip6tables", "ip6tables")):
        current = sh(f"{tool}-save").stdout
        sh(f"{tool}-restore", stdin=full_restore_input(data[key], current))
    for key, value in data["sysctl"].items():
        sh("sysctl", "-qw", f"{key}={value}")
    path.unlink()
    return True


def report(tool: str, action) -> int:
    """Run a host-kit tool's action: one JSON object on stdout, exit 2 with the reason on failure."""
    try:
        result = action()
    except HostError as exc:
        print(json.dumps({"error": str(exc)}))
        print(f"badsum-{tool}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for its parent (or init) to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def wait_for(check, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise HostError(f"{what} did not happen within {timeout:.0f} s")
