"""Wire (up) or unwire (down) one container topology on the server host (host B).

    topology up   --name NAME --module MODULE [--mode MODE] --port PORT [the module's options]
    topology down --name NAME --module MODULE [--mode MODE] --port PORT [the module's options]

The controller's shared topology tasks (roles/badsum_topology) pass what the
topology's catalogue record says: its module, mode and options.

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
import pkgutil

from ...shared.common import HostError, Parser

# The host side of the topology catalogue (tools/badsum/topologies.py on the
# controller, one record per topology in its role): each module here wires
# one or more topologies (a mode tells which) and says which options it takes
# (OPTIONS) and needs (NEEDS). The catalogue's record names the module; this
# package knows no topology by name.


def modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__))


def _module(name: str):
    return importlib.import_module(f"{__name__}.{name}")


class Options(argparse.Namespace):
    """What a topology may need (the parsed options); each module says which it needs (NEEDS)."""

    def require(self, *names: str) -> None:
        missing = [n for n in names if not getattr(self, n, "")]
        if missing:
            flags = ", ".join("--" + n.replace("_", "-") for n in missing)
            raise HostError(f"topology {self.name} (module {self.module}) needs {flags}")


def build_parser() -> Parser:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True, parser_class=Parser)
    known = modules()
    options: dict[str, str] = {}
    for name in known:  # each module's own options: adding a module adds its options
        for option, what in _module(name).OPTIONS.items():
            options.setdefault(option, what)
    for action in ("up", "down"):
        a = sub.add_parser(action, help=f"{'wire' if action == 'up' else 'unwire'} a topology")
        a.add_argument("--name", required=True, help="the topology (its catalogue record's name)")
        a.add_argument("--module", choices=known, required=True, help="the module that wires it")
        a.add_argument("--mode", default="", help="what the module is told (one module may serve two topologies)")
        a.add_argument("--port", type=int, required=True, help="the experiment's TCP port")
        for option, what in sorted(options.items()):
            a.add_argument("--" + option.replace("_", "-"), default="", help=what)
    return p


def run(args: argparse.Namespace) -> dict:
    module = _module(args.module)
    opts = Options(**vars(args))
    if not 1 <= opts.port <= 65535:
        raise HostError(f"port {opts.port} is outside 1-65535")
    if args.action == "up":
        opts.require(*module.NEEDS)
        return {"name": args.name, **module.up(opts)}
    return module.down(opts)  # what up was told, it keeps: down needs no option but the port
