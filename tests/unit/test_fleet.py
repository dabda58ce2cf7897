"""The fleet's pure parts: settings, plan, risk, report, netlink parsing, the probe's datagrams (CNI: test_cni.py)."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from badsum.fleet import records, report
from badsum.fleet import settings as fleet
from badsum.host import audit, netlink, persistence, probe

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = yaml.safe_load((ROOT / "roles/badsum_fleet/defaults/main.yml").read_text())
DEFAULTS["badsum_fleet_results_dir"] = "/tmp/badsum-test-fleet"  # the default is a Jinja expression


def checked(**over):
    return fleet.fleet_settings({**DEFAULTS, **over})


def test_the_defaults_are_valid() -> None:
    c = checked()
    assert c.problems == []
    assert c.values["badsum_fleet_batches"] == ["10%", "30%", "100%"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("batches", "10%", "badsum_fleet_batches='10%': a list of batch sizes"),
        ("batches", [], "a list of batch sizes"),
        ("batches", ["0"], "'0' is not a count"),
        ("batches", ["150%"], "'150%' is not a count"),
        ("batches", [True], "True is not a count"),
        ("max_fail_percentage", "101", "from 0 to 100"),
        ("max_fail_percentage", "ten", "not a whole number"),
        ("guard", "cron", "allowed: 'auto', 'daemon', 'systemd', 'none'"),
        ("guard_interval", 0, "above 0"),
        ("verify_wait", -1, "above 0"),
        ("cni_conf_dirs", "/etc/cni/net.d", "a list of absolute paths"),
        ("cni_conf_dirs", ["etc/cni"], "an absolute path"),
        ("cni_bin_dir", "opt/cni/bin", "an absolute path"),
        ("canary_topology", "bare", "a routed container path"),
        ("canary", 3, "a host of group fleet"),
        ("run_id", "a/b", "letters, digits"),
        ("probe", "maybe", "true or false"),
    ],
)
def test_bad_fleet_settings_name_the_variable_the_value_and_what_is_allowed(name, value, message) -> None:
    problems = checked(**{f"badsum_fleet_{name}": value}).problems
    assert len(problems) == 1 and problems[0].startswith(f"badsum_fleet_{name}=") and message in problems[0], problems


def test_a_misspelt_setting_is_refused_with_a_suggestion() -> None:
    problems = checked(badsum_fleet_batchs=["1"]).problems
    assert problems == [
        "badsum_fleet_batchs: not a fleet setting (did you mean badsum_fleet_batches?); "
        "see roles/badsum_fleet/defaults/main.yml"
    ]


def lab(pairs: int) -> tuple[dict, dict]:
    hosts = [f"host{n}" for n in range(1, 2 * pairs + 1)]
    groups = {"fleet": hosts, "servers": hosts[1::2], "clients": hosts[::2], "switches": ["switch"]}
    hostvars = {
        h: {
            "badsum_data_iface": "eth0",
            "badsum_data_ipv4": f"198.19.0.{i + 11}",
            "badsum_data_ipv6": f"fd00:b5:0:1::{i + 11:x}",
        }
        for i, h in enumerate(hosts)
    }
    for i, h in enumerate(hosts[1::2]):
        hostvars[h] |= {"badsum_experiment_client": hosts[2 * i], "badsum_experiment_corruption_iface": f"p{2 * i + 2}"}
    hostvars["switch"] = {}
    return groups, hostvars


PLAY = {"badsum_experiment_corruptor": "switch", "badsum_experiment_corruption_hook": "egress"}


def test_the_canary_is_the_first_server_and_its_cell_needs_its_client_and_switch(tmp_path: Path) -> None:
    values = checked(badsum_fleet_results_dir=str(tmp_path)).values
    plan, problems = fleet.plan(values, *lab(2), PLAY, "remediate")
    assert problems == []
    assert plan["canary"] == "host2" and plan["canary_hosts"] == ["host1", "host2", "switch"]
    assert plan["run_dir"].startswith(str(tmp_path)) and plan["run_dir"].endswith("-remediate")


def test_a_fleet_without_a_fleet_group_or_without_a_usable_canary_is_refused(tmp_path: Path) -> None:
    values = checked(badsum_fleet_results_dir=str(tmp_path)).values
    groups, hostvars = lab(1)
    _, problems = fleet.plan(values, {**groups, "fleet": []}, hostvars, PLAY, "audit")
    assert "no hosts in group fleet" in problems[0]
    _, problems = fleet.plan(values, {**groups, "servers": []}, hostvars, PLAY, "remediate")
    assert "badsum_fleet_canary_cell=true, but no host of group fleet is in group servers" in problems[0]
    _, problems = fleet.plan({**values, "badsum_fleet_canary": "host9"}, groups, hostvars, PLAY, "remediate")
    assert problems == ["badsum_fleet_canary='host9': not a host of group fleet"]
    hook = {"badsum_experiment_corruption_hook": "egress"}
    _, problems = fleet.plan(values, {**groups, "switches": []}, hostvars, hook, "remediate")  # no corruptor
    assert problems and problems[0].startswith("the canary cell on host2: badsum_experiment_corruptor is not set")
    plan, problems = fleet.plan({**values, "badsum_fleet_canary_cell": False}, groups, hostvars, {}, "remediate")
    assert problems == [] and plan["canary"] == ""


VETH = {"ifname": "eth0", "owner": "docker container abc", "role": "container"}


DOWN = persistence.GUARD_DOWN


@pytest.mark.parametrize(
    ("vulnerable", "veths", "runtimes", "guard", "conflists", "klass"),
    [
        ("no", [{**VETH, "rx": "on"}], {"docker": 1}, DOWN, {}, "patched"),
        ("yes", [], {}, DOWN, {}, "not-applicable"),
        ("yes", [{**VETH, "role": "host", "rx": "on"}], {}, DOWN, {}, "not-applicable"),
        ("yes", [{**VETH, "rx": "on"}], {}, None, {}, "exposed"),
        ("yes", [{**VETH, "rx": "off"}], {"docker": 1}, DOWN, {}, "exposed"),  # new containers would be
        ("yes", [], {}, DOWN, {"/etc/cni/net.d/10.conflist": False}, "exposed"),
        ("yes", [{**VETH, "rx": "off"}], {"docker": 1}, None, {}, "mitigated"),
        ("unknown", [{**VETH, "rx": "off"}], {"docker": 1}, None, {}, "mitigated"),
        ("unknown", [{**VETH, "rx": "on"}], {"docker": 1}, None, {}, "exposed"),
    ],
)
def test_risk_classes(vulnerable, veths, runtimes, guard, conflists, klass) -> None:
    found, reason = audit.risk(vulnerable, veths, runtimes, guard, conflists)
    assert found == klass and reason


def test_a_guard_that_a_reboot_would_not_start_leaves_the_host_exposed() -> None:
    off = [{**VETH, "rx": "off"}]
    gap = ("after a reboot", "badsum-rx-guard.service runs but is disabled")
    found, reason = audit.risk("yes", off, {"docker": 1}, gap, {})
    assert found == "exposed" and reason.startswith("containers created after a reboot (docker) come up with rx on")
    assert reason.endswith("runs but is disabled")


def test_the_probe_decides_over_the_release_table() -> None:
    kernel = {"status": "fixed", "reason": "6.1 is 4.4 or later"}
    probed = {"verdict": "vulnerable", "kind": "emulated", "reason": "delivered"}
    assert audit.vulnerability(kernel, probed) == ("yes", "probe (emulated): delivered")
    assert audit.vulnerability(kernel, {**probed, "verdict": "inconclusive"})[0] == "no"
    assert audit.vulnerability({"status": "unknown", "reason": "?"}, None)[0] == "unknown"


def test_the_probes_bad_datagram_has_a_wrong_checksum_and_the_good_one_a_right_one() -> None:
    def sums_to_ffff(udp: bytes) -> bool:
        pseudo = socket.inet_aton(probe.A_ADDR) + socket.inet_aton(probe.B_ADDR)
        pseudo += struct.pack("!BBH", 0, socket.IPPROTO_UDP, len(udp))
        return probe.checksum(pseudo + udp) == 0  # RFC 768: the sum over everything, checksum included

    for payload in (b"", b"x", b"badsum probe: good checksum"):
        assert sums_to_ffff(probe.datagram(40000, 5, payload, True))
        bad = probe.datagram(40000, 5, payload, False)
        assert not sums_to_ffff(bad) and struct.unpack("!H", bad[6:8])[0] != 0  # 0 would mean "no checksum"


def test_a_probe_that_sees_nothing_is_inconclusive_never_fixed() -> None:
    nothing, arrived = {"delivered": False, "csum_errors": 0}, {"delivered": True, "csum_errors": 0}
    assert probe.judge(nothing, nothing, nothing, True, False)["verdict"] == "inconclusive"  # the path is broken
    assert probe.judge(arrived, nothing, nothing, True, False)["verdict"] == "inconclusive"  # lost, not counted
    counted = {"delivered": False, "csum_errors": 1}
    assert probe.judge(arrived, counted, counted, True, False)["verdict"] == "fixed"


def nlmsg(kind: int, body: bytes) -> bytes:
    return netlink.NLMSG_HDR.pack(netlink.NLMSG_HDR.size + len(body), kind, 0, 1, 0) + body


def rta(kind: int, value: bytes) -> bytes:
    raw = netlink.RTATTR.pack(netlink.RTATTR.size + len(value), kind) + value
    return raw + b"\0" * (-len(raw) % 4)


def test_netlink_link_messages_are_parsed() -> None:
    info = rta(netlink.IFLA_INFO_KIND, b"veth\0")
    body = netlink.IFINFOMSG.pack(0, 0, 7, 0, 0) + rta(netlink.IFLA_IFNAME, b"eth0\0")
    body += rta(netlink.IFLA_LINK, struct.pack("=I", 12)) + rta(netlink.IFLA_LINK_NETNSID, struct.pack("=i", 0))
    body += rta(netlink.IFLA_LINKINFO, info)
    links, done = netlink.parse(nlmsg(netlink.RTM_NEWLINK, body) + nlmsg(netlink.NLMSG_DONE, b"\0" * 4))
    assert done and links == [netlink.Link(7, "eth0", "veth", 12, True, 0)]


def test_netlink_errors_say_so() -> None:
    with pytest.raises(Exception, match="netlink: Operation not permitted"):
        netlink.parse(nlmsg(netlink.NLMSG_ERROR, struct.pack("=i", -1)))


def record(host: str, risk: str, after: str = "", status: str = "ok") -> dict:
    audit_ = {
        "risk": risk,
        "kernel": {"release": "6.1.0", "status": "fixed"},
        "vulnerable": "yes",
        "decided_by": "probe",
        "container_veths": 1,
        "container_veths_rx_on": 1,
        "runtimes": {"docker": 1},
        "reason": "why",
    }
    return {"host": host, "status": status, "audit": audit_, "after": {"risk": after} if after else {}, "action": "x"}


def test_the_report_lists_every_targeted_host_and_fails_on_the_unreached_and_the_exposed(tmp_path: Path) -> None:
    plan = {"playbook": "remediate", "run_id": "r1", "hosts": ["a", "b", "c", "d"], "settings": {}}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    records.save(
        tmp_path,
        {
            "a": record("a", "exposed", "mitigated"),
            "b": record("b", "exposed", "exposed"),
            "c": record("c", "exposed", status="failed"),
        },
    )
    out = report.write(tmp_path)
    rows = json.loads((tmp_path / "fleet.json").read_text())["rows"]
    assert [r["status"] for r in rows] == ["ok", "ok", "failed", "not reached"]
    assert [p.split(":")[0] for p in out["problems"]] == ["c", "d", "b"]
    assert (tmp_path / "fleet.csv").read_text().count("\n") == 5
    html = (tmp_path / "report.html").read_text()
    assert 'class="not-reached"' in html and 'class="exposed"' in html
    after = out["table"].splitlines()[-1]
    assert after.startswith("risk after:") and "'mitigated': 1" in after and "'exposed': 1" in after


def test_records_are_rewritten_only_when_they_change_and_names_cannot_escape(tmp_path: Path) -> None:
    assert records.save(tmp_path, {"a": {"x": 1}}) == ["a"]
    assert records.save(tmp_path, {"a": {"x": 1}}) == []
    with pytest.raises(ValueError):
        records.save(tmp_path, {"../a": {}})


def test_the_example_fleet_inventory_plans_a_canary_with_its_cell(tmp_path: Path) -> None:
    """The shape README.md tells operators to copy is accepted as it is."""
    listed = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-inventory"),
            "-i",
            str(ROOT / "inventories/examples/fleet"),
            "--list",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
    )
    data = json.loads(listed.stdout)
    groups = {g: data.get(g, {}).get("hosts", []) for g in ("fleet", "servers", "clients", "switches")}
    hostvars = data["_meta"]["hostvars"]
    group_vars = yaml.safe_load((ROOT / "inventories/examples/fleet/group_vars/all.yml").read_text())
    values = checked(
        **{k: v for k, v in group_vars.items() if k.startswith("badsum_fleet_")}, badsum_fleet_results_dir=str(tmp_path)
    ).values
    experiment = yaml.safe_load((ROOT / "roles/badsum_experiment/defaults/main.yml").read_text())
    play = {k: v for k, v in experiment.items() if k.startswith("badsum_experiment_corruption_hook")}
    plan, problems = fleet.plan(values, groups, hostvars, play, "remediate")
    assert problems == []
    assert plan["canary"] == "node01" and plan["canary_hosts"] == ["node01", "testclient"]


@pytest.mark.parametrize("limit", ["fleet:!host5", "web,db", "host1", "fleet:&eu", "web[0:3]"])
def test_a_limit_keeps_the_controller_and_every_part_of_the_pattern(limit: str) -> None:
    from ansible.inventory.manager import split_host_pattern

    from badsum.fleet.cli import with_controller

    assert split_host_pattern(with_controller(limit)) == ["localhost", *split_host_pattern(limit)]


def test_a_record_says_why_a_host_failed_and_keeps_what_its_call_found() -> None:
    audit = {"risk": "exposed", "kernel": "3.10.0", "changed": False}
    assert records.record("h1", "audit", audit) == {
        "host": "h1",
        "phase": "audit",
        "status": "ok",
        "error": "",
        "action": "audited",
        "audit": audit,
    }
    down = records.record("h2", "audit", {"unreachable": True, "msg": "ssh: connect timed out"})
    assert (down["status"], down["error"], down["audit"]) == ("failed", "unreachable: ssh: connect timed out", {})
    # A call that failed: the step's own message, and no made-up findings.
    failed = records.record("h3", "remediate", {"failed": True, "msg": "boom"}, "Remediate the host: boom", True)
    assert failed["status"] == "failed" and failed["error"] == "Remediate the host: boom"
    assert (failed["action"], failed["changes"], failed["after"], failed["check_mode"]) == ("failed", [], {}, True)
    done = records.record(
        "h4",
        "remediate",
        {
            "action": "remediated",
            "apply": {"changes": [{"veth": "eth0"}]},
            "before": {"risk": "exposed"},
            "after": {"risk": "mitigated"},
            "verify": None,
        },
    )
    assert done["changes"] == [{"veth": "eth0"}] and done["verify"] == {} and done["after"]["risk"] == "mitigated"
    back = records.record("h5", "rollback", {"changes": [1, 2], "gone": ["f"]}, check_mode=True)
    assert back["action"] == "would restore 2 changes" and back["gone"] == ["f"]
    assert records.record("h6", "rollback", None)["action"] == "restored 0 changes"
    with pytest.raises(ValueError, match="phase must be one of"):
        records.record("h7", "upgrade", {})
