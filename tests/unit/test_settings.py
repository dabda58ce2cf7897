"""Every setting checked up front: each problem names the variable, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from badsum import settings

ROOT = Path(__file__).parents[2]
DEFAULTS = yaml.safe_load((ROOT / "roles/badsum_experiment/defaults/main.yml").read_text())


def resolved(**over) -> dict:
    """The role's defaults as Ansible resolves them (templated ones filled in), with overrides."""
    values = {k: v for k, v in DEFAULTS.items() if not str(v).startswith("{{")}
    values |= {"badsum_experiment_capture": False, "badsum_experiment_results_dir": "/tmp/results"}
    return values | over


def problems(**over) -> list[str]:
    return settings.experiment_settings(resolved(**over)).problems


def test_the_defaults_are_valid() -> None:
    checked = settings.experiment_settings(resolved())
    assert checked.problems == []
    assert checked.values["badsum_experiment_rate"] == 20.0 and checked.values["badsum_experiment_port"] == 5001


@pytest.mark.parametrize(
    ("name", "value", "expect"),
    [
        ("rate", "101", "badsum_experiment_rate='101': allowed: a number from 0 to 100"),
        ("rate", "abc", "badsum_experiment_rate='abc': not a number"),
        ("rate", -1, "badsum_experiment_rate=-1: allowed"),
        ("rate", True, "badsum_experiment_rate=True: not a number"),
        ("interval", -1, "badsum_experiment_interval=-1: allowed: a number from 0 to 10"),
        ("size", 0, "badsum_experiment_size=0: allowed: a whole number from 1 to 999999"),
        ("size", 100_000_000, "badsum_experiment_size=100000000"),
        ("count", 0, "badsum_experiment_count=0"),
        ("count", "2.5", "badsum_experiment_count='2.5': not a whole number"),
        ("corruption_duration", -1, "badsum_experiment_corruption_duration=-1: allowed: a number above 0"),
        ("corruption_duration", 0, "badsum_experiment_corruption_duration=0"),
        ("port", 0, "badsum_experiment_port=0: allowed: a whole number from 1 to 65535"),
        ("port", 65536, "badsum_experiment_port=65536"),
        ("port", 22, "badsum_experiment_port=22: that is SSH's port"),
        ("pattern", "nope", "badsum_experiment_pattern='nope': allowed: 'random', 'stuck-bit'"),
        ("backend", "nope", "badsum_experiment_backend='nope': allowed: 'ebpf', 'netem'"),
        ("topologies", "bare", "badsum_experiment_topologies='bare': must be a list"),
        ("topologies", ["bare", "nope"], "unknown 'nope'; allowed items: bare, mesos"),
        ("topologies", [], "must name at least one"),
        ("conditions", ["patched", "patched"], "lists an item twice"),
        ("conntrack_checksum", 2, "badsum_experiment_conntrack_checksum='2': allowed: '', '0', '1'"),
        ("kernel_fixed", "maybe", "badsum_experiment_kernel_fixed='maybe': allowed: 'auto', 'yes', 'no'"),
        ("spread", "perhaps", "badsum_experiment_spread='perhaps': allowed: true or false"),
        ("run_id", "../x", "badsum_experiment_run_id='../x'"),
        ("results_dir", "relative/dir", "badsum_experiment_results_dir='relative/dir': allowed: an absolute path"),
        ("min_corrupted", -3, "badsum_experiment_min_corrupted=-3"),
        (
            "corruption_window",
            "sometimes",
            "badsum_experiment_corruption_window='sometimes': allowed: 'evidence', 'fixed'",
        ),
        ("corruption_margin", -1, "badsum_experiment_corruption_margin=-1: allowed: a whole number from 0"),
        ("corruption_margin", "two", "badsum_experiment_corruption_margin='two': not a whole number"),
    ],
)
def test_a_bad_value_names_the_variable_the_value_and_what_is_allowed(name: str, value, expect: str) -> None:
    found = problems(**{f"badsum_experiment_{name}": value})
    assert any(expect in p for p in found), found


def test_the_window_must_end_before_the_traffic_does() -> None:
    found = problems(badsum_experiment_corruption_duration=10)
    assert any("must end before the traffic does" in p and "= 1.2 s" in p for p in found), found


def test_an_evidence_window_needs_something_to_wait_for() -> None:
    found = problems(badsum_experiment_min_corrupted=0, badsum_experiment_corruption_margin=0)
    assert any("would close before it damaged anything" in p for p in found), found
    fixed = problems(
        badsum_experiment_min_corrupted=0,
        badsum_experiment_corruption_margin=0,
        badsum_experiment_corruption_window="fixed",
    )
    assert fixed == []


