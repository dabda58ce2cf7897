"""The fleet: the active probe on this very kernel, the remediation scenario, and a rollout that must stop.

The scenario and the fault run on an emulated fleet of their own (lab
ifleet: 10 hosts, some with Docker, CNI pods or Mesos-style containers).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from badsum.host.shared.common import alive, identity
from badsum.lab import cgroups
from badsum.lab.spec import STATE_ROOT
from conftest import ENV, ROOT, VENV_BIN, badsum, embedded_inventory
from residue import badsum_programs, leftovers

FLEET_LAB = "ifleet"


def probe(*args: str) -> dict:
    run = subprocess.run(
        [sys.executable, "-m", "badsum.host", "probe", "run", *args],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def links() -> set[str]:
    return {
        link["ifname"]
        for link in json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True).stdout)
    }


def test_the_probe_says_fixed_on_this_kernel_and_leaves_nothing() -> None:
    before_links, before_programs = links(), badsum_programs()
    result = probe()
    assert result["verdict"] == "fixed" and result["kind"] == "real", result
    assert result["datagrams"]["good"] == {"delivered": True, "csum_errors": 0}
    assert result["datagrams"]["bad_rx_on"] == {"delivered": False, "csum_errors": 1}
    assert result["seconds"] < 1.0
    assert links() == before_links and badsum_programs() == before_programs


def test_the_vxlan_probe_measures_this_kernel_and_leaves_nothing() -> None:
    """The second hazard's probe on this kernel (6.18 here): the zero-checksum fix (ea64d8d6c675) is present, an
    outer checksum that is on is broken by NAT, the workaround cures both. Measured, never assumed: each NAT case
    counts only with the outer flow rewritten in conntrack, a drop only with B's UdpInCsumErrors up by one."""
    before_links, before_netns = links(), set(Path("/run/netns").iterdir()) if Path("/run/netns").exists() else set()
    run = subprocess.run(
        [sys.executable, "-m", "badsum.host", "probe", "vxlan"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    cases = result["cases"]
    assert cases["control"] == {**cases["control"], "delivered": True, "csum_errors": 0, "result": "ok"}
    assert cases["zero-csum"]["outer_nat"] is True and cases["zero-csum"]["result"] == "ok", result
    assert cases["lco"] == {**cases["lco"], "delivered": False, "csum_errors": 1, "outer_nat": True}, result
    assert all(cases[c]["result"] == "ok" for c in ("zero-csum+workaround", "lco+workaround")), result
    assert (result["zero_csum_fix"], result["lco_broken"], result["workaround_effective"]) == ("present", "yes", True)
    assert result["seconds"] < 10
    after_netns = set(Path("/run/netns").iterdir()) if Path("/run/netns").exists() else set()
    assert links() == before_links and after_netns == before_netns


def test_the_probes_vulnerable_branch_with_the_emulator(tmp_path: Path) -> None:
    env = dict(ENV, BADSUM_LIB_DIR=str(tmp_path))  # the emulator compiled into a directory of the test's own
    build = subprocess.run(
        [sys.executable, "-m", "badsum.host", "bpf", "build", "--program", "vethbug"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    run = subprocess.run(
        [sys.executable, "-m", "badsum.host", "probe", "run", "--emulate-bug"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    result = json.loads(run.stdout)
    assert result["verdict"] == "vulnerable" and result["kind"] == "emulated", result
    assert result["datagrams"]["bad_rx_on"]["delivered"] is True  # the bug: bad data delivered, nothing counted
    assert result["workaround_rx_off"] == "protects"  # and rx off stops it, as it did in 2016


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    inventory = embedded_inventory(tmp_path_factory.mktemp("fleet-inventory"))
    badsum("lab", "down", "--lab", FLEET_LAB)
    programs = badsum_programs()
    badsum("lab", "up", "--lab", FLEET_LAB, "--hosts", "10", "--write-inventory", str(inventory))
    yield inventory
    # Whatever the fleet still runs - guards, dockerd, containers - is the lab's, and goes with it.
    seen = lab_processes_all()
    badsum("lab", "down", "--lab", FLEET_LAB)
    # The probes' emulators go with their namespaces, which the kernel frees in the background.
    deadline = time.monotonic() + 15
    while badsum_programs() - programs and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leftovers(FLEET_LAB, seen, inventory, programs) == []


def ansible(inventory: Path, play: str, *extra: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), play, *extra]
    return subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout, check=False)


def test_the_remediation_scenario(fleet: Path, tmp_path: Path) -> None:
    # A fresh state: molecule skips prepare when an earlier run's state says "prepared".
    env = dict(ENV, BADSUM_MOLECULE_INVENTORY=str(fleet), MOLECULE_EPHEMERAL_DIRECTORY=str(tmp_path / "molecule"))
    run = subprocess.run(
        [str(VENV_BIN / "molecule"), "test", "-s", "remediation"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    output = re.sub(r"\x1b\[[0-9;]*m", "", run.stdout + run.stderr)
    assert run.returncode == 0, output[-5000:]
    for step in ("prepare", "converge", "idempotence", "side_effect", "verify", "cleanup"):
        assert f"{step}: Executed: Successful" in output, step
    assert re.search(r"testinfra: \d+ passed", output)  # the suite ran, on the remediated fleet
    assert "canary host2: emulated vulnerable mesos cell clean" in output


def lab_processes_all() -> set[tuple[int, int]]:
    return {i for host in (f"host{n}" for n in range(1, 11)) for pid in lab_processes(host) if (i := identity(pid))}


def lab_processes(host: str) -> list[int]:
    """Every process of one emulated host (the lab put them all in its cgroup)."""
    root = Path(f"/sys/fs/cgroup/freezer/badsum/{FLEET_LAB}/{host}")
    return sorted({int(pid) for f in root.rglob("cgroup.procs") for pid in f.read_text().split()})


def test_bad_fleet_settings_are_refused_before_any_host_is_touched(fleet: Path, tmp_path: Path) -> None:
    run = ansible(
        fleet,
        "playbooks/remediate.yml",
        "-e",
        json.dumps(
            {"badsum_fleet_batches": "ten", "badsum_fleet_guard": "cron", "badsum_fleet_results_dir": str(tmp_path)}
        ),
        timeout=60,
    )
    assert run.returncode != 0
    assert "badsum_fleet_batches='ten': a list of batch sizes" in run.stdout
    assert "badsum_fleet_guard='cron': allowed: 'auto', 'daemon', 'systemd', 'none'" in run.stdout
    assert "no host was touched" in run.stdout
    assert not re.search(r"host\d+\s+: ok=[1-9]", run.stdout)  # no task ran on any host
    assert list(tmp_path.iterdir()) == []


def test_the_fleet_playbooks_run_unchanged_from_an_awx_style_private_data_dir(fleet: Path, tmp_path: Path) -> None:
    """AWX lays a job out as ansible-runner's private data dir: project/, inventory/, env/. So do we.

    Each playbook is one AWX job template: audit, remediate (its canary cell
    included), rollback, one job after the other in the same directory.
    """
    assert ansible(fleet, "playbooks/fleet_lab.yml").returncode == 0  # its containers, as the scenario left them
    pdd = tmp_path / "job"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):  # a project sync: what the repository holds
        if (ROOT / name).is_file():
            (pdd / "project" / name).parent.mkdir(parents=True, exist_ok=True)
            (pdd / "project" / name).write_bytes((ROOT / name).read_bytes())
    (pdd / "inventory" / "group_vars").mkdir(parents=True)
    (pdd / "inventory" / "hosts.yml").write_text((fleet / "hosts.yml").read_text())
    (pdd / "inventory" / "group_vars" / "all.yml").write_text((fleet / "group_vars" / "all.yml").read_text())
    (pdd / "env").mkdir()
    (pdd / "env" / "settings").write_text(yaml.safe_dump({"job_timeout": 600, "idle_timeout": 300}))
    env = {k: v for k, v in ENV.items() if k != "ANSIBLE_CONFIG"}  # AWX runs from the project, with its ansible.cfg
    summaries = {}
    for phase in ("audit", "remediate", "rollback"):
        (pdd / "env" / "extravars").write_text(
            yaml.safe_dump({"badsum_fleet_results_dir": str(tmp_path / "results"), "badsum_fleet_run_id": phase})
        )
        run = subprocess.run(
            [str(VENV_BIN / "ansible-runner"), "run", str(pdd), "-p", f"playbooks/{phase}.yml", "--ident", phase],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert run.returncode == 0, f"{phase}: " + run.stdout[-3000:]
        summaries[phase] = json.loads((tmp_path / "results" / phase / "fleet.json").read_text())
        assert summaries[phase]["hosts"] == 10 and summaries[phase]["status"] == {"ok": 10}, phase
        events = [json.loads(p.read_text()) for p in (pdd / "artifacts" / phase).rglob("job_events/*.json")]
        # What AWX shows as the job's artifacts: the report's set_stats, as the playbook's stats event carries it
        # (the canary cell's own ansible-playbook, run from the rollout, adds a stats event of its own, empty).
        (stats,) = [
            e["event_data"]["artifact_data"]
            for e in events
            if e.get("event") == "playbook_on_stats" and e["event_data"].get("playbook") == f"playbooks/{phase}.yml"
        ]
        assert stats == summaries[phase]["stats"] and stats["badsum_fleet_ok"] == 10, phase
    exposed = summaries["audit"]["risk"].get("exposed", 0)
    assert exposed > 0  # the fleet has something to remediate
    assert summaries["remediate"]["risk_after"].get("exposed", 0) == 0
    assert summaries["rollback"]["risk_after"] == summaries["audit"]["risk"]  # put back as the audit found it


TEXTFILE_DIR = "/run/node-exporter"  # in each emulated host's own /run: node_exporter's directory there
HOSTS = [f"host{n}" for n in range(1, 11)]


def on_host(host: str, *cmd: str) -> subprocess.CompletedProcess[str]:
    """A command in the emulated host's own mount namespace (where its /run is)."""
    mnt = f"/run/badsum/ns/{FLEET_LAB}-h{host.removeprefix('host')}.mnt"
    return subprocess.run(["nsenter", f"--mount={mnt}", *cmd], capture_output=True, text=True, check=False)


def textfiles_on_hosts() -> dict[str, list[str]]:
    """Every file in each host's textfile directory (temporary ones too)."""
    listed = {h: on_host(h, "ls", "-A", TEXTFILE_DIR) for h in HOSTS}
    assert all(r.returncode == 0 for r in listed.values()), listed
    return {h: r.stdout.split() for h, r in listed.items()}


def fleet_run(fleet: Path, phase: str, results: Path, run_id: str, *extra: str) -> dict:
    settings = {"badsum_fleet_results_dir": str(results), "badsum_fleet_run_id": run_id}
    run = ansible(
        fleet,
        f"playbooks/{phase}.yml",
        "-e",
        json.dumps(settings | {"badsum_fleet_textfile_dir": TEXTFILE_DIR}),
        *extra,
    )
    assert run.returncode == 0, f"{phase} {extra}: " + run.stdout[-3000:]
    return json.loads((results / run_id / "fleet.json").read_text())


def check_textfiles(results: Path, run_id: str, phase: str) -> dict[str, str]:
    """Each host's badsum.prom is the run's metrics/<host>.prom, byte for byte; each host's class, one-hot."""
    from prometheus_client.parser import text_string_to_metric_families

    summary = json.loads((results / run_id / "fleet.json").read_text())
    classes = {}
    for row in summary["rows"]:
        host = row["host"]
        on = on_host(host, "cat", f"{TEXTFILE_DIR}/badsum.prom")
        assert on.returncode == 0, (host, on.stderr)
        assert on.stdout == (results / run_id / "metrics" / f"{host}.prom").read_text(), host
        families = {f.name: f for f in text_string_to_metric_families(on.stdout)}
        risk = {s.labels["class"]: s.value for s in families["badsum_host_risk"].samples}
        assert sum(risk.values()) == 1, (host, risk)
        classes[host] = next(c for c, v in risk.items() if v == 1)
        assert classes[host] == (row["risk_after"] or row["risk"]), (host, row)
        (last,) = families["badsum_last_run_timestamp_seconds"].samples
        assert last.labels == {"phase": phase} and abs(last.value - time.time()) < 600
    assert textfiles_on_hosts() == {h: ["badsum.prom"] for h in HOSTS}  # nothing else: no temporary file left
    return classes


def junit_cases(results: Path, run_id: str) -> dict[str, str]:
    """Each test case of the run's junit.xml: pass, or its failure/error type."""
    import xml.etree.ElementTree as ET

    (suite,) = ET.parse(results / run_id / "junit.xml").getroot().findall("testsuite")
    cases = {
        c.get("name"): next((f"{e.tag}:{e.get('type')}" for e in c if e.tag in ("failure", "error")), "pass")
        for c in suite.findall("testcase")
    }
    assert suite.get("tests") == str(len(cases)) and sorted(cases) == sorted(HOSTS)
    assert int(suite.get("failures")) + int(suite.get("errors")) == sum(v != "pass" for v in cases.values())
    return cases


def test_the_fleet_runs_write_node_exporter_textfiles_on_the_hosts_and_junit_on_the_controller(
    fleet: Path, tmp_path: Path
) -> None:
    assert ansible(fleet, "playbooks/fleet_lab.yml").returncode == 0
    for host in HOSTS:  # node_exporter's directory, as its package makes it: root's, 0755
        assert on_host(host, "mkdir", "-p", "-m", "0755", TEXTFILE_DIR).returncode == 0
        on_host(host, "rm", "-f", f"{TEXTFILE_DIR}/badsum.prom")
    results = tmp_path / "results"

    audit = fleet_run(fleet, "audit", results, "audit")
    found = check_textfiles(results, "audit", "audit")
    assert "exposed" in found.values() and found == {r["host"]: r["risk"] for r in audit["rows"]}
    cases = junit_cases(results, "audit")
    assert {h for h, v in cases.items() if v != "pass"} == {h for h, c in found.items() if c == "exposed"}
    assert set(cases.values()) <= {"pass", "failure:exposed"}

    # Check mode writes nothing on any host, whatever the playbook.
    for host in HOSTS:
        assert on_host(host, "rm", f"{TEXTFILE_DIR}/badsum.prom").returncode == 0
    for phase in ("audit", "remediate", "rollback"):
        checked = fleet_run(fleet, phase, results, f"{phase}-check", "--check", "--diff")
        assert checked["status"] == {"ok": 10}, phase
        assert textfiles_on_hosts() == {h: [] for h in HOSTS}, phase
    # The controller's files say it was check mode.
    check_prom = (results / "remediate-check" / "metrics" / "host1.prom").read_text()
    assert 'badsum_last_run_check_mode{phase="remediate"} 1' in check_prom
    assert set(junit_cases(results, "remediate-check").values()) == {"pass"}  # check mode remediates nobody

    remediated = fleet_run(fleet, "remediate", results, "remediate")
    after = check_textfiles(results, "remediate", "remediate")
    assert "exposed" not in after.values()
    assert {h for h, c in found.items() if c == "exposed"} <= {h for h, c in after.items() if c == "mitigated"}
    assert set(junit_cases(results, "remediate").values()) == {"pass"}
    assert remediated["stats"]["badsum_fleet_risk_exposed"] == 0
    assert remediated["stats"]["badsum_fleet_changed"] == sum(c == "exposed" for c in found.values())

    fleet_run(fleet, "rollback", results, "rollback")
    assert check_textfiles(results, "rollback", "rollback") == found  # back as the audit found it


# kube-proxy's rule before kubernetes#92035: its mark survives into the outer VXLAN packet.
KUBE_MASQUERADE = ["POSTROUTING", "-m", "mark", "--mark", "0x4000/0x4000", "-j", "MASQUERADE", "--random-fully"]


def test_a_host_with_an_exposed_vxlan_overlay_is_found_remediated_and_rolled_back(fleet: Path, tmp_path: Path) -> None:
    """The second hazard on the emulated fleet: flannel's device and kube-proxy's pre-#92035 rule on one host. The
    audit calls that host exposed to it (and no other), the rollout turns tx-checksum-ip-generic off there, the guard
    switches a recreated device off again, and rollback turns it back on."""
    netns = f"{FLEET_LAB}-h3"

    def net(*cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", netns, *cmd], capture_output=True, text=True, check=False)

    def knob() -> str:
        out = net("ethtool", "-k", "flannel.1").stdout
        return re.search(r"tx-checksum-ip-generic: (\w+)", out).group(1)

    def overlay() -> None:
        made = net(
            "ip", "link", "add", "flannel.1", "type", "vxlan", "id", "1", "dstport", "8472", "local", "198.18.200.3"
        )
        assert made.returncode == 0, made.stderr

    assert ansible(fleet, "playbooks/fleet_lab.yml").returncode == 0
    for host in HOSTS:  # fleet_run writes node_exporter textfiles: their directory, as its package makes it
        assert on_host(host, "mkdir", "-p", "-m", "0755", TEXTFILE_DIR).returncode == 0
    results = tmp_path / "results"
    try:
        overlay()
        assert net("iptables", "-t", "nat", "-A", *KUBE_MASQUERADE).returncode == 0
        audit = {r["host"]: r["vxlan_risk"] for r in fleet_run(fleet, "audit", results, "vx-audit")["rows"]}
        assert audit == {h: "exposed" if h == "host3" else "not-applicable" for h in HOSTS}, audit
        remediated = fleet_run(fleet, "remediate", results, "vx-remediate")
        after = {r["host"]: r["vxlan_risk_after"] for r in remediated["rows"]}
        assert after["host3"] == "mitigated" and knob() == "off", after
        assert remediated["stats"]["badsum_fleet_vxlan_risk_exposed"] == 0
        assert remediated["stats"]["badsum_fleet_vxlan_risk_mitigated"] == 1
        net("ip", "link", "del", "flannel.1")
        overlay()  # flannel recreates its device on a restart, the offload on
        deadline = time.monotonic() + 3
        while knob() != "off" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert knob() == "off", "the guard left the recreated device's offload on"
        rolled = fleet_run(fleet, "rollback", results, "vx-rollback")
        assert knob() == "on"  # the guard's change, recorded, undone
        assert {r["host"]: r["vxlan_risk_after"] for r in rolled["rows"]}["host3"] == "exposed"
    finally:
        net("ip", "link", "del", "flannel.1")
        net("iptables", "-t", "nat", "-D", *KUBE_MASQUERADE)


def fleet_cli(fleet: Path, phase: str, results: Path, run_id: str, **settings: object) -> tuple[int, dict]:
    """`badsum fleet PHASE --json`: its exit code (2: the rollout stopped) and the run's summary."""
    extra = {"badsum_fleet_results_dir": str(results), "badsum_fleet_run_id": run_id, **settings}
    argv = [sys.executable, "-m", "badsum", "fleet", phase, "-i", str(fleet), "--json", "-e", json.dumps(extra)]
    run = subprocess.run(argv, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900, check=False)
    assert run.returncode in (0, 2), run.stdout[-3000:] + run.stderr[-3000:]
    return run.returncode, json.loads(run.stdout)


def canary_cell(results: Path, run_id: str) -> dict:
    """The canary's one cell, as `badsum summary` reads it from the run's canary/ directory."""
    argv = [sys.executable, "-m", "badsum", "summary", str(results / run_id / "canary"), "--json"]
    run = subprocess.run(argv, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode in (0, 1), run.stderr[-2000:]  # 1: a cell that is not the incident's table
    (cell,) = json.loads(run.stdout)["cells"]
    return cell


def test_the_vxlan_nat_canary_is_host_a_and_its_cell_proves_the_remediation_or_stops_the_rollout(
    fleet: Path, tmp_path: Path
) -> None:
    """2020 on the canary: host3 (host4's client, no containers) carries flannel's device with 2020's outer
    checksum 0 and kube-proxy's pre-#92035 rule. The kernel has ea64d8d6c675; the bug is emulated, so the rollout
    treats it as missing. Remediated with the guard, the canary's vxlan-nat cell (its own zero-checksum device,
    made after the rollout: the guard's to switch off) comes out clean and the rollout goes on; without the guard
    the cell is valid-dropped, and with the VXLAN remediation off the canary is still exposed: the rollout stops
    at the canary both times, before any other host."""
    netns = f"{FLEET_LAB}-h3"

    def net(*cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", netns, *cmd], capture_output=True, text=True, check=False)

    canary = {"badsum_fleet_canary_topology": "vxlan-nat", "badsum_fleet_canary": "host3"}
    results = tmp_path / "results"
    others = [h for h in HOSTS if h != "host3"]
    for host in HOSTS:
        assert on_host(host, "mkdir", "-p", "-m", "0755", TEXTFILE_DIR).returncode == 0
    try:
        # 2020's flannel.1: outer checksum 0 (noudpcsum), as in the existing vxlan test otherwise.
        link = ["ip", "link", "add", "flannel.1", "type", "vxlan", "id", "1", "dstport", "8472"]
        made = net(*link, "local", "198.18.200.3", "noudpcsum")
        assert made.returncode == 0, made.stderr
        assert net("iptables", "-t", "nat", "-A", *KUBE_MASQUERADE).returncode == 0
        # The VXLAN remediation off: the canary stays exposed, the rollout stops before its cell.
        # (The canary's row keeps its own call's status: the stop is the exit code and the hosts not reached.)
        code, run = fleet_cli(fleet, "remediate", results, "vx-never", badsum_fleet_vxlan_remediation="never", **canary)
        status = {r["host"]: r["status"] for r in run["rows"]}
        assert code == 2 and {status[h] for h in others} == {"not reached"}, run["problems"]
        assert {r["host"]: r["vxlan_risk_after"] for r in run["rows"]}["host3"] == "exposed"
        assert not (results / "vx-never" / "canary").exists()  # stopped at the canary's assertion, before the cell
        # No guard: the rollout switches flannel.1 off, but nothing switches the cell's new device off.
        code, run = fleet_cli(fleet, "remediate", results, "vx-noguard", badsum_fleet_guard="none", **canary)
        status = {r["host"]: r["status"] for r in run["rows"]}
        assert code == 2 and {status[h] for h in others} == {"not reached"}, run["problems"]
        assert {r["host"]: r["vxlan_risk_after"] for r in run["rows"]}["host3"] == "mitigated"  # flannel.1 off
        assert canary_cell(results, "vx-noguard")["verdict"] == "valid-dropped"
        assert fleet_cli(fleet, "rollback", results, "vx-back1")[0] == 0
        # With the guard: the cell comes out clean, and the rollout goes on to every host.
        code, run = fleet_cli(fleet, "remediate", results, "vx-clean", **canary)
        assert code == 0, run["problems"]
        assert {r["host"]: r["status"] for r in run["rows"]} == dict.fromkeys(HOSTS, "ok")
        assert {r["host"]: r["vxlan_risk_after"] for r in run["rows"]}["host3"] == "mitigated"
        cell = canary_cell(results, "vx-clean")
        assert (cell["verdict"], cell["condition_kind"]) == ("clean", "emulated"), cell
    finally:
        fleet_cli(fleet, "rollback", results, "vx-back2")
        net("ip", "link", "del", "flannel.1")
        net("iptables", "-t", "nat", "-D", *KUBE_MASQUERADE)


PYTHON36 = Path("/root/.pyenv/versions/3.6.15")  # pyenv's, on this machine: what RHEL/CentOS 7 hosts run


def test_legacy_hosts_are_audited_remediated_and_rolled_back_with_no_ansible_module_on_them(
    fleet: Path, tmp_path: Path
) -> None:
    """Hosts whose Python no Ansible module runs on: ansible_python_interpreter is a program that always fails,
    so any module that reached a host would fail it. badsum_fleet_transport=raw carries the kit over the
    connection and runs it with the host's own Python - 3.6, the RHEL 7 one, where this machine has it."""
    if not (PYTHON36 / "bin" / "python3.6").exists():
        pytest.skip(f"no Python 3.6 at {PYTHON36} on this machine")
    assert ansible(fleet, "playbooks/fleet_lab.yml").returncode == 0  # its containers (modules: a normal host)
    # The emulated hosts see this machine's /var/lib, not its /root: Python 3.6 goes where they see it
    # (pyenv's finds its libpython by its build path, under /root: a wrapper says where it is now).
    python = STATE_ROOT / FLEET_LAB / "python3.6"
    if not python.exists():
        shutil.copytree(PYTHON36, python, symlinks=True)
    wrapper = python / "bin" / "python3.6-here"
    wrapper.write_text(f'#!/bin/sh\nLD_LIBRARY_PATH={python}/lib exec {python}/bin/python3.6 "$@"\n')
    wrapper.chmod(0o755)
    legacy = tmp_path / "legacy.yml"
    legacy.write_text(
        yaml.safe_dump(
            {
                "fleet": {
                    "vars": {
                        "ansible_python_interpreter": "/bin/false",
                        "badsum_fleet_transport": "raw",
                        "badsum_fleet_python": str(wrapper),
                    }
                }
            }
        )
    )
    results = tmp_path / "results"
    settings = {
        "badsum_fleet_results_dir": str(results),
        # The canary's cell is the experiment's: Ansible modules on the canary. Not on these hosts.
        "badsum_fleet_canary_cell": False,
        "badsum_fleet_canary_cell_waiver": "legacy hosts: no Ansible module can run there",
    }
    summaries = {}
    for phase in ("audit", "remediate", "rollback"):
        run = ansible(
            fleet,
            f"playbooks/{phase}.yml",
            "-i",
            str(legacy),
            "-e",
            json.dumps(settings | {"badsum_fleet_run_id": phase}),
        )
        assert run.returncode == 0, f"{phase}: " + run.stdout[-3000:]
        summaries[phase] = json.loads((results / phase / "fleet.json").read_text())
        assert summaries[phase]["status"] == {"ok": 10}, phase
        for host in HOSTS:  # the kit itself said which Python ran it
            record = json.loads((results / phase / "hosts" / f"{host}.json").read_text())
            assert record["status"] == "ok", (phase, host, record)
    assert summaries["audit"]["risk"].get("exposed", 0) > 0
    assert summaries["remediate"]["risk_after"].get("exposed", 0) == 0
    assert summaries["rollback"]["risk_after"] == summaries["audit"]["risk"]


def test_a_module_that_reaches_a_legacy_host_fails_it(fleet: Path, tmp_path: Path) -> None:
    """The other side of the test above: with the module transport, the failing interpreter does fail the hosts
    (so the test above would catch a module sneaking through)."""
    legacy = tmp_path / "legacy.yml"
    legacy.write_text(yaml.safe_dump({"fleet": {"vars": {"ansible_python_interpreter": "/bin/false"}}}))
    settings = {"badsum_fleet_results_dir": str(tmp_path / "results"), "badsum_fleet_run_id": "audit"}
    run = ansible(fleet, "playbooks/audit.yml", "-i", str(legacy), "-e", json.dumps(settings))
    assert run.returncode != 0
    summary = json.loads((tmp_path / "results" / "audit" / "fleet.json").read_text())
    assert summary["status"] == {"failed": 10}


# Last: it takes host5 of the module's fleet down for good.
def test_a_rollout_stops_at_a_failed_batch_and_leaves_the_later_ones_untouched(fleet: Path, tmp_path: Path) -> None:
    assert ansible(fleet, "playbooks/fleet_lab.yml").returncode == 0
    victim = "host5"  # in the second batch: host1 host3 | host4 host5 | host6 ... (host2 is the canary)
    # The host goes down the way teardown takes a lab down: by its cgroup, frozen
    # first, so nothing it forks meanwhile survives (a bare kill of a snapshot of
    # PIDs raced with sshd and dockerd forking, and with the kills still landing).
    assert cgroups.kill(f"{FLEET_LAB}/{victim}") == set()
    assert not any(alive(p) for p in lab_processes(victim))
    results = tmp_path / "results"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "badsum",
            "fleet",
            "remediate",
            "-i",
            str(fleet),
            "--json",
            "-e",
            json.dumps(
                {
                    "badsum_fleet_batches": [2],
                    "badsum_fleet_results_dir": str(results),
                    "badsum_fleet_run_id": "stopped",
                }
            ),
        ],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 2, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads(run.stdout)
    status = {row["host"]: row["status"] for row in summary["rows"]}
    assert (
        status["host5"] == "failed"
        and "unreachable" in next(r for r in summary["rows"] if r["host"] == "host5")["reason"]
    )
    assert {h: status[h] for h in ("host2", "host1", "host3", "host4")} == dict.fromkeys(
        ("host2", "host1", "host3", "host4"), "ok"
    )
    later = ("host6", "host7", "host8", "host9", "host10")
    assert {status[h] for h in later} == {"not reached"}
    lib = Path(
        yaml.safe_load((fleet / "hosts.yml").read_text())["all"]["children"]["badsum_lab"]["vars"]["badsum_lib_dir"]
    )
    assert [h for h in later if (lib / "remediation" / h).exists()] == []  # no remediation began there
    assert (lib / "remediation" / "host4" / "state.json").exists()  # its batch-mate was remediated
    assert any("host5" in p for p in summary["problems"])
    # The report the CLI wrote after the stopped rollout: JUnit and the counts say the same.
    cases = junit_cases(results, "stopped")
    assert cases["host5"] == "error:unreachable" and {cases[h] for h in later} == {"error:not-reached"}
    stats = summary["stats"]
    assert (stats["badsum_fleet_failed"], stats["badsum_fleet_unreachable"], stats["badsum_fleet_not_reached"]) == (
        1,
        1,
        5,
    )
    # Put the reachable hosts back.
    back = ansible(
        fleet,
        "playbooks/rollback.yml",
        "--limit",
        "localhost:fleet:!host5",
        "-e",
        json.dumps({"badsum_fleet_results_dir": str(results)}),
    )
    assert back.returncode == 0, back.stdout[-3000:]
