from __future__ import annotations

import re
from pathlib import Path

import pytest

from badsum.host import HostError, call
from badsum.host.experiment import corruptor

C_SOURCE = Path(corruptor.__file__).parents[1] / "shared" / "programs" / "corrupt.bpf.c"
ARM = [
    "arm",
    "--backend",
    "ebpf",
    "--iface",
    "lo",
    "--hook",
    "egress",
    "--ports",
    "5001",
    "--direction",
    "to-port",
    "--rate",
    "10",
    "--pattern",
    "random",
    "--stuck-bit",
    "5",
    "--stuck-value",
    "0",
    "--stuck-offset",
    "13",
    "--start-in",
    "1",
    "--duration",
    "2",
    "--target",
    "5",
    "--expire-after",
    "60",
    "--protect-port",
    "22",
]


@pytest.mark.parametrize(("text", "expected"), [("5001", (5001, 5001)), ("5000-5010", (5000, 5010))])
def test_port_ranges(text: str, expected: tuple[int, int]) -> None:
    assert corruptor.parse_ports(text) == expected


@pytest.mark.parametrize("text", ["0", "70000", "10-5", "x"])
def test_bad_port_ranges(text: str) -> None:
    with pytest.raises(HostError, match="bad port range"):
        corruptor.parse_ports(text)


def _with(**over: str) -> list[str]:
    argv = list(ARM)
    for key, value in over.items():
        argv[argv.index("--" + key.replace("_", "-")) + 1] = value
    return argv


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"rate": "150"}, "outside 0-100"),
        ({"rate": "-1"}, "outside 0-100"),
        ({"ports": "20-30"}, "management port 22"),
        ({"ports": "2222", "protect_port": "2222"}, "management port 2222"),
        ({"duration": "0"}, "duration > 0"),
        ({"target": "-1"}, "target >= 0"),
        ({"iface": "nosuchnic0"}, "the corruption interface nosuchnic0 does not exist"),
    ],
)
def test_arm_refuses_bad_input_before_touching_anything(monkeypatch, over: dict, message: str) -> None:
    touched = []
    monkeypatch.setattr(corruptor, "disarm", lambda a: touched.append("disarm"))
    monkeypatch.setattr(corruptor, "ebpf_arm", lambda *a: touched.append("arm"))
    with pytest.raises(HostError, match=message):
        call("corruptor", _with(**over))
    assert touched == []


def test_netem_missing_names_the_ebpf_backend(monkeypatch) -> None:
    monkeypatch.setattr(corruptor, "netem_probe", lambda: "Error: Specified qdisc kind is unknown.")
    args = corruptor.build_parser().parse_args(_with(backend="netem"))
    with pytest.raises(HostError, match="Use the ebpf backend"):
        corruptor.netem_arm(args, 5001, 5001)


def test_the_config_layout_matches_the_c_struct() -> None:
    # The C source asserts its struct sizes (_Static_assert, checked by clang at
    # every build); the control script's layouts must agree with them.
    source = C_SOURCE.read_text()
    sizes = dict(re.findall(r"_Static_assert\(sizeof\(struct (\w+)\) == (\d+)", source))
    assert corruptor.CFG.size == int(sizes["bs_cfg"])
    assert corruptor.EVENT.size == int(sizes["bs_event"])


def test_the_injector_runs_before_every_other_badsum_filter() -> None:
    from badsum.host.experiment import condition
    from badsum.host.experiment.topology import mesos

    assert min(mesos.PREF_ARP, mesos.PREF_ICMP, mesos.PREF_PORTS) > corruptor.FILTER_PREF
    assert condition.PREF != corruptor.FILTER_PREF
    assert "return TC_ACT_OK" not in C_SOURCE.read_text(), "an injector that ends classification hides later filters"
