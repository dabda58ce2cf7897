"""The sender computes real checksums, and keeps no route to a removed container."""

from __future__ import annotations

testinfra_hosts = ["ansible://clients"]


def test_sender_puts_real_checksums_on_the_wire(host) -> None:
    iface = host.ansible.get_variables().get("badsum_data_iface", "eth0")
    assert "tx-checksumming: off" in host.check_output(f"ethtool -k {iface}")


def test_no_route_left_to_a_container(host) -> None:
    routes = host.check_output("ip route; ip -6 route")
    assert " via " not in routes, routes
