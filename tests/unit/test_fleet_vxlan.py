"""The fleet's second hazard, its pure parts: netlink's vxlan attributes from crafted bytes, the release table of
ea64d8d6c675, the NAT rules that rewrite outer VXLAN packets, the class, and the class in metrics and AWX stats."""

from __future__ import annotations

import socket
import struct

import pytest

from badsum.fleet import stats
from badsum.host.fleet import audit, vxlan, vxlan_probe
from badsum.host.shared import kernels, metrics, netlink
from badsum.host.shared.common import shown

# -- netlink: a link message as the kernel sends it ------------------------------------------------------


def attr(kind: int, payload: bytes) -> bytes:
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def newlink(index: int, name: bytes, kind: bytes, data: bytes | None = None) -> bytes:
    info = attr(netlink.IFLA_INFO_KIND, kind + b"\0")
    if data is not None:
        info += attr(netlink.IFLA_INFO_DATA, data)
    body = netlink.IFINFOMSG.pack(socket.AF_UNSPEC, 1, index, 0, 0)
    body += attr(netlink.IFLA_IFNAME, name + b"\0") + attr(netlink.IFLA_LINKINFO, info)
    return netlink.NLMSG_HDR.pack(netlink.NLMSG_HDR.size + len(body), netlink.RTM_NEWLINK, 2, 1, 0) + body


def flannel_data(udp_csum: int | None = 1) -> bytes:
    data = attr(netlink.IFLA_VXLAN_ID, struct.pack("=I", 1))
    data += attr(netlink.IFLA_VXLAN_LOCAL, socket.inet_aton("198.18.5.1"))
    data += attr(netlink.IFLA_VXLAN_PORT, struct.pack("!H", 8472))
    if udp_csum is not None:
        data += attr(netlink.IFLA_VXLAN_UDP_CSUM, bytes([udp_csum]))
    return data + attr(netlink.IFLA_VXLAN_COLLECT_METADATA, b"\0")


def test_a_vxlan_links_kind_and_attributes_are_read_from_the_kernels_bytes() -> None:
    links, done = netlink.parse(newlink(7, b"flannel.1", b"vxlan", flannel_data(1)))
    assert not done and [(x.index, x.name, x.kind) for x in links] == [(7, "flannel.1", "vxlan")]
    assert netlink.vxlan_info(links[0].info_data) == {
        "vni": 1,
        "port": 8472,
        "local": "198.18.5.1",
        "udp_csum": True,
        "flow_based": False,
    }


@pytest.mark.parametrize(("value", "expected"), [(0, False), (1, True), (None, None)])
def test_the_outer_checksum_is_on_off_or_unknown_when_the_kernel_does_not_say(value, expected) -> None:
    links, _ = netlink.parse(newlink(7, b"vxlan.calico", b"vxlan", flannel_data(value)))
    assert netlink.vxlan_info(links[0].info_data)["udp_csum"] is expected


def test_a_non_utf8_vxlan_name_goes_back_to_the_kernel_unchanged_and_is_shown_escaped() -> None:
    links, _ = netlink.parse(newlink(9, b"vx\xff\x1b", b"vxlan", flannel_data(1)))
    assert links[0].name.encode("utf-8", "surrogateescape") == b"vx\xff\x1b"
    assert shown(links[0].name) == "vx\\xff\\x1b"


def test_truncated_or_garbage_vxlan_attributes_are_skipped_not_fatal() -> None:
    data = attr(netlink.IFLA_VXLAN_ID, b"\x01") + attr(netlink.IFLA_VXLAN_PORT, b"") + b"\xff\xff"
    data += struct.pack("=HH", 2, netlink.IFLA_VXLAN_LOCAL)  # a length below the header's: the walk stops
    info = netlink.vxlan_info(data)
    assert info == {"vni": None, "port": None, "local": None, "udp_csum": None, "flow_based": False}


def test_a_veth_has_no_vxlan_data_and_a_physical_nic_no_kind() -> None:
    links, _ = netlink.parse(newlink(3, b"eth0", b"veth") + newlink(4, b"eno1", b""))
    assert [x.kind for x in links] == ["veth", ""]


