#!/usr/bin/env python3
"""Wire (up) or unwire (down) one container topology on the server host.

Part of the host kit; each topology role calls it once per action. Prints
one JSON object: `changed` plus, for `up`, what the experiment needs:
server_command, target, namespaces (for counters), container_veths (for the
kernel condition), client_routes (to add on the client host), path.

    topology mesos up --iface eth0 --address 198.19.0.12 --ports 5001
    topology kubernetes up --pod-cidr 198.19.128.0/28 --port 5001 --node-address 198.19.0.12
    topology docker up --mode ipv6 --port 5001 --bip 198.18.128.1/28 --fixed-cidr-v6 fd00:b5:0:102::/64 \\
        --node-v4 198.19.0.12 --node-v6 fd00:b5:0:1::c
"""

from __future__ import annotations

import argparse
import sys

try:
    from badsum import hostnet, topo_cni, topo_docker, topo_mesos
except ImportError:  # inside the host kit
    import hostnet  # type: ignore[no-redef]
    import topo_cni  # type: ignore[no-redef]
    import topo_docker  # type: ignore[no-redef]
    import topo_mesos  # type: ignore[no-redef]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="topology", required=True)

    m = sub.add_parser("mesos")
    m.add_argument("action", choices=["up", "down"])
    m.add_argument("--iface", required=True)
    m.add_argument("--address", default="")
    m.add_argument("--ports", required=True, help="comma-separated")

    k = sub.add_parser("kubernetes")
    k.add_argument("action", choices=["up", "down"])
    k.add_argument("--pod-cidr", required=True)
    k.add_argument("--port", type=int, default=5001)
    k.add_argument("--node-address", default="")
    k.add_argument("--cni-path", default="/usr/lib/cni")

    d = sub.add_parser("docker")
    d.add_argument("action", choices=["up", "down"])
    d.add_argument("--mode", choices=["ipv6", "nat"], required=True)
    d.add_argument("--port", type=int, default=5001)
    d.add_argument("--bip", default="")
    d.add_argument("--fixed-cidr-v6", default="")
    d.add_argument("--node-v4", default="")
    d.add_argument("--node-v6", default="")
    d.add_argument("--service-mode", choices=["direct", "systemd"], default="direct")
    return p


def run(a: argparse.Namespace) -> dict:
    if a.topology == "mesos":
        ports = [int(p) for p in a.ports.split(",")]
        if a.action == "up":
            return topo_mesos.up(a.iface, a.address, ports)
        return topo_mesos.down(a.iface, ports)
    if a.topology == "kubernetes":
        if a.action == "up":
            return topo_cni.up(a.pod_cidr, a.port, a.node_address, a.cni_path)
        return topo_cni.down(a.pod_cidr, a.cni_path)
    if a.action == "up":
        return topo_docker.up(a.mode, a.port, a.bip, a.fixed_cidr_v6, a.node_v4, a.node_v6, a.service_mode)
    return topo_docker.down(a.mode, a.service_mode)


def main() -> int:
    args = build_parser().parse_args()
    return hostnet.report("topology", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
