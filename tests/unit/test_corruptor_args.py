from __future__ import annotations

import argparse

import pytest

from badsum import corruptor


@pytest.mark.parametrize(("text", "expected"), [("5001", (5001, 5001)), ("5000-5010", (5000, 5010))])
def test_port_ranges(text: str, expected: tuple[int, int]) -> None:
    assert corruptor.parse_ports(text) == expected


@pytest.mark.parametrize("text", ["0", "70000", "10-5", "x"])
def test_bad_port_ranges(text: str) -> None:
    with pytest.raises((corruptor.Fail, ValueError)):
        corruptor.parse_ports(text)


def _args(**over) -> argparse.Namespace:
    args = corruptor.build_parser().parse_args(["arm", "--iface", "p2"])
    for key, value in over.items():
        setattr(args, key, value)
    return args


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"rate": 150.0}, "outside 0-100"),
        ({"rate": -1.0}, "outside 0-100"),
        ({"ports": "20-30"}, "management port 22"),
        ({"ports": "2222", "protect_port": 2222}, "management port 2222"),
    ],
)
def test_arm_refuses_bad_input_before_touching_anything(monkeypatch, over: dict, message: str) -> None:
    monkeypatch.setattr(corruptor, "iface_exists", lambda iface: True)
    touched = []
    monkeypatch.setattr(corruptor, "sh", lambda *cmd, **kw: touched.append(cmd))
    with pytest.raises(corruptor.Fail, match=message):
        corruptor.cmd_arm(_args(**over))
    assert touched == []


def test_missing_interface_is_named(monkeypatch) -> None:
    monkeypatch.setattr(corruptor, "iface_exists", lambda iface: False)
    with pytest.raises(corruptor.Fail, match="interface p2 does not exist"):
        corruptor.cmd_arm(_args())


def test_netem_missing_names_the_ebpf_backend(monkeypatch) -> None:
    monkeypatch.setattr(corruptor, "netem_available", lambda iface: "Error: Specified qdisc kind is unknown.")
    with pytest.raises(corruptor.Fail, match="ebpf backend"):
        corruptor.netem_arm(_args(backend="netem"), 5001, 5001)


def test_config_layout_matches_the_bpf_struct() -> None:
    # struct bs_cfg in badsum_corrupt.bpf.c is 48 bytes
    assert corruptor.CFG.size == 48
    assert corruptor.EVENT.size == 24