# -- the release table -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("release", "status"),
    [
        ("5.7.0", "fixed"),
        ("6.18.44", "fixed"),
        ("5.6.12", "unfixed"),
        ("5.6.13", "fixed"),
        ("5.4.40", "unfixed"),
        ("5.4.41", "fixed"),
        ("4.19.122", "unfixed"),
        ("4.19.123", "fixed"),
        ("4.14.180", "unfixed"),
        ("4.14.181", "fixed"),
        ("5.5.19", "unfixed"),  # end of life before the fix
        ("4.9.337", "unknown"),  # no backport known: the probe decides
        ("3.10.0-1160.el7.x86_64", "unknown"),
        ("5.4.0-32-generic", "unknown"),  # Ubuntu numbers its own
    ],
)
def test_the_nat_zero_checksum_fix_by_release(release: str, status: str) -> None:
    judged = kernels.classify_nat_zero_csum(release)
    assert judged["status"] == status, judged
    if status != "unknown":
        assert "ea64d8d6c675" in judged["source"]


# -- NAT rules -------------------------------------------------------------------------------------------

PRE_92035 = """*nat
:POSTROUTING ACCEPT [0:0]
:KUBE-POSTROUTING - [0:0]
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-POSTROUTING -m comment --comment "SNAT" -m mark --mark 0x4000/0x4000 -j MASQUERADE --random-fully
COMMIT
"""
POST_92035 = """*nat
:POSTROUTING ACCEPT [0:0]
:KUBE-POSTROUTING - [0:0]
-A POSTROUTING -j KUBE-POSTROUTING
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -j MASQUERADE --random-fully
COMMIT
"""
FLANNEL = """*nat
:POSTROUTING ACCEPT [0:0]
:FLANNEL-POSTRTG - [0:0]
-A POSTROUTING -j FLANNEL-POSTRTG
-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE --random-fully
COMMIT
"""


def rewriting(text: str, sources: list[str] = ()) -> list[str]:
    return [f["rule"] for f in vxlan.iptables_findings(text, sources) if f["matches"] and f["rewrites"]]


def test_kube_proxy_before_92035_masquerades_the_outer_packet_with_a_new_port() -> None:
    assert rewriting(PRE_92035, ["198.18.5.1"]) == [
        '-m comment --comment "SNAT" -m mark --mark 0x4000/0x4000 -j MASQUERADE --random-fully'
    ]


def test_kube_proxy_after_92035_clears_the_mark_first_and_the_outer_packet_passes() -> None:
    assert rewriting(POST_92035, ["198.18.5.1"]) == []


def test_flannels_pod_masquerade_cannot_hold_the_nodes_own_address() -> None:
    assert rewriting(FLANNEL, ["198.18.5.1"]) == []
    assert rewriting(FLANNEL, ["10.244.0.1"]) != []  # a node address inside the pod range: it would


def test_plain_masquerade_matches_but_rewrites_nothing() -> None:
    plain = PRE_92035.replace(" --random-fully", "")
    found = vxlan.iptables_findings(plain, ["198.18.5.1"])
    assert [(f["matches"], f["rewrites"]) for f in found] == [(True, False)]


def test_a_chain_loop_in_the_rules_ends() -> None:
    loop = "*nat\n-A POSTROUTING -j A\n-A A -j B\n-A B -j A\n-A B -j MASQUERADE --random-fully\nCOMMIT\n"
    assert len(rewriting(loop)) == 1


NFT = """table ip nat {
	chain POSTROUTING {
		meta mark & 0x00004000 == 0x00004000 counter masquerade fully-random
	}
}
table ip kube-proxy {
	chain masquerading {
		meta mark & 0x00004000 == 0x00004000 masquerade fully-random
	}
}
table inet calico {
	chain nat-POSTROUTING {
		ip saddr @cali-pools masquerade fully-random
	}
}
"""


def test_native_nft_rules_are_read_and_iptables_nfts_own_table_left_to_iptables_nft_save() -> None:
    found = vxlan.nft_findings(NFT)
    assert [(f["chain"], f["matches"], f["rewrites"]) for f in found] == [
        ("ip kube-proxy", True, True),
        ("inet calico", False, True),
    ]


# -- the class -------------------------------------------------------------------------------------------


def device(name: str = "flannel.1", knob: str = "on", udp_csum: bool | None = True, nat_fix: str = "fixed") -> dict:
    hit, why = vxlan.affected(udp_csum, nat_fix)
    return {"ifname": name, "tx_csum_generic": knob, "udp_csum": udp_csum, "affected": hit, "variant": why}


RULE = {"backend": "iptables-nft", "chain": "KUBE-POSTROUTING", "rule": "-j MASQUERADE --random-fully"}


