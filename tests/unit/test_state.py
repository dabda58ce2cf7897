"""The host state the run compares before and after: what counts, and what the kernel does on its own."""

from __future__ import annotations

import argparse
import subprocess

from badsum.host.experiment import state

ROUTES = {
    "-4": [{"dst": "198.19.0.0/24", "dev": "eth0", "protocol": "kernel"}],
    "-6": [
        {"dst": "fe80::/64", "dev": "p1", "protocol": "kernel"},  # comes with p1's carrier, on its own
        {"dst": "fe80::/64", "dev": "p2", "protocol": "static"},  # someone's own route: state
        {"dst": "fd00:b5::/64", "dev": "eth0", "protocol": "kernel"},
    ],
}


def test_the_kernels_own_link_local_routes_are_not_part_of_the_state(monkeypatch) -> None:
    def ip_json(*args: str) -> list[dict]:
        return ROUTES[args[0]] if args[1:] == ("route", "show") else []

    monkeypatch.setattr(state.net, "ip_json", ip_json)
    monkeypatch.setattr(state, "sh", lambda *a, **k: subprocess.CompletedProcess(a, 0, "", ""))
    monkeypatch.setattr(state, "_firewall", lambda tool: [])
    found = state.show(argparse.Namespace(iface=[], port=0))
    assert found["routes"] == [
        "198.19.0.0/24 via - dev eth0",
        "fd00:b5::/64 via - dev eth0",
        "fe80::/64 via - dev p2",
    ]


def test_sysctls_are_read_as_sysctl_prints_them() -> None:
    shown = subprocess.run(["sysctl", "-n", "net.ipv4.ip_forward"], capture_output=True, text=True, check=True)
    assert state._sysctl("net.ipv4.ip_forward") == shown.stdout.strip()
    assert state._sysctl("net.nosuch.key") is None
