"""Kubernetes pod networking as kubenet did it (2015-16), with the real CNI plugins.

kubenet put each node's pods on a bridge `cbr0`, addressed from the node's
pod CIDR, and routed pod CIDRs between nodes without NAT. Here the pod is a
network namespace wired by calling Debian's `bridge` plugin (with
`host-local` IPAM) through the CNI protocol: environment + JSON on stdin.
No kubelet or API server: they only decide *when* the plugin is called.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import firewall
from .. import net as hn
from ..common import STATE, HostError, atomic_write, sh

NEEDS = ("pod_cidr", "address")
NETNS = "badsum-pod"
BRIDGE = "cbr0"
NETWORK = "kubenet"
CONTAINER_ID = "badsum-pod"
RESULT = STATE / "cni-result.json"
CIDR = STATE / "cni-pod-cidr"  # what DEL needs, kept from ADD
IPAM_DIR = STATE / "cni-ipam"


def config(pod_cidr: str) -> dict:
    return {
        "cniVersion": "1.0.0",
        "name": NETWORK,
        "type": "bridge",
        "bridge": BRIDGE,
        "isGateway": True,
        # kubenet masqueraded only traffic leaving the cluster; inside it, pod
        # IPs were routed as they are.
        "ipMasq": False,
        "hairpinMode": False,
        "ipam": {
            "type": "host-local",
            "subnet": pod_cidr,
            "dataDir": str(IPAM_DIR),
            "routes": [{"dst": "0.0.0.0/0"}],
        },
    }


def _call(command: str, pod_cidr: str, cni_path: str) -> dict:
    env = dict(
        os.environ,
        CNI_COMMAND=command,
        CNI_CONTAINERID=CONTAINER_ID,
        CNI_NETNS=f"/run/netns/{NETNS}",
        CNI_IFNAME="eth0",
        CNI_PATH=cni_path,
    )
    plugin = Path(cni_path) / "bridge"
    if not plugin.exists():
        raise HostError(f"CNI bridge plugin not found at {plugin}: install containernetworking-plugins")
    out = sh(str(plugin), stdin=json.dumps(config(pod_cidr)), env=env).stdout
    return json.loads(out) if out.strip() else {}


def up(o) -> dict:
    changed = firewall.snapshot("kubernetes")
    changed |= hn.ensure_netns(NETNS)
    if not RESULT.exists() or not hn.link_exists("eth0", netns=NETNS):
        sh("ip", "-n", NETNS, "link", "set", "lo", "up")
        atomic_write(CIDR, o.pod_cidr)
        atomic_write(RESULT, json.dumps(_call("ADD", o.pod_cidr, o.cni_path)))
        changed = True
    result = json.loads(RESULT.read_text())
    pod_ip = result["ips"][0]["address"].split("/")[0]
    host_veth = next(
        (i["name"] for i in result.get("interfaces", []) if not i.get("sandbox") and i["name"] != BRIDGE), ""
    )
    return {
        "changed": changed,
        "path": f"routed via bridge {BRIDGE} into pod veth {host_veth} (CNI bridge + host-local, {o.pod_cidr})",
        "server_command": ["nsenter", f"--net=/run/netns/{NETNS}", "nc", "-l", "-p", str(o.port)],
        "target": pod_ip,
        "namespaces": {"host": "self", "container": f"/run/netns/{NETNS}"},
        "container_veths": [{"netns": f"/run/netns/{NETNS}", "ifname": "eth0", "host_side": host_veth}],
        "client_routes": [{"dst": o.pod_cidr, "via": o.address}],
    }


def down(o) -> dict:
    changed = False
    pod_cidr = o.pod_cidr or (CIDR.read_text() if CIDR.exists() else "")
    if hn.netns_exists(NETNS):
        if RESULT.exists() and pod_cidr:
            _call("DEL", pod_cidr, o.cni_path)
        changed |= hn.delete_netns(NETNS)
    RESULT.unlink(missing_ok=True)
    CIDR.unlink(missing_ok=True)
    if IPAM_DIR.exists():
        for f in sorted(IPAM_DIR.rglob("*"), reverse=True):
            f.rmdir() if f.is_dir() else f.unlink()
        IPAM_DIR.rmdir()
    changed |= hn.delete_link(BRIDGE)  # the bridge plugin never removes its bridge
    changed |= firewall.restore("kubernetes")
    return {"changed": changed}
