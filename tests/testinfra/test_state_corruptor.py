"""After a run, no injector is left on the corruption host."""

from __future__ import annotations

testinfra_hosts = ["ansible://switches", "ansible://clients"]


def test_no_corruptor_left_armed(host) -> None:
    out = host.check_output(
        "for i in $(ls /sys/class/net); do tc filter show dev $i egress; tc filter show dev $i ingress;"
        " tc qdisc show dev $i; done"
    )
    assert "badsum_corrupt" not in out
    assert "netem" not in out
