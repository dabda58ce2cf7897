"""Remediated: every container veth at rx off, new ones too, persistence in place, nothing else touched.
Prior: exactly as the baseline audit found the host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def container(audit: dict) -> list[dict]:
    return [v for v in audit["veths"] if v["role"] == "container"]


def host_side(audit: dict) -> dict[str, str]:
    """rx-checksumming of the host's own interfaces: its NICs (veths of the lab's wiring) and host-side ends."""
    return {v["ifname"]: v["rx"] for v in audit["veths"] if v["role"] == "host" and not v["ifname"].startswith("veth")}


def test_the_host_interfaces_are_never_touched(baseline: dict, now: dict, host_name: str) -> None:
    assert host_side(now[host_name]) == host_side(baseline[host_name])
    assert now[host_name]["devices"] == baseline[host_name]["devices"]


def test_container_veths(baseline: dict, now: dict, host_name: str, expect: str) -> None:
    veths = container(now[host_name])
    assert len(veths) == len(container(baseline[host_name])), "containers came or went"
    if expect == "remediated":
        assert [v for v in veths if v["rx"] == "on"] == [], "a container veth receives with rx on"
    else:
        assert {(v["owner"].split()[0], v["ifname"], v["rx"]) for v in veths} == {
            (v["owner"].split()[0], v["ifname"], v["rx"]) for v in container(baseline[host_name])
        }


def test_the_risk_class(baseline: dict, now: dict, host_name: str, expect: str) -> None:
    before = baseline[host_name]["risk"]
    if expect == "prior":
        assert now[host_name]["risk"] == before
        assert now[host_name]["remediation"]["recorded"] is False
        assert now[host_name]["guard"]["running"] is False
    elif before == "exposed":
        assert now[host_name]["risk"] == "mitigated", now[host_name]["reason"]
    else:
        assert now[host_name]["risk"] == before  # only exposed hosts are remediated


def test_persistence(baseline: dict, now: dict, host_name: str, expect: str) -> None:
    cni = now[host_name]["cni"]
    remediated = expect == "remediated" and baseline[host_name]["risk"] == "exposed"
    assert now[host_name]["guard"]["running"] is remediated
    assert cni["plugin_installed"] is (remediated and bool(cni["conflists"]))
    assert all(chained is remediated for chained in cni["conflists"].values()), cni["conflists"]
    assert cni["conflists"].keys() == baseline[host_name]["cni"]["conflists"].keys()


def test_containers_made_after_remediation_are_protected(baseline: dict, now: dict, host_name: str, expect: str):
    if expect != "remediated" or not container(baseline[host_name]):
        pytest.skip("no container here, or not remediated")
    # by namespace cookie: a recreated container may get the old one's inode and ifindex back
    old = {(v["netns_cookie"], v["ifindex"]) for v in container(baseline[host_name])}
    new = [v for v in container(now[host_name]) if (v["netns_cookie"], v["ifindex"]) not in old]
    assert new, "the side effect made no new container on this host"
    assert [v for v in new if v["rx"] == "on"] == []


def test_the_canary_cell_came_out_clean(remediation: Path | None, expect: str) -> None:
    if expect != "remediated":
        pytest.skip("the canary cell belongs to the remediation")
    assert remediation is not None, "--badsum-remediation is needed to judge the canary"
    cells = [json.loads(p.read_text()) for p in (remediation / "canary").glob("*-vulnerable.json")]
    assert len(cells) == 1 and cells[0]["verdict"] == "clean", cells
