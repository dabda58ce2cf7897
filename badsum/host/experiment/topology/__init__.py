"""Wire (up) or unwire (down) one container topology on the server host (host B).

    topology up   --name NAME [options]
    topology down --name NAME [options]

Every topology answers `up` with the same description, the contract the
experiment relies on:

    name             the topology
    path             how traffic reaches the server, in words (for the report)
    server_command   argv that runs `nc -l` where the server lives
    target           the address the client connects to
    namespaces       counters to read: label -> namespace path ("self" = the host's)
    container_veths  [{netns, ifname, host_side}]: the container side of each veth
    client_routes    [{dst, via}]: routes host A needs to reach the target

`up` is idempotent; `down` removes everything `up` made and puts the host's
firewall and forwarding back as it found them.
"""

from __future__ import annotations

import argparse
import importlib

from ...shared.common import HostError, Parser

# name -> (module, mode): the host side of the topology catalogue. Modules are
# imported when used: a host call pays only for the topology it wires.
TOPOLOGIES = {
    "bare": ("bare", ""),
    "mesos": ("mesos", ""),
    "kubernetes": ("kubernetes", ""),
    "docker-ipv6": ("docker", "ipv6"),
    "docker-nat": ("docker", "nat"),
}


class Options(argparse.Namespace):
    """What a topology may need (the parsed options, plus its mode); each module says which it needs (NEEDS)."""

    def require(self, *names: str) -> None:
        missing = [n for n in names if not getattr(self, n)]
        if missing:
            flags = ", ".join("--" + n.replace("_", "-") for n in missing)
            raise HostError(f"topology {self.name} needs {flags}")


def build_parser() -> Parser:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    for action in ("up", "down"):
        a = sub.add_parser(action, help=f"{'wire' if action == 'up' else 'unwire'} a topology")
        a.add_argument("--name", choices=sorted(TOPOLOGIES), required=True)
        a.add_argument("--port", type=int, required=True, help="the experiment's TCP port")
        a.add_argument("--iface", default="", help="host B's data NIC")
        a.add_argument("--address", default="", help="host B's data IPv4 address")
        a.add_argument("--address6", default="", help="host B's data IPv6 address")
        a.add_argument("--pod-cidr", default="", help="kubernetes: this node's pod CIDR")
        a.add_argument("--bip", default="", help="docker: docker0's address with prefix")
        a.add_argument("--ipv6-cidr", default="", help="docker: the containers' routed IPv6 prefix")
        a.add_argument(
            "--service-mode",
            choices=["direct", "systemd"],
            default="direct",
            help="docker: a private dockerd as a process or a transient systemd unit",
        )
        a.add_argument("--cni-path", default="/usr/lib/cni", help="kubernetes: where the CNI plugins are")
    return p


def run(args: argparse.Namespace) -> dict:
    module_name, mode = TOPOLOGIES[args.name]
    module = importlib.import_module(f"{__name__}.{module_name}")
    opts = Options(**vars(args), mode=mode)
    if not 1 <= opts.port <= 65535:
        raise HostError(f"port {opts.port} is outside 1-65535")
    if args.action == "up":
        opts.require(*module.NEEDS)
        return {"name": args.name, **module.up(opts)}
    return module.down(opts)
