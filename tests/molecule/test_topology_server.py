"""On the server (host B): the topology's pieces exist where its contract says."""

from __future__ import annotations

import pytest


def in_ns(result: dict, command: str) -> str:
    netns = result["namespaces"].get("container", "/proc/self/ns/net")
    return f"nsenter --net={netns} {command}"


def test_the_contract_is_complete(result: dict, topology: str) -> None:
    for key in ("name", "path", "server_command", "target", "namespaces", "container_veths", "client_routes"):
        assert key in result, key
    assert result["name"] == topology
    assert result["namespaces"]["host"] == "self"
    if topology != "bare":
        assert "container" in result["namespaces"] and result["container_veths"]


def test_the_container_veths_are_veths(server, result: dict) -> None:
    for veth in result["container_veths"]:
        driver = server.check_output(f"nsenter --net={veth['netns']} ethtool -i {veth['ifname']}")
        assert "driver: veth" in driver


def test_mesos_container_shares_the_hosts_address_and_mac(
    server, topology: str, result: dict, server_vars: dict, port: int
) -> None:
    if topology != "mesos":
        pytest.skip("mesos only")
    nic = server_vars["badsum_data_iface"]
    assert server.check_output(in_ns(result, "cat /sys/class/net/eth0/address")) == server.check_output(
        f"cat /sys/class/net/{nic}/address"
    )
    assert result["target"] == server_vars["badsum_data_ipv4"]
    assert result["target"] in server.check_output(in_ns(result, "ip -4 -br addr show dev eth0"))
    ingress = server.check_output(f"tc filter show dev {nic} ingress")
    assert f"dport {port}" in ingress or f"{port:04x}" in ingress
    assert "mirred (Egress Redirect to device mesos0)" in ingress
    assert "mirred (Egress Mirror to device mesos0)" in ingress  # ARP and ICMP
    assert f"Redirect to device {nic}" in server.check_output("tc filter show dev mesos0 ingress")


def test_kubernetes_pod_sits_on_cbr0_in_the_nodes_pod_cidr(
    server, topology: str, result: dict, server_vars: dict
) -> None:
    if topology != "kubernetes":
        pytest.skip("kubernetes only")
    import ipaddress

    assert server.interface("cbr0").exists
    veth = result["container_veths"][0]["host_side"]
    assert "master cbr0" in server.check_output(f"ip -d link show dev {veth}")
    assert ipaddress.ip_address(result["target"]) in ipaddress.ip_network(server_vars["badsum_pod_cidr"])
    assert result["client_routes"] == [{"dst": server_vars["badsum_pod_cidr"], "via": server_vars["badsum_data_ipv4"]}]
    assert server.check_output("sysctl -n net.ipv4.ip_forward") == "1"


def test_docker_runs_privately_with_the_inventorys_prefixes(
    server, topology: str, result: dict, server_vars: dict, port: int
) -> None:
    if not topology.startswith("docker"):
        pytest.skip("docker only")
    docker = "/usr/bin/docker -H unix:///run/badsum/docker.sock"
    assert server.check_output(f"{docker} inspect -f '{{{{.State.Running}}}}' badsum-server") == "true"
    bridge = server.check_output("ip -4 -br addr show dev docker0")
    assert server_vars["badsum_docker_bip"] in bridge and "172.17." not in bridge
    if topology == "docker-ipv6":
        import ipaddress

        prefix = ipaddress.ip_network(server_vars["badsum_docker_ipv6_cidr"])
        assert ipaddress.ip_address(result["target"]) in prefix
        assert server.check_output("sysctl -n net.ipv6.conf.all.forwarding") == "1"
    else:
        assert f"--dport {port} -j DNAT" in server.check_output("iptables-save -t nat")


def test_vxlan_nat_is_flannels_overlay_with_kube_proxys_masquerade(
    server, client, topology: str, result: dict, server_vars: dict, port: int
) -> None:
    if topology != "vxlan-nat":
        pytest.skip("vxlan-nat only")
    import ipaddress

    device = result["overlay"]["device"]
    for host in (server, client):
        link = host.check_output(f"ip -d link show dev {device}")
        # flannel's device as the 2020 kernels made it: port 8472, no learning, outer checksum 0; badsum's VNI
        assert "vxlan id 11908533 " in link and "dstport 8472" in link and "nolearning" in link, link
        assert "noudpcsum" in link, link
        assert "permanent" in host.check_output(f"bridge fdb show dev {device}")
        assert "onlink" in host.check_output(f"ip route show dev {device}")
    assert ipaddress.ip_address(result["target"]) in ipaddress.ip_network(server_vars["badsum_pod_cidr"])
    assert result["tunnel"]["iface"] == server_vars["badsum_data_iface"] and result["tunnel"]["port"] == 8472
    # host A: kube-proxy's rule shape before kubernetes#92035, in badsum's own chains
    nat = client.check_output("iptables -t nat -S BADSUM-KUBE-POSTROUTING")
    assert "--mark 0x3000/0x3000 -j MASQUERADE --random-fully" in nat
    assert f"{result['target']}/32" in client.check_output("iptables -t nat -S BADSUM-KUBE-SERVICES")
    assert f"--dport {port}" in client.check_output("iptables -t nat -S BADSUM-KUBE-SERVICES")
    assert server.check_output("sysctl -n net.ipv4.ip_forward") == "1"
