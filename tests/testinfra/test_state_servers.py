"""After a run, the servers are back in their known state: no server, no topology."""

from __future__ import annotations

testinfra_hosts = ["ansible://servers"]


def test_no_server_left_listening(host) -> None:
    assert host.check_output("ss -Hltn 'sport = :5001'") == ""


def test_no_topology_left_on_the_server(host) -> None:
    assert host.check_output("ip netns list") == ""
    links = set(host.check_output("ls /sys/class/net").split())
    assert not {"docker0", "cbr0", "mesos0"} & links, links
    assert not host.file("/run/badsum/dockerd.pid").exists
    assert "badsum_vethbug" not in host.check_output("tc filter show dev eth0 ingress")


def test_forwarding_and_firewall_are_back_to_the_hosts_own(host) -> None:
    assert host.check_output("sysctl -n net.ipv4.ip_forward") == "0"
    rules = host.check_output("iptables-save")
    assert "DOCKER" not in rules and "CNI" not in rules
