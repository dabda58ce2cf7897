"""Small, idempotent network operations on one host: namespaces, links, tc and attached BPF maps.

Every `ensure_*` returns True when it changed something and every `delete_*`
True when there was something to delete, so the tools that use them can
report `changed` honestly and stay idempotent.
"""

import json
from pathlib import Path
from typing import Dict, List, Optional

from .common import HostError, in_netns, sh


def ip_json(*args: str, netns: Optional[str] = None) -> List[dict]:
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


def link_exists(name: str, netns: Optional[str] = None) -> bool:
    return bool(ip_json("link", "show", "dev", name, netns=netns))


def require_link(name: str, what: str = "interface") -> dict:
    links = ip_json("link", "show", "dev", name)
    if not links:
        present = ", ".join(sorted(link["ifname"] for link in ip_json("link", "show")))
        raise HostError(f"{what} {name} does not exist on this host (it has: {present})")
    return links[0]


def device_exists(name: str, netns: Optional[str] = None) -> bool:
    """Like link_exists, for a namespace given as a path (/proc/PID/ns/net too)."""
    return sh(*in_netns(netns, "ip", "link", "show", "dev", name), check=False).returncode == 0


def delete_link(name: str) -> bool:
    if not link_exists(name):
        return False
    sh("ip", "link", "del", name)
    return True


def mac_of(iface: str) -> str:
    return require_link(iface)["address"]


def prefixlen_of(iface: str, address: str) -> int:
    for link in ip_json("addr", "show", "dev", iface):
        for info in link.get("addr_info", []):
            if info.get("local") == address:
                return int(info["prefixlen"])
    raise HostError(f"{address} is not an address of {iface} on this host")


def has_address(iface: str, address: str, netns: Optional[str] = None) -> bool:
    return any(
        info.get("local") == address
        for link in ip_json("addr", "show", "dev", iface, netns=netns)
        for info in link.get("addr_info", [])
    )


def features(iface: str, netns: Optional[str] = None) -> Dict[str, dict]:
    """`ethtool --show-features`, as {name: {"on": bool, "fixed": bool}}."""
    out = sh(*in_netns(netns, "ethtool", "--show-features", iface)).stdout
    found = {}
    for line in out.splitlines()[1:]:
        name, sep, value = line.strip().partition(": ")
        if sep:
            found[name] = {"on": value.startswith("on"), "fixed": "[fixed]" in value}
    return found


def driver(iface: str, netns: Optional[str] = None) -> str:
    for line in sh(*in_netns(netns, "ethtool", "--driver", iface)).stdout.splitlines():
        if line.startswith("driver:"):
            return line.split(":", 1)[1].strip()
    return ""


# -- tc: one clsact per device, shared by everyone -----------------------------------
#
# `ingress` and `clsact` cannot both sit on a device, and deleting the qdisc
# drops every filter on it. So every badsum feature uses clsact, adds it only
# when missing, orders its filters by preference (lower runs first) and
# removes only its own filters; the qdisc goes only when no filter is left.


def _tc(netns: Optional[str], *args: str, check: bool = True):
    return sh(*in_netns(netns, "tc", *args), check=check)


def ensure_clsact(iface: str, netns: Optional[str] = None) -> bool:
    shown = _tc(netns, "qdisc", "show", "dev", iface).stdout
    if "clsact" in shown:
        return False
    if "qdisc ingress" in shown:
        raise HostError(
            f"{iface} has an `ingress` qdisc that badsum did not add; clsact cannot sit beside it. "
            f"Remove it (`tc qdisc del dev {iface} ingress`) or use another interface"
        )
    _tc(netns, "qdisc", "add", "dev", iface, "clsact")
    return True


def filters(iface: str, hook: str, pref: Optional[int] = None, netns: Optional[str] = None) -> str:
    args = ["filter", "show", "dev", iface, hook] + (["pref", str(pref)] if pref is not None else [])
    return _tc(netns, *args, check=False).stdout


def has_filter(iface: str, hook: str, pref: int, netns: Optional[str] = None) -> bool:
    return bool(filters(iface, hook, pref, netns).strip())


def ensure_filter(iface: str, hook: str, pref: int, spec: List[str], netns: Optional[str] = None) -> bool:
    if has_filter(iface, hook, pref, netns):
        return False
    _tc(netns, "filter", "add", "dev", iface, hook, "pref", str(pref), *spec)
    return True


def attach_bpf(iface: str, hook: str, pref: int, obj: str, netns: Optional[str] = None, pinned: bool = False) -> None:
    """A tc BPF program in direct-action mode at pref, replacing what sat there (its maps go with it).

    `obj` is an object file that tc loads (libbpf, the verifier: ~25 ms), or with
    `pinned` a program already loaded and pinned in bpffs (no load at all).
    """
    program = ["object-pinned", obj] if pinned else ["obj", obj, "sec", "tc"]
    _tc(netns, "filter", "replace", "dev", iface, hook, "pref", str(pref), "handle", "1", "bpf", "da", *program)


def delete_filter(iface: str, hook: str, pref: int, netns: Optional[str] = None) -> bool:
    if not device_exists(iface, netns) or not has_filter(iface, hook, pref, netns):
        return False
    _tc(netns, "filter", "del", "dev", iface, hook, "pref", str(pref))
    return True


def release_clsact(iface: str, netns: Optional[str] = None) -> bool:
    """Remove clsact once no filter of anyone's is left on either hook."""
    if not (filters(iface, "ingress", netns=netns) + filters(iface, "egress", netns=netns)).strip():
        shown = _tc(netns, "qdisc", "show", "dev", iface, check=False).stdout
        if "clsact" in shown:
            _tc(netns, "qdisc", "del", "dev", iface, "clsact", check=False)
            return True
    return False


# -- eBPF programs attached with tc ---------------------------------------------------


def attached_maps(tc_filter_show: str) -> Dict[str, int]:
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


def map_values(map_id: int) -> List[bytes]:
    """A map's values as raw bytes (bpftool's JSON has them next to the BTF-formatted value)."""
    values = []
    for row in json.loads(sh("bpftool", "-j", "map", "dump", "id", str(map_id)).stdout):
        if not isinstance(row.get("value"), list):
            raise HostError(f"unexpected bpftool output for map {map_id}: {row}")
        values.append(bytes(int(x, 16) for x in row["value"]))
    return values
