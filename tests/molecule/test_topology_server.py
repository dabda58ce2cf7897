"""On the server (host B): the topology's pieces exist and nc listens where it should."""

from __future__ import annotations

import pytest


def in_ns(result: dict, command: str) -> str:
    netns = result["namespaces"].get("container", "/proc/self/ns/net")
    return f"nsenter --net={netns} {command}"


def test_nc_listens_in_the_servers_namespace(server, result: dict) -> None:
    out = server.check_output(in_ns(result, "ss -Hltn 'sport = :5001'"))
    assert ":5001" in out


def test_mesos_container_shares_the_hosts_address_and_mac(server, topology: str, result: dict) -> None:
    if topology != "mesos":
        pytest.skip("mesos only")
    host_mac = server.check_output("cat /sys/class/net/eth0/address")
    assert server.check_output(in_ns(result, "cat /sys/class/net/eth0/address")) == host_mac
    assert result["target"] in server.check_output(in_ns(result, "ip -4 -br addr show dev eth0"))
    ingress = server.check_output("tc filter show dev eth0 ingress")
    assert "mirred (Egress Redirect to device mesos0)" in ingress
    assert "mirred (Egress Mirror to device mesos0)" in ingress  # ARP and ICMP
    assert "Redirect to device eth0" in server.check_output("tc filter show dev mesos0 ingress")


def test_kubernetes_pod_sits_on_cbr0(server, topology: str, result: dict) -> None:
    if topology != "kubernetes":
        pytest.skip("kubernetes only")
    assert server.interface("cbr0").exists
    veth = result["container_veths"][0]["host_side"]
    assert "master cbr0" in server.check_output(f"ip -d link show dev {veth}")
    assert result["target"] in server.check_output(in_ns(result, "ip -4 -br addr show dev eth0"))
    assert server.check_output("sysctl -n net.ipv4.ip_forward") == "1"


def test_docker_runs_privately_with_the_labs_addresses(server, topology: str, result: dict) -> None:
    if not topology.startswith("docker"):
        pytest.skip("docker only")
    docker = "/usr/bin/docker -H unix:///run/badsum/docker.sock"
    assert server.check_output(f"{docker} inspect -f '{{{{.State.Running}}}}' badsum-server") == "true"
    bridge = server.check_output("ip -4 -br addr show dev docker0")
    assert "198.18." in bridge and "172.17." not in bridge
    if topology == "docker-ipv6":
        assert result["target"].startswith("fd00:")
        assert server.check_output("sysctl -n net.ipv6.conf.all.forwarding") == "1"
    else:
        assert "--dport 5001 -j DNAT" in server.check_output("iptables-save -t nat")
