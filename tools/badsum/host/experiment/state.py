"""Everything badsum could leave changed on a host, read in one call.

    state show  --iface IF [--iface ...] --port P
    state clean --run RUN_ID       remove one run's files (/run/badsum/experiments/RUN_ID); --run all: every run's

Taken before a run (the baseline, kept in the run's record) and after it (by
the testinfra state suites), the two must be equal: namespaces, links, tc
qdiscs and filters and offloads on the given interfaces, forwarding and
conntrack sysctls, the firewall, routes, listeners on the experiment port,
and badsum's own scratch files and processes.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ..shared import net
from ..shared.common import STATE, HostError, Parser, alive, read_pid, sh
from . import firewall

SYSCTLS = (*firewall.SYSCTLS, "net.netfilter.nf_conntrack_checksum")
OFFLOADS = (
    "rx-checksumming",
    "tx-checksumming",
    "generic-receive-offload",
    "large-receive-offload",
    "scatter-gather",
    "tcp-segmentation-offload",
    "generic-segmentation-offload",
)
PIDFILES = ("dockerd.pid",)


def _firewall(tool: str) -> list[str]:
    """Rules without comments and packet counters, which change on their own.

    A table with nothing but its built-in chains, all ACCEPT, and no rule
    filters nothing: it is left out, so a table that was merely loaded (by a
    topology's snapshot and restore) compares equal to no table at all.
    """
    tables: list[list[str]] = []
    for line in sh(tool).stdout.splitlines():
        if line.startswith("*"):
            tables.append([line])
        elif line and not line.startswith("#") and tables:
            tables[-1].append(line)
    lines: list[str] = []
    for table in tables:
        chains = [line.split(" [", 1)[0] for line in table if line.startswith(":")]
        rules = [line for line in table if line.startswith("-")]
        builtin = {f":{c} ACCEPT" for c in firewall.BUILTIN_CHAINS.get(table[0][1:], ())}
        if rules or not set(chains) <= builtin:
            lines += [table[0], *chains, *rules]
    return lines


def _sysctl(key: str) -> str | None:
    """What `sysctl -n` prints (None: no such key), read from /proc/sys without starting it."""
    try:
        return (Path("/proc/sys") / key.replace(".", "/")).read_text().strip()
    except OSError:
        return None


def interface_state(iface: str) -> dict:
    if not net.link_exists(iface):
        return {"exists": False}
    feats = net.features(iface)
    return {
        "exists": True,
        "qdiscs": sorted(line.split()[1] for line in sh("tc", "qdisc", "show", "dev", iface).stdout.splitlines()),
        "filters": {hook: net.filters(iface, hook).strip() for hook in ("ingress", "egress")},
        "offloads": {name: feats[name]["on"] for name in OFFLOADS if name in feats},
    }


def show(args: argparse.Namespace) -> dict:
    # Not the kernel's own fe80::/64 route of each link: it appears when the link's carrier
    # does, up to a second after the link came up (linkwatch), so a lab made a moment before
    # the baseline was read would differ without badsum changing anything.
    routes = [
        f"{r.get('dst')} via {r.get('gateway', '-')} dev {r.get('dev', '-')}"
        for family in ("-4", "-6")
        for r in net.ip_json(family, "route", "show")
        if not (r.get("dst") == "fe80::/64" and r.get("protocol") == "kernel")
    ]
    listening = sh("ss", "-Hltn", f"sport = :{args.port}").stdout.split("\n") if args.port else []
    return {
        "netns": sorted(line.split()[0] for line in sh("ip", "netns", "list").stdout.splitlines() if line),
        "links": sorted(link["ifname"] for link in net.ip_json("link", "show")),
        "interfaces": {iface: interface_state(iface) for iface in args.iface},
        "sysctl": {key: _sysctl(key) for key in SYSCTLS},
        "iptables": _firewall("iptables-save"),
        "ip6tables": _firewall("ip6tables-save"),
        "routes": sorted(routes),
        "listening": [line for line in listening if line.strip()],
        "scratch": sorted(p.name for p in STATE.glob("*") if p.name not in ("experiments", "ns", "ansible-cp"))
        if STATE.is_dir()
        else [],
        "processes": [name for name in PIDFILES if (pid := read_pid(STATE / name)) and alive(pid)],
    }


def clean(run_id: str) -> dict:
    if not run_id or "/" in run_id or run_id.startswith("."):
        raise HostError(f"bad run id {run_id!r}")
    path = STATE / "experiments"
    paths = sorted(path.iterdir()) if run_id == "all" and path.is_dir() else [path / run_id]
    removed = [str(p) for p in paths if p.exists()]
    for p in removed:
        shutil.rmtree(p)
    if run_id == "all" and path.is_dir():
        path.rmdir()
    return {"changed": bool(removed), "removed": removed}


def add_watch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--iface", action="append", default=[], help="an interface badsum touches (repeatable)")
    parser.add_argument("--port", type=int, default=0, help="the experiment port (listeners on it)")


def build_parser() -> Parser:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    add_watch_options(sub.add_parser("show", help="the state, as one JSON object"))
    sub.add_parser("clean", help="remove one run's files").add_argument("--run", required=True)
    return p


def run(args: argparse.Namespace) -> dict:
    return show(args) if args.action == "show" else clean(args.run)
