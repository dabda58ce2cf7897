"""The fleet's pure parts: settings, plan, risk, report, netlink parsing, the probe's datagrams (CNI: test_cni.py)."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from badsum.fleet import records, report
from badsum.fleet import settings as fleet
from badsum.host.fleet import audit, persistence, probe
from badsum.host.shared import netlink
from badsum.host.shared.common import shown
from badsum.version import version

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = yaml.safe_load((ROOT / "roles/badsum_fleet/defaults/main.yml").read_text())
DEFAULTS["badsum_fleet_results_dir"] = "/tmp/badsum-test-fleet"  # the default is a Jinja expression


def checked(**over):
    return fleet.fleet_settings({**DEFAULTS, **over})


def test_the_defaults_are_valid() -> None:
    c = checked()
    assert c.problems == []
    # One host first, then small batches: a bad rollout stops before it reaches many hosts.
    assert c.values["badsum_fleet_batches"] == [1, 10, "5%", "25%", "100%"]


def test_a_rollout_without_its_canary_cell_takes_a_second_explicit_setting() -> None:
    problems = checked(badsum_fleet_canary_cell=False).problems
    assert len(problems) == 1 and problems[0].startswith("badsum_fleet_canary_cell=false: "), problems
    assert "badsum_fleet_canary_cell_waiver" in problems[0]
    assert checked(badsum_fleet_canary_cell=False, badsum_fleet_canary_cell_waiver="no pair here").problems == []
    bad = checked(badsum_fleet_canary_cell=False, badsum_fleet_canary_cell_waiver="two\nlines").problems
    assert any(p.startswith("badsum_fleet_canary_cell_waiver=") for p in bad)


def test_a_hosts_own_transport_is_checked_before_any_host_is_touched(tmp_path: Path) -> None:
    values = checked(badsum_fleet_results_dir=str(tmp_path)).values
    groups, hostvars = lab(1)
    hostvars["host1"]["badsum_fleet_transport"] = "ssh"
    hostvars["host2"]["badsum_fleet_python"] = "python3"
    _, problems = fleet.plan(values, groups, hostvars, PLAY, "audit")
    assert problems == [
        "badsum_fleet_transport (on host1)='ssh': allowed: 'module', 'raw'",
        "badsum_fleet_python (on host2)='python3': allowed: an absolute path",
    ]


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
        ("retire", "soon", "true or false"),
        ("transport", "winrm", "allowed: 'module', 'raw'"),
        ("python", "python3", "an absolute path"),
    ],
)
def test_bad_fleet_settings_name_the_variable_the_value_and_what_is_allowed(name, value, message) -> None:
    problems = checked(**{f"badsum_fleet_{name}": value}).problems
    assert len(problems) == 1 and problems[0].startswith(f"badsum_fleet_{name}=") and message in problems[0], problems


def test_a_misspelt_setting_is_refused_with_a_suggestion() -> None:
    problems = checked(badsum_fleet_batchs=["1"]).problems
    assert problems == [
        "badsum_fleet_batchs: not a variable badsum knows; did you mean badsum_fleet_batches? "
        "(see roles/badsum_fleet/defaults/main.yml)"
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


def test_the_vxlan_canary_is_host_a_and_its_cell_is_planned_on_the_server_that_names_it(tmp_path: Path) -> None:
    """2020: the offload and NAT are on the cell's client: the canary is that client, the server is its pair's."""
    values = checked(badsum_fleet_results_dir=str(tmp_path), badsum_fleet_canary_topology="vxlan-nat").values
    groups, hostvars = lab(2)  # host2's client is host1, host4's is host3
    for n, server in enumerate(("host2", "host4")):  # the cell's pod network on host B
        hostvars[server]["badsum_pod_cidr"] = f"198.19.128.{16 * (n + 1)}/28"
    plan, problems = fleet.plan(values, groups, hostvars, PLAY, "remediate")
    assert problems == []
    assert (plan["canary"], plan["canary_server"], plan["canary_hazard"]) == ("host1", "host2", "vxlan")
    assert plan["canary_hosts"] == ["host1", "host2", "switch"]
    plan, problems = fleet.plan({**values, "badsum_fleet_canary": "host3"}, groups, hostvars, PLAY, "remediate")
    assert problems == [] and (plan["canary"], plan["canary_server"]) == ("host3", "host4")
    # Named by position (no badsum_experiment_client): the client at the server's own place in the groups.
    hostvars["host4"].pop("badsum_experiment_client")
    plan, problems = fleet.plan({**values, "badsum_fleet_canary": "host3"}, groups, hostvars, PLAY, "remediate")
    assert problems == [] and plan["canary_server"] == "host4"
    # A server is no vxlan canary: it is no host's host A.
    _, problems = fleet.plan({**values, "badsum_fleet_canary": "host2"}, groups, hostvars, PLAY, "remediate")
    assert len(problems) == 1 and problems[0].startswith("badsum_fleet_canary='host2': the vxlan-nat cell's canary")
    # Only the servers outside the fleet: the first fleet host a server names as its client.
    plan, problems = fleet.plan(values, {**groups, "fleet": ["host3", "host4"]}, hostvars, PLAY, "remediate")
    assert problems == [] and (plan["canary"], plan["canary_server"]) == ("host3", "host4")
    # The 2016 canary is the cell's server, as before.
    veth, _ = fleet.plan({**values, "badsum_fleet_canary_topology": "mesos"}, groups, hostvars, PLAY, "remediate")
    assert (veth["canary"], veth["canary_server"], veth["canary_hazard"]) == ("host2", "host2", "veth")


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
CARRIED = ["a remediation record", "a guard daemon"]


def found(veths: list, runtimes: dict, guard, conflists: dict, workaround: list | None = None) -> audit.Found:
    container = [v for v in veths if v["role"] == "container"]
    on = [v for v in container if v["rx"] == "on"]
    return audit.Found(len(container), on, len(on), runtimes, guard, conflists, workaround or [])


@pytest.mark.parametrize(
    ("vulnerable", "veths", "runtimes", "guard", "conflists", "workaround", "klass"),
    [
        ("no", [{**VETH, "rx": "on"}], {"docker": 1}, DOWN, {}, [], "patched"),
        ("no", [{**VETH, "rx": "off"}], {"docker": 1}, None, {}, CARRIED, "obsolete-workaround"),
        ("yes", [], {}, DOWN, {}, [], "not-applicable"),
        ("yes", [{**VETH, "role": "host", "rx": "on"}], {}, DOWN, {}, [], "not-applicable"),
        ("yes", [{**VETH, "rx": "on"}], {}, None, {}, [], "exposed"),
        ("yes", [{**VETH, "rx": "off"}], {"docker": 1}, DOWN, {}, [], "exposed"),  # new containers would be
        ("yes", [], {}, DOWN, {"/etc/cni/net.d/10.conflist": False}, [], "exposed"),
        ("yes", [{**VETH, "rx": "off"}], {"docker": 1}, None, {}, CARRIED, "mitigated"),
        ("unknown", [{**VETH, "rx": "off"}], {"docker": 1}, None, {}, CARRIED, "mitigated"),
        ("unknown", [{**VETH, "rx": "on"}], {"docker": 1}, None, {}, [], "exposed"),
    ],
)
def test_risk_classes(vulnerable, veths, runtimes, guard, conflists, workaround, klass) -> None:
    klass_found, reason = audit.risk(vulnerable, found(veths, runtimes, guard, conflists, workaround))
    assert klass_found == klass and reason


def test_a_fixed_kernel_names_what_of_the_workaround_is_left_and_how_to_retire_it() -> None:
    klass, reason = audit.risk("no", found([{**VETH, "rx": "off"}], {"docker": 1}, None, {}, CARRIED))
    assert klass == "obsolete-workaround"
    assert "a remediation record, a guard daemon" in reason and "badsum_fleet_retire=true" in reason


def test_a_guard_that_a_reboot_would_not_start_leaves_the_host_exposed() -> None:
    off = [{**VETH, "rx": "off"}]
    gap = ("after a reboot", "badsum-rx-guard.service runs but is disabled")
    klass, reason = audit.risk("yes", found(off, {"docker": 1}, gap, {}))
    assert klass == "exposed" and reason.startswith("containers created after a reboot (docker) come up with rx on")
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
    assert done and links == [netlink.Link(7, "eth0", "veth", 12, 0, 0)]
    assert links[0].peer_elsewhere


def test_netlink_names_are_bytes_and_come_back_unchanged() -> None:
    """Linux takes any name but '/', ':', NUL and whitespace: a tenant's \\xff must not stop a pass."""
    body = netlink.IFINFOMSG.pack(0, 0, 3, 0, 0) + rta(netlink.IFLA_IFNAME, b"\xff\x1b[2J\0")
    links, _ = netlink.parse(nlmsg(netlink.RTM_NEWLINK, body))
    assert links[0].name.encode("utf-8", "surrogateescape") == b"\xff\x1b[2J"
    assert netlink._name(links[0].name)[4:-1].rstrip(b"\0") == b"\xff\x1b[2J"
    assert shown(links[0].name) == "\\xff\\x1b[2J"  # printable, and no terminal escape left in it


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

    from badsum.fleet.runner import with_controller

    assert split_host_pattern(with_controller(limit)) == ["localhost", *split_host_pattern(limit)]


