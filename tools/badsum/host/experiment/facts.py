"""What this host is, has and can do: the facts the experiment checks before it changes anything.

    facts show [--probe-netem] [--versions] [--state --iface IF ... --port P]

One call instead of Ansible's fact gathering: the kernel release (does it have
the fix?), whether we are root, the service manager (how a private dockerd
runs), which commands are installed, the interfaces, BTF for the emulator,
and, when asked, whether sch_netem exists (probed in a throw-away network
namespace, so nothing on the host changes). With --state, also what the
experiment could change on it (the state tool's `show`): the baseline a run's
state checks compare with.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from ..shared import net
from ..shared.common import Parser, sh
from . import state

COMMANDS = (
    "ip",
    "tc",
    "ethtool",
    "nstat",
    "ss",
    "nsenter",
    "unshare",
    "sysctl",
    "iptables-save",
    "ip6tables-save",
    "conntrack",
    "tcpdump",
    "nc",
    "clang",
    "bpftool",
    "dockerd",
)
CNI_BRIDGE = Path("/usr/lib/cni/bridge")
DOCKER_CLIENT = Path("/usr/bin/docker")


def os_release() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "unknown"


def versions() -> dict[str, str]:
    dockerd = sh("dockerd", "--version", check=False).stdout.strip() if shutil.which("dockerd") else ""
    cni = sh("dpkg-query", "-W", "-f=${Version}", "containernetworking-plugins", check=False)
    return {"dockerd": dockerd or "none", "cni_plugins": cni.stdout.strip() if cni.returncode == 0 else "none"}


def own_cgroup() -> str:
    """The cgroup v2 path of this process ("" on a v1-only host): where a lab contains its hosts."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    return ""


def show(args: argparse.Namespace) -> dict:
    from .corruptor import netem_probe  # only when asked: it runs tc in a new namespace

    interfaces = {
        link["ifname"]: {
            "mac": link.get("address", ""),
            "addresses": [a["local"] for a in link.get("addr_info", [])],
            "up": "UP" in link.get("flags", []),
        }
        for link in net.ip_json("addr", "show")
    }
    facts = {
        "kernel": os.uname().release,
        "machine": os.uname().machine,
        "system": os.uname().sysname,
        "distribution": os_release(),
        "python": ".".join(map(str, sys.version_info[:3])),
        "uid": os.geteuid(),
        "service_manager": "systemd" if Path("/run/systemd/system").is_dir() else "direct",
        "commands": {c: bool(shutil.which(c)) for c in COMMANDS},
        "docker_client": DOCKER_CLIENT.exists(),
        "cni_bridge": CNI_BRIDGE.exists(),
        "btf": Path("/sys/kernel/btf/vmlinux").exists(),
        "cgroup": own_cgroup(),
        "interfaces": interfaces,
    }
    if args.versions:  # dockerd's own --version takes a while: only where containers run
        facts["versions"] = versions()
    if args.probe_netem:
        err = netem_probe()
        facts["netem"] = {"available": err is None, "error": err}
    if args.state:
        facts["state"] = state.show(args)
    return facts


def build_parser() -> Parser:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    s = sub.add_parser("show", help="the facts, as one JSON object")
    s.add_argument("--probe-netem", action="store_true", help="also find out whether sch_netem exists")
    s.add_argument("--versions", action="store_true", help="also the container software's versions")
    s.add_argument("--state", action="store_true", help="also the state the experiment could change")
    state.add_watch_options(s)
    return p


def run(args: argparse.Namespace) -> dict:
    return show(args)
