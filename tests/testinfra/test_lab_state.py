"""Live checks on the hosts after a run: nothing left corrupting or listening."""

from __future__ import annotations

import pytest


def _groups(host) -> list[str]:
    return host.ansible.get_variables().get("group_names", [])


def test_no_corruptor_left_armed(host) -> None:
    if "switches" not in _groups(host) and "clients" not in _groups(host):
        pytest.skip("not a corruption host")
    for line in host.check_output("ip -o link show").splitlines():
        iface = line.split(":")[1].strip().split("@")[0]
        filters = (
            host.run(f"tc filter show dev {iface} egress").stdout
            + host.run(f"tc filter show dev {iface} ingress").stdout
        )
        assert "badsum_corrupt" not in filters, f"corruptor still attached to {iface}"
        assert "netem" not in host.run(f"tc qdisc show dev {iface}").stdout


def test_no_server_left_listening(host) -> None:
    if "servers" not in _groups(host):
        pytest.skip("not the server")
    assert not host.socket("tcp://0.0.0.0:5001").is_listening


def test_sender_puts_real_checksums_on_the_wire(host) -> None:
    if "clients" not in _groups(host):
        pytest.skip("not the sender")
    iface = host.ansible.get_variables().get("badsum_data_iface", "eth0")
    assert "tx-checksumming: off" in host.check_output(f"ethtool -k {iface}")