@pytest.mark.parametrize(
    ("devices", "rules", "problems", "klass"),
    [
        ([], [], [], "not-applicable"),
        ([device()], [{**RULE, "matches": True, "rewrites": True}], [], "exposed"),
        ([device()], [{**RULE, "matches": True, "rewrites": False}], [], "latent"),
        ([device()], [{**RULE, "matches": False, "rewrites": True}], [], "latent"),
        ([device()], [], ["iptables-nft: `iptables-nft-save -t nat` did not finish within 10 s"], "exposed"),
        ([device(knob="off")], [{**RULE, "matches": True, "rewrites": True}], [], "mitigated"),
        # outer checksum 0: only kernels without ea64d8d6c675
        ([device(udp_csum=False)], [{**RULE, "matches": True, "rewrites": True}], [], "not-affected"),
        ([device(udp_csum=False, nat_fix="unfixed")], [{**RULE, "matches": True, "rewrites": True}], [], "exposed"),
        ([device(udp_csum=False, nat_fix="unknown")], [{**RULE, "matches": True, "rewrites": True}], [], "exposed"),
        ([device(udp_csum=None)], [{**RULE, "matches": True, "rewrites": True}], [], "exposed"),
        ([device(knob="unknown")], [{**RULE, "matches": True, "rewrites": True}], [], "exposed"),
    ],
)
def test_the_vxlan_class(devices, rules, problems, klass) -> None:
    assert vxlan.classify(devices, rules, problems)[0] == klass


def test_the_reason_names_the_device_escaped_and_the_rule() -> None:
    _klass, reason = vxlan.classify([device("vx\\xff")], [{**RULE, "matches": True, "rewrites": True}], [])
    assert "vx\\xff" in reason and "MASQUERADE --random-fully" in reason


def test_remediation_modes_act_on_the_classes_they_name() -> None:
    assert vxlan.MODES == {"never": (), "exposed": ("exposed",), "latent": ("exposed", "latent")}
    assert set(vxlan.RISKS) == {"exposed", "latent", "mitigated", "not-affected", "not-applicable"}


def test_a_record_of_the_second_hazard_only_is_no_veth_workaround() -> None:
    """A patched kernel with a vxlan-only remediation must not read as obsolete-workaround (retire would undo it)."""
    status = {"conflists": {}, "plugin_is_badsums": False}
    assert audit.workaround_here({"veth": False, "vxlan": {"guard": True}}, None, status) == []


# -- what operators read: node_exporter and AWX -----------------------------------------------------------


@pytest.mark.parametrize("klass", [*metrics.VXLAN_RISKS, "unknown"])
def test_the_vxlan_class_is_one_hot_in_the_textfile(klass: str) -> None:
    found = [device(), device("vxlan.calico", knob="off")]
    samples = metrics.series("audit", {"risk": "patched", "vxlan": {"risk": klass, "devices": found}}, True, 0, 1.0)
    gauge = {labels[0][1]: v for name, labels, v in samples if name == "badsum_host_vxlan_risk"}
    assert gauge == {c: int(c == klass) for c in (*metrics.VXLAN_RISKS, "unknown")}
    assert [v for name, _, v in samples if name == "badsum_vxlan_devices_tx_csum_on"] == [1]


def test_awx_stats_count_hosts_by_vxlan_class() -> None:
    plan = {"hosts": ["a", "b", "c"], "run_id": "r", "playbook": "audit"}

    def rec(klass: str) -> dict:
        return {
            "phase": "audit",
            "status": "ok",
            "action": "audited",
            "audit": {"risk": "patched", "vxlan": {"risk": klass}},
        }

    data = stats.data(plan, {"a": rec("exposed"), "b": rec("exposed"), "c": None})
    assert data["badsum_fleet_vxlan_risk_exposed"] == 2
    assert data["badsum_fleet_vxlan_risk_unknown"] == 1
    assert data["badsum_fleet_vxlan_risk_not_applicable"] == 0


def test_a_hung_rules_dump_is_killed_whole_within_the_budget(tmp_path) -> None:
    """A wrapper whose child holds the pipe (subprocess.run's timeout kills the wrapper alone, then waits)."""
    import shutil
    import subprocess
    import time

    hung = tmp_path / "iptables-nft-save"
    hung.write_text(f"#!/bin/bash\necho $$ > {tmp_path}/pid\nsleep 600\n")
    hung.chmod(0o755)
    started = time.monotonic()
    text, problem = vxlan._read([str(hung)], 1.0)
    assert time.monotonic() - started < 3 and text is None and "did not finish within 1 s" in problem
    group = (tmp_path / "pid").read_text().strip()
    assert shutil.which("pgrep")
    deadline = time.monotonic() + 2  # killed at once; its init may take a moment to reap the orphaned child
    while alive := subprocess.run(["pgrep", "-g", group], capture_output=True, text=True, check=False).stdout:
        assert time.monotonic() < deadline, f"the hung reader's child was left behind: {alive}"
        time.sleep(0.05)