def test_a_record_says_why_a_host_failed_and_keeps_what_its_call_found() -> None:
    audit = {"risk": "exposed", "kernel": "3.10.0", "changed": False}
    rec = records.record("h1", "audit", audit, seconds=0.25)
    assert abs(rec.pop("finished_at") - time.time()) < 5
    assert rec.pop("badsum_version") == version()  # an operator reading it can tell which badsum wrote it
    assert rec == {
        "host": "h1",
        "phase": "audit",
        "status": "ok",
        "error": "",
        "changed": False,
        "seconds": 0.25,
        "textfile": {},
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


def test_records_reach_the_disk_before_the_rename_and_the_rename_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record rollback trusts survives a power cut: file flushed, renamed, directory flushed; private from
    its first byte (the mode is the open's, not a chmod after)."""
    from badsum.host.shared import common

    calls: list[tuple] = []
    real_open, real_fsync, real_rename = os.open, os.fsync, os.rename
    monkeypatch.setattr(
        os,
        "open",
        lambda path, flags, mode=0o777, **kw: (
            calls.append(("open", str(path), mode)) or real_open(path, flags, mode, **kw)
        ),
    )
    monkeypatch.setattr(
        os, "fsync", lambda fd: calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))) or real_fsync(fd)
    )
    monkeypatch.setattr(os, "rename", lambda a, b: calls.append(("rename", str(b))) or real_rename(a, b))
    target = tmp_path / "state.json"
    common.atomic_write(target, "{}", 0o600)
    kinds = [c[0] for c in calls]
    assert kinds == ["open", "fsync", "rename", "open", "fsync"], calls
    assert calls[0][2] == 0o600 and calls[2] == ("rename", str(target)) and calls[4] == ("fsync", str(tmp_path))
    assert target.stat().st_mode & 0o777 == 0o600 and target.read_text() == "{}"


