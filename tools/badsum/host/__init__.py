"""The host kit: everything badsum runs on a host, standard library only.

This package is built, whole, into one zipapp (badsum-host.pyz, see
badsum.hostkit) that Ansible installs on each host. There it runs in two ways:

    python3 badsum-host.pyz TOOL ACTION [--options]   a person, or a test: one JSON object out
    the badsum.kit.run Ansible module                  imports the zipapp and calls call() directly

Each tool is a module with build_parser() and run(args) -> dict. The table
below is the one place that says which actions only read the host (they run
in check mode too and never report a change) and which can tell what they
would change without changing it (--check).

Before any tool runs, call() makes sure of two things (hostns, common): it
runs in the host's own network namespace (or an emulated host's, marked by
the lab), and the kit and badsum_lib_dir it runs from belong to root and are
writable by root alone. Otherwise nothing runs.
"""

import importlib
from typing import Dict, Sequence

from .shared import hostns
from .shared.common import HostError, Parser, kit_path, lib_dir, require_trusted

__all__ = ["TOOLS", "HostError", "Tool", "call"]


class Tool:
    """A tool: its module, what it does, which actions only read, which can dry-run (--check)."""

    # A plain class, not a dataclass: every host call imports this, and
    # dataclasses would pull in inspect (10 ms of the call's 40).
    __slots__ = ("checkable", "module", "read_only", "summary")

    def __init__(self, module: str, summary: str, read_only=(), checkable=()) -> None:
        self.module, self.summary = module, summary
        self.read_only, self.checkable = tuple(read_only), tuple(checkable)


E, F = "experiment.", "fleet."  # where a tool's module is: tools/badsum/host/experiment/, tools/badsum/host/fleet/
TOOLS: Dict[str, Tool] = {
    # The experiment's: what a reproduction runs on its hosts.
    "facts": Tool(E + "facts", "what this host is and can do: kernel, commands, interfaces, netem", ("show",)),
    "state": Tool(E + "state", "what badsum could have left behind: namespaces, links, filters, rules", ("show",)),
    "bpf": Tool("shared.bpf", "compile badsum's eBPF programs for this kernel (once per source and kernel)"),
    "topology": Tool(E + "topology", "wire (up) or unwire (down) a container topology"),
    "condition": Tool(
        E + "condition", "a cell's kernel condition: the veth-bug emulator on container veths", ("stats",)
    ),
    "offload": Tool(E + "offload", "RX checksum offload of container veths (the workaround)", ("show",), ("set",)),
    "sysctl": Tool(E + "sysctl", "set a sysctl for an experiment and put it back", ("show",)),
    "counters": Tool(E + "counters", "checksum-error and conntrack counters per network namespace", ("read",)),
    "recorder": Tool(E + "recorder", "run the server (nc -l) and record what it prints", ("wait",)),
    "client": Tool(E + "client", "send framed messages and keep the exact stream sent"),
    "corruptor": Tool(E + "corruptor", "arm, read and disarm the corruption injector", ("stats",)),
    "capture": Tool(E + "capture", "bounded tcpdump of the experiment port"),
    # The fleet's: audit, probe, remediation and its guard.
    "audit": Tool(F + "audit", "read-only audit: kernel, active probe, runtimes, every veth, risk class", ("show",)),
    "probe": Tool(
        F + "probe",
        "does this kernel have the veth bug (run), or break NATed VXLAN checksums (vxlan)? throw-away namespaces",
        ("run", "vxlan"),
    ),
    "remediate": Tool(
        F + "remediate",
        "rx off on container veths, kept for new ones; verify; roll back",
        ("show", "verify"),
        ("rollout", "apply", "rollback"),
    ),
    "guard": Tool(F + "guard", "keeps rx-checksumming off on every container veth", ("status",), ("sweep",)),
}


def call(tool: str, argv: Sequence[str], check_mode: bool = False) -> dict:
    """Run one tool action; HostError carries the reason when it cannot."""
    spec = TOOLS.get(tool)
    if spec is None:
        raise HostError(f"no tool {tool!r} in the host kit (tools: {', '.join(TOOLS)})")
    hostns.where()
    kit = kit_path()
    if kit.suffix == ".pyz":
        require_trusted(kit, "the host kit")
    require_trusted(lib_dir(), "badsum_lib_dir")
    module = importlib.import_module(f"{__name__}.{spec.module}")
    Parser.prog_name = f"badsum-host {tool}"
    parser = module.build_parser()
    args = parser.parse_args(list(argv))
    action = args.action
    if check_mode and action not in spec.read_only:
        if action not in spec.checkable:
            return {
                "changed": False,
                "skipped": True,
                "msg": f"check mode: `{tool} {action}` would change the host, so it did not run",
            }
        args.check = True
    result = module.run(args)
    if action in spec.read_only:
        result["changed"] = False
    elif "changed" not in result:
        raise HostError(f"`{tool} {action}` did not say whether it changed the host (a badsum bug)")
    return result