# -- the active probe's judgement (its datagrams run on a lab host: tests/faults) -------------------------


def results(**over: str) -> dict:
    base = {name: "ok" for name in vxlan_probe.CASES}
    return {name: {"result": over.get(name.replace("-", "_").replace("+", "_"), r)} for name, r in base.items()}


DROPPED = "dropped: bad outer UDP checksum"


def test_the_probe_says_vulnerable_only_from_a_dropped_natted_datagram() -> None:
    assert vxlan_probe.judge(results())["verdict"] == "fixed"
    today = vxlan_probe.judge(results(lco=DROPPED))
    assert (today["verdict"], today["zero_csum_fix"], today["lco_broken"]) == ("vulnerable", "present", "yes")
    before_57 = vxlan_probe.judge(results(zero_csum=DROPPED))
    assert (before_57["verdict"], before_57["zero_csum_fix"]) == ("vulnerable", "missing")
    assert vxlan_probe.judge(results(control="inconclusive: x"))["verdict"] == "inconclusive"
    assert vxlan_probe.judge(results(lco="inconclusive: not NATed"))["verdict"] == "inconclusive"
    assert vxlan_probe.judge(results(lco_workaround=DROPPED))["workaround_effective"] is False


@pytest.mark.parametrize(
    ("spec", "delivered", "errors", "nat", "result"),
    [
        ({"nat": True}, False, 1, True, DROPPED),
        ({"nat": True}, True, 0, True, "ok"),
        (
            {"nat": True},
            False,
            1,
            False,
            "inconclusive: the outer packet was not NATed (or conntrack could not be read)",
        ),
        ({"nat": True}, False, 0, True, "inconclusive: delivered=False, UdpInCsumErrors +0"),  # lost, not dropped
        ({"nat": False}, True, 0, False, "ok"),
    ],
)
def test_a_probe_case_is_decided_from_what_was_measured(spec, delivered, errors, nat, result) -> None:
    assert vxlan_probe.decide(spec, delivered, errors, nat) == result


def test_a_probe_that_saw_nat_handle_an_outer_checksum_clears_that_variant() -> None:
    assert vxlan.affected(True, "fixed", lco_broken="no")[0] is False
    assert vxlan.affected(True, "fixed", lco_broken="yes")[0] is True
    assert vxlan.affected(None, "fixed", lco_broken="no")[0] is True  # unknown outer checksum: either variant


def test_the_second_hazards_topology_is_a_canary_topology() -> None:
    """vxlan-nat's record names its bug, and its vulnerable cell can be the canary's (its host A: test_fleet.py)."""
    from badsum.fleet import settings

    assert settings.hazard("mesos") == "veth" and settings.hazard("vxlan-nat") == "vxlan"
    assert "vxlan-nat" in settings.canary_topologies()
    problems = settings.fleet_settings({"badsum_fleet_canary_topology": "vxlan-nat"}).problems
    assert not any("badsum_fleet_canary_topology" in p for p in problems), problems


# -- the bug emulated (badsum_fleet_emulate_bug): the zero-checksum fix treated as missing --------------


class FakeLinks:
    """One zero-checksum vxlan device (the vxlan-nat cell's: 2020's default) with the offload on, for vxlan.py."""

    def __init__(self, monkeypatch, udp_csum: int = 0) -> None:
        self.on = True
        link = netlink.Link(7, "bsflannel.1", "vxlan", 0, -1, 0, flannel_data(udp_csum))
        monkeypatch.setattr(netlink, "links", lambda: [link])
        monkeypatch.setattr(netlink, "feature", lambda name: {"active": self.on, "changeable": True})
        monkeypatch.setattr(netlink, "set_feature", lambda name, on: setattr(self, "on", on))
        monkeypatch.setattr(vxlan, "boot_id", lambda: "boot")
        # A kernel with ea64d8d6c675, as the emulated fleet's 6.18
        monkeypatch.setattr(vxlan.os, "uname", lambda: type("U", (), {"release": "6.18.0"})())