def test_the_window_the_injector_is_armed_with() -> None:
    values = settings.experiment_settings(resolved()).values
    assert settings.corruption_window(values) == {"mode": "evidence", "start_in": 0.2, "duration": 1.0, "target": 5}
    fixed = settings.experiment_settings(resolved(badsum_experiment_corruption_window="fixed")).values
    assert settings.corruption_window(fixed)["target"] == 0


def test_the_articles_preset_keeps_its_fixed_10_s_window() -> None:
    preset = yaml.safe_load((ROOT / "presets/article.yml").read_text())
    values = settings.experiment_settings(resolved(**preset)).values
    assert settings.corruption_window(values) == {"mode": "fixed", "start_in": 3.0, "duration": 10.0, "target": 0}


def test_netem_cannot_do_the_stuck_bit() -> None:
    assert any(
        "needs badsum_experiment_backend=ebpf" in p
        for p in problems(badsum_experiment_backend="netem", badsum_experiment_pattern="stuck-bit")
    )


def test_values_given_as_strings_on_the_command_line_are_taken() -> None:
    checked = settings.experiment_settings(
        resolved(badsum_experiment_rate="20", badsum_experiment_spread="false", badsum_experiment_kernel_fixed=True)
    )
    assert checked.problems == []
    assert checked.values["badsum_experiment_rate"] == 20.0
    assert checked.values["badsum_experiment_spread"] is False
    assert checked.values["badsum_experiment_kernel_fixed"] == "yes"


def test_the_corruption_roles_own_settings_are_checked_when_given() -> None:
    found = settings.experiment_settings(resolved(badsum_corruption_stuck_bit=9)).problems
    assert any("badsum_corruption_stuck_bit=9" in p for p in found)


@pytest.mark.parametrize(("hosts", "message"), [(3, "an even number"), (1, "from 2 to 200"), ("x", "not a whole")])
def test_the_lab_size_is_checked(hosts, message: str) -> None:
    assert any(message in p for p in settings.lab_settings({"badsum_lab_hosts": hosts}).problems)


# -- the inventory and the plan --------------------------------------------------


def host(n: int, **over) -> dict:
    return {
        "badsum_data_iface": "eth0",
        "badsum_data_ipv4": f"198.19.0.{10 + n}",
        "badsum_data_ipv6": f"fd00:b5:0:1::{10 + n:x}",
        "badsum_pod_cidr": "198.19.128.0/29",
        "badsum_docker_bip": "198.18.128.1/29",
        "badsum_docker_ipv6_cidr": f"fd00:b5:0:{0x100 + n:x}::/64",
        "badsum_embedded_lab": True,
        **over,
    }


def lab(pairs: int) -> tuple[dict, dict]:
    hosts = {f"host{n}": host(n) for n in range(1, 2 * pairs + 1)}
    hosts["switch"] = {}
    for n in range(2, 2 * pairs + 1, 2):
        hosts[f"host{n}"]["badsum_experiment_corruption_iface"] = f"p{n}"
    groups = {
        "clients": [f"host{n}" for n in range(1, 2 * pairs, 2)],
        "servers": [f"host{n}" for n in range(2, 2 * pairs + 1, 2)],
        "switches": ["switch"],
    }
    return groups, hosts


def make_plan(groups, hosts, **over):
    checked = settings.experiment_settings(resolved(**over))
    play = {"badsum_experiment_corruptor": "switch", "badsum_experiment_corruption_hook": "egress"}
    return settings.plan(play, groups, hosts, checked.values)


def test_the_cells_are_spread_over_the_pairs_round_robin() -> None:
    plan, found = make_plan(*lab(5))
    assert found == []
    assert len(plan["cells"]) == 15
    assert [len(p["cells"]) for p in plan["servers"].values()] == [3, 3, 3, 3, 3]
    assert plan["servers"]["host4"] | {"cells": []} == {
        "client": "host3",
        "corruptor": "switch",
        "corruption_iface": "p4",
        "corruption_hook": "egress",
        "cells": [],
    }


def test_each_host_builds_only_the_emulators_its_cells_can_run() -> None:
    # 2016 cells on host B (vethbug), the 2020 row on host A (vxlannat); patched needs neither.
    plan, _ = make_plan(*lab(2), badsum_experiment_topologies=["bare", "vxlan-nat"])
    assert plan["emulators"] == {
        "host1": ["vxlannat"],
        "host2": ["vethbug"],
        "host3": ["vxlannat"],
        "host4": ["vethbug"],
    }
    patched, _ = make_plan(*lab(2), badsum_experiment_conditions=["patched"])
    assert patched["emulators"] == {}
    only_2016, _ = make_plan(*lab(2))
    assert only_2016["emulators"] == {"host2": ["vethbug"], "host4": ["vethbug"]}