def test_two_writers_with_the_same_pid_in_one_directory_both_land(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # An embedded lab's hosts share their lib dir, each in a PID namespace of its own: two kit
    # calls there can have the same PID (CI saw two installs at PID 8, one lost its temporary file).
    from badsum.host.shared import common

    monkeypatch.setattr(os, "getpid", lambda: 8)
    real_rename, target, nested = os.rename, tmp_path / "kit.pyz", []

    def rename(src: str, dst: str) -> None:
        if not nested:  # the other host writes the same file between this one's write and its rename
            nested.append(True)
            common.atomic_write(target, "theirs")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    common.atomic_write(target, "ours")
    assert target.read_text() == "ours" and not list(tmp_path.glob(".*.tmp"))


def test_a_container_gone_between_rollbacks_look_and_its_change_is_counted_not_fatal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from badsum.host.fleet import containers, remediate
    from badsum.host.shared.common import HostError

    kept = containers.Namespace(1, "/proc/1/ns/net", "pod a", "container:a")
    gone = containers.Namespace(2, "/proc/2/ns/net", "pod b", "container:b")
    turned_on: list[str] = []

    class Entered:
        def __init__(self, ns):
            self.ns = ns

        def __enter__(self):
            if self.ns is gone:
                raise HostError("the namespace 2 (pod b) is gone")

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(containers, "entered", Entered)
    monkeypatch.setattr(remediate.netlink, "set_rx_checksumming", lambda name, on: turned_on.append(name))
    plan = remediate.Restore()
    plan.on = [
        ({"ifname": "eth0", "owner": "pod a"}, kept, "eth0"),
        ({"ifname": "eth1", "owner": "pod b"}, gone, "eth1"),
    ]
    remediate._restore(plan)
    assert turned_on == ["eth0"]
    assert [v["ifname"] for v, _, _ in plan.on] == ["eth0"] and [v["ifname"] for v in plan.gone] == ["eth1"]


class Killed(BaseException):
    """The guard's process ended (SIGKILL) in the middle of a pass."""


def test_a_guard_killed_mid_pass_has_recorded_every_veth_it_touched(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Write-ahead: a namespace's veths are in guard-changes.jsonl before the first of them changes.

    Killed after the first veth of a pass (stop_guard's SIGKILL after 3 s, on a loaded host), a guard
    that recorded at the end of its pass left that veth off with no record: rollback never turned it on.
    """
    from contextlib import nullcontext

    from badsum.host.fleet import containers, guard

    ns = containers.Namespace(7, "/proc/7/ns/net", "pod a", "container:a")
    veths = [
        containers.Veth(7, 99, "container:a", ns.ref, "pod a", name, index, 2, -1, True, True)
        for name, index in (("eth0", 3), ("eth1", 4))
    ]
    files = guard.Files(str(tmp_path))
    turned_off: list[str] = []

    def set_rx(name: str, on: bool) -> None:
        recorded = [v["ifname"] for v in files.changed()]
        assert name in recorded, f"{name} changed before it was recorded ({recorded})"
        turned_off.append(name)
        raise Killed

    monkeypatch.setattr(containers, "entered", lambda ns: nullcontext())
    monkeypatch.setattr(containers, "veths_here", lambda ns, depth: veths)
    monkeypatch.setattr(guard.netlink, "set_rx_checksumming", set_rx)
    monkeypatch.setattr(guard.Sweeper, "_learn_nsid", lambda self, ns: None)
    sweeper = guard.Sweeper(None, record=lambda items: files.record_changes(items, sweeper))
    with pytest.raises(Killed):
        sweeper._visit(ns)
    assert turned_off == ["eth0"]
    assert [v["ifname"] for v in files.changed()] == ["eth0", "eth1"]  # eth1 still on: rollback leaves it


def test_rollback_reads_the_guards_changes_again_once_the_guard_has_stopped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The guard may turn a veth off between rollback's first look and its stop: that veth is restored too."""
    import argparse

    from badsum.host.fleet import remediate

    late = {"boot": "b", "netns": 7, "netns_cookie": 99, "ifindex": 3, "ifname": "eth0", "owner": "pod a", "rx": "on"}
    files = remediate.guard.Files(str(tmp_path))
    planned: list[list[str]] = []

    def plan_restore(recorded: list[dict]) -> remediate.Restore:
        planned.append([v["ifname"] for v in recorded])
        return remediate.Restore()

    def stop_guard(mode: str) -> None:
        files.record_changes([late])  # its last pass, finished on SIGTERM

    monkeypatch.setattr(
        remediate, "read_record", lambda: ({"veths": [], "guard": {"mode": "daemon"}}, None, tmp_path / "r")
    )
    monkeypatch.setattr(remediate, "state_dir", lambda: tmp_path)
    monkeypatch.setattr(remediate, "_plan_restore", plan_restore)
    monkeypatch.setattr(remediate, "_cni_undo", lambda args, only, state: [])
    monkeypatch.setattr(remediate, "unit_is_ours", lambda: False)
    monkeypatch.setattr(remediate, "stray_guards", lambda: [])
    monkeypatch.setattr(remediate, "stop_guard", stop_guard)
    monkeypatch.setattr(remediate, "remove_state_dir", lambda directory=None: [])
    remediate.rollback(argparse.Namespace(check=False))
    assert planned[-1] == ["eth0"], planned