def test_with_the_bug_emulated_a_zero_checksum_device_is_affected_on_a_fixed_kernel(monkeypatch) -> None:
    links = FakeLinks(monkeypatch)
    rules = {"iptables-nft": "-A POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE --random-fully\n"}
    plain = vxlan.audit(dumps=rules)
    assert plain["risk"] == "not-affected" and plain["devices"][0]["affected"] is False, plain
    assert vxlan.switch_off() == [] and links.on  # the guard rightly leaves it alone on a fixed kernel
    emulated = vxlan.audit(dumps=rules, emulate_bug=True)
    assert emulated["risk"] == "exposed", emulated
    assert emulated["decided_by"].endswith(vxlan.EMULATED)
    (item,) = vxlan.switch_off(emulate_bug=True)
    assert item["ifname"] == "bsflannel.1" and not links.on
    assert vxlan.audit(dumps=rules, emulate_bug=True)["risk"] == "mitigated"


def test_the_bug_emulated_changes_nothing_for_a_device_with_its_outer_checksum_on(monkeypatch) -> None:
    FakeLinks(monkeypatch, udp_csum=1)
    rules = {"iptables-nft": "-A POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE --random-fully\n"}
    assert vxlan.audit(dumps=rules)["risk"] == vxlan.audit(dumps=rules, emulate_bug=True)["risk"] == "exposed"
    assert vxlan.nat_status("fixed") == "fixed" and vxlan.nat_status("fixed", emulate_bug=True) == "unfixed"


# -- the guard's part: what the record asks it to look after, and its list of vxlan changes -------------


def test_the_guard_reads_which_hazards_the_record_covers(tmp_path) -> None:
    import json

    from badsum.host.fleet import guard

    files = guard.Files(str(tmp_path))
    assert files.hazards() == (True, False, False)  # no record: veths as before the second hazard, no vxlan device
    (tmp_path / "state.json").write_text(json.dumps({"veth": False, "vxlan": {"guard": True}}))
    assert files.hazards() == (False, True, False)
    (tmp_path / "state.json").write_text(json.dumps({"veths": []}))  # an older badsum's record
    assert files.hazards() == (True, False, False)
    (tmp_path / "state.json").write_text("{")
    assert files.hazards() == (True, False, False)
    (tmp_path / "state.json").write_text(json.dumps({"veth": False, "vxlan": {"guard": True, "emulate_bug": True}}))
    assert files.hazards()[2] is True  # the guard then switches a zero-checksum device off too


def test_the_guards_list_of_vxlan_changes_is_read_back_and_capped(tmp_path, monkeypatch) -> None:
    from badsum.host.fleet import guard

    files = guard.Files(str(tmp_path))
    item = {"kind": "vxlan", "boot": "b", "ifindex": 7, "ifname": "flannel.1", "was": "on"}
    files.record_vxlan([item])
    with (tmp_path / "guard-vxlan.jsonl").open("a") as f:
        f.write("not json\n{}\n")
    assert files.changed_vxlan() == [item]  # unreadable lines skipped: those devices stay off
    monkeypatch.setattr(guard, "VXLAN_CHANGES_LIMIT", 10)
    files.record_vxlan([{**item, "ifindex": 8}])
    assert files.changed_vxlan() == [item]
    assert "full" in (tmp_path / "guard.log").read_text()


def test_the_report_shows_the_vxlan_class_and_fails_a_rollout_that_left_it_exposed(tmp_path) -> None:
    import json

    from badsum.fleet import records, report

    def rec(before: str, after: str) -> dict:
        audit = {"risk": "patched", "kernel": {"release": "6.18", "status": "fixed"}, "vxlan": {"risk": before}}
        return {"phase": "remediate", "status": "ok", "audit": audit, "after": {**audit, "vxlan": {"risk": after}}}

    for mode, failing in (("exposed", ["b"]), ("never", [])):
        run = tmp_path / mode
        run.mkdir()
        plan = {"playbook": "remediate", "run_id": mode, "hosts": ["a", "b"]}
        plan["settings"] = {"badsum_fleet_vxlan_remediation": mode}
        (run / "plan.json").write_text(json.dumps(plan))
        records.save(run, {"a": rec("exposed", "mitigated"), "b": rec("exposed", "exposed")})
        out = report.write(run)
        rows = json.loads((run / "fleet.json").read_text())["rows"]
        assert [(r["vxlan_risk"], r["vxlan_risk_after"]) for r in rows] == [("exposed", "mitigated"), ("exposed",) * 2]
        assert [p.split(":")[0] for p in out["problems"]] == failing, mode
        assert "vxlan risk after:  {'mitigated': 1, 'exposed': 1}" in out["table"]