def test_without_spreading_the_first_server_runs_every_cell() -> None:
    plan, _ = make_plan(*lab(2), badsum_experiment_spread=False)
    assert len(plan["servers"]["host2"]["cells"]) == 15 and plan["servers"]["host4"]["cells"] == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda g, h: g.update(servers=[]), "no hosts in group servers"),
        (lambda g, h: g.update(clients=[]), "no hosts in group clients"),
        (lambda g, h: g.update(clients=["host1"]), "server host4 has no client"),
        (lambda g, h: h["host2"].update(badsum_experiment_client="ghost"), "'ghost' (on host2): not a host"),
        (lambda g, h: h["host2"].pop("badsum_pod_cidr"), "badsum_pod_cidr is not set on host2"),
        (lambda g, h: h["host2"].update(badsum_data_ipv4="10.0.0.2"), "outside the embedded lab's ranges"),
        (lambda g, h: h["host2"].update(badsum_data_ipv4="nope"), "badsum_data_ipv4='nope': must be an IPv4 address"),
        (lambda g, h: h["host2"].update(badsum_docker_bip="172.17.0.1/16"), "docker's defaults"),
        (lambda g, h: h["host2"].pop("badsum_experiment_corruption_iface"), "corruption_iface is not set for host2"),
        (lambda g, h: h["host1"].update(ansible_port=5001), "it is host1's SSH port"),
    ],
)
def test_inventory_problems_name_the_host_and_the_variable(change, message: str) -> None:
    groups, hosts = lab(2)
    change(groups, hosts)
    _, found = make_plan(groups, hosts)
    assert any(message in p for p in found), found


def test_a_real_lab_without_a_switch_needs_a_corruptor() -> None:
    groups, hosts = lab(1)
    groups["switches"] = []
    checked = settings.experiment_settings(resolved())
    _, found = settings.plan({}, groups, hosts, checked.values)
    assert any("badsum_experiment_corruptor is not set" in p for p in found)


def test_netem_on_ingress_is_refused_with_the_placement_to_use() -> None:
    groups, hosts = lab(1)
    play = {"badsum_experiment_corruptor": "host2", "badsum_experiment_corruption_hook": "ingress"}
    checked = settings.experiment_settings(resolved(badsum_experiment_backend="netem"))
    _, found = settings.plan(play, groups, hosts, checked.values)
    assert any("netem corrupts on egress only" in p and "host1" in p for p in found), found


def test_only_the_topologies_asked_for_need_their_variables() -> None:
    groups, hosts = lab(1)
    hosts["host2"].pop("badsum_pod_cidr")
    _, found = make_plan(groups, hosts, badsum_experiment_topologies=["bare", "docker-nat"])
    assert found == []


def test_a_run_id_is_made_when_none_is_given(tmp_path: Path) -> None:
    paths = settings.run_paths({"badsum_experiment_results_dir": str(tmp_path), "badsum_experiment_run_id": ""})
    (tmp_path / paths["run_id"]).mkdir()
    again = settings.run_paths({"badsum_experiment_results_dir": str(tmp_path), "badsum_experiment_run_id": ""})
    assert again["run_id"] != paths["run_id"] and again["run_dir"].startswith(str(tmp_path))


def test_a_run_on_chosen_servers_touches_only_them_their_clients_and_corruptors() -> None:
    plan, found = make_plan(*lab(3), badsum_experiment_servers=["host4"])
    assert found == []
    assert list(plan["servers"]) == ["host4"]
    assert plan["hosts"] == ["host3", "host4", "switch"]
    assert {c["server"] for c in plan["cells"]} == {"host4"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("host2", "badsum_experiment_servers='host2': must be a list of host names"),
        (["host2", "host2"], "lists a host twice"),
        (["host3"], "badsum_experiment_servers=['host3']: host3 not in group servers"),
    ],
)
def test_chosen_servers_must_be_servers(value, message) -> None:
    checked = settings.experiment_settings(resolved(badsum_experiment_servers=value))
    problems = checked.problems
    if not problems:
        _, problems = settings.plan(
            {"badsum_experiment_corruptor": "switch", "badsum_experiment_corruption_hook": "egress"},
            *lab(2),
            checked.values,
        )
    assert any(message in p for p in problems), problems
