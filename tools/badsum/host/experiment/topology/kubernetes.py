"""Kubernetes pod networking as kubenet did it (2015-16), with the real CNI plugins.

kubenet put each node's pods on a bridge `cbr0`, addressed from the node's
pod CIDR, and routed pod CIDRs between nodes without NAT. Here the pod is a
network namespace wired the way a container runtime wires it: the node's
network configuration is a .conflist in a CNI configuration directory
(badsum's own, CONF_DIR: never the host's /etc/cni/net.d), and each plugin
of its chain - Debian's `bridge` with `host-local` IPAM, then whatever was
chained after it (the fleet remediation's badsum-rx-off) - is called through
the CNI protocol: environment + JSON with the previous result on stdin. No
kubelet or API server: they only decide *when* the chain is called.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from ...shared import net as hn
from ...shared.common import STATE, HostError, atomic_write, sh
from .. import firewall

OPTIONS = {
    "address": "host B's data IPv4 address",
    "pod_cidr": "this node's pod CIDR",
    "cni_path": "where the CNI plugins are",
}
NEEDS = ("pod_cidr", "address", "cni_path")
NETNS = "badsum-pod"
BRIDGE = "cbr0"
NETWORK = "kubenet"
CONTAINER_ID = "badsum-pod"
CONF_DIR = STATE / "cni" / "net.d"
CONFLIST = CONF_DIR / "10-kubenet.conflist"
PLUGIN_DIR = STATE / "cni" / "bin"  # plugins installed for this node (before the system's in CNI_PATH)
RESULT = STATE / "cni-result.json"
CIDR = STATE / "cni-pod-cidr"  # what DEL needs, kept from ADD
CNI_PATH = STATE / "cni-path"
IPAM_DIR = STATE / "cni-ipam"


def conflist(pod_cidr: str) -> dict:
    return {
        "cniVersion": "1.0.0",
        "name": NETWORK,
        "plugins": [
            {
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
        ],
    }


def _conflist_text(pod_cidr: str) -> str:
    return json.dumps(conflist(pod_cidr), indent=2) + "\n"


def _network(pod_cidr: str) -> dict:
    """The node's network configuration as the runtime reads it: the .conflist, made at the first up."""
    if not CONFLIST.exists():
        atomic_write(CONFLIST, _conflist_text(pod_cidr))
    return json.loads(CONFLIST.read_text())


def _call(command: str, network: dict, cni_path: str) -> dict:
    """Run the chain as a runtime does: ADD in order, each plugin given the previous result; DEL in reverse."""
    search = f"{PLUGIN_DIR}:{cni_path}"
    env = dict(
        os.environ,
        CNI_COMMAND=command,
        CNI_CONTAINERID=CONTAINER_ID,
        CNI_NETNS=f"/run/netns/{NETNS}",
        CNI_IFNAME="eth0",
        CNI_PATH=search,
    )
    plugins = network["plugins"] if command == "ADD" else list(reversed(network["plugins"]))
    result: dict = {}
    for plugin in plugins:
        found = [Path(d) / plugin["type"] for d in search.split(":") if (Path(d) / plugin["type"]).exists()]
        binary = found[0] if found else None
        if binary is None:
            raise HostError(f"CNI plugin {plugin['type']} not found in {search}: install containernetworking-plugins")
        conf = {"cniVersion": network["cniVersion"], "name": network["name"], **plugin}
        if command == "ADD" and result:
            conf["prevResult"] = result
        out = sh(str(binary), stdin=json.dumps(conf), env=env).stdout
        if command == "ADD":
            result = json.loads(out) if out.strip() else result
    return result


def up(o) -> dict:
    changed = firewall.snapshot("kubernetes")
    changed |= hn.ensure_netns(NETNS)
    if not RESULT.exists() or not hn.link_exists("eth0", netns=NETNS):
        sh("ip", "-n", NETNS, "link", "set", "lo", "up")
        atomic_write(CIDR, o.pod_cidr)
        atomic_write(CNI_PATH, o.cni_path)
        atomic_write(RESULT, json.dumps(_call("ADD", _network(o.pod_cidr), o.cni_path)))
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
        cni_path = o.cni_path or (CNI_PATH.read_text() if CNI_PATH.exists() else "")
        if RESULT.exists() and pod_cidr and cni_path:
            _call("DEL", _network(pod_cidr), cni_path)
        changed |= hn.delete_netns(NETNS)
    RESULT.unlink(missing_ok=True)
    CIDR.unlink(missing_ok=True)
    CNI_PATH.unlink(missing_ok=True)
    # The node's network configuration goes with the pod only if it is still the
    # one up wrote: a remediation that chained its plugin into it owns it now.
    if CONFLIST.exists() and pod_cidr and CONFLIST.read_text() == _conflist_text(pod_cidr):
        CONFLIST.unlink()
    for path in (CONF_DIR, CONF_DIR.parent):
        with contextlib.suppress(OSError):  # not empty: someone else's files (a remediation's plugin)
            path.rmdir()
    if IPAM_DIR.exists():
        for f in sorted(IPAM_DIR.rglob("*"), reverse=True):
            f.rmdir() if f.is_dir() else f.unlink()
        IPAM_DIR.rmdir()
    changed |= hn.delete_link(BRIDGE)  # the bridge plugin never removes its bridge
    changed |= firewall.restore("kubernetes")
    return {"changed": changed}
