"""The fleet remediation on hosts that boot systemd, on the kernel without the fix: the production path.

A VM lab of its own (vmts: host1, host2 and a switch, each guest booting
Debian's systemd as PID 1 on the unfixed lab kernel), with a Docker
container on host1 (dockerd as a transient systemd unit) and a CNI pod on
host2. Then, in order, as an operator would meet them:

    remediation    badsum fleet remediate: the guard is a systemd unit
                   (badsum-rx-guard.service, Type=notify, sandboxed), enabled;
                   the canary's real vulnerable cell comes out clean
    new container  containers started after the rollout have rx off
    crash          systemd restarts a SIGKILLed guard, which still protects
    disabled       a unit that runs but is not enabled: the audit says exposed,
                   remediate enables it
    upgrade        a unit another version wrote (no ordering before the
                   runtimes): exposed; remediate rewrites it, restarts the guard
    reboot         after `systemctl reboot` the guard is back before anything
                   else, and the node's pod, started again, is protected
    rollback       the unit stopped, disabled and removed, nothing failed or
                   left; every veth the guard turned off is on again

Each step checks the guests' own view (systemctl, ethtool in every container
namespace), not only what the kit reports.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import vmlab
from badsum.host.fleet.persistence import RUNTIME_UNITS, UNIT
from conftest import ENV, ROOT, VENV_BIN, badsum
from vmlab import MARKS

pytestmark = MARKS

LAB = "vmts"
HOSTS = ("host1", "host2")
MIX = ["docker-ipv6", "kubernetes"]  # host1: a Docker container; host2 (the canary): a CNI pod
UNIT_FILE = f"/etc/systemd/system/{UNIT}"
OLD = "badsum-test-old"
BOOT_RUNTIME = "mesos-agent"  # one of persistence.RUNTIME_UNITS
BOOT_RUNTIME_UNIT = """\
[Unit]
Description=badsum test: a container runtime that starts a container at boot
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'systemctl is-active badsum-rx-guard.service > /run/badsum-test-runtime-saw; \\
  ip netns add bootpod; ip link add bootpod0 type veth peer name boothost0; \\
  ip link set bootpod0 netns bootpod; ip link set boothost0 up; ip -n bootpod link set bootpod0 up'
[Install]
WantedBy=multi-user.target
"""

# Runs on a guest (python3 -): every veth in every network namespace but the
# host's, found by process and by bind mount, with its rx-checksumming as
# ethtool reads it. The ground truth the kit's own audit is checked against.
CONTAINER_VETHS = r"""
import json, os, subprocess
host = os.stat("/proc/1/ns/net").st_ino
refs = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        refs.setdefault(os.stat(f"/proc/{pid}/ns/net").st_ino, f"/proc/{pid}/ns/net")
    except OSError:
        pass
for line in open("/proc/self/mountinfo"):
    fields = line.split()
    if fields[fields.index("-") + 1] == "nsfs" and fields[3].startswith("net:["):
        try:
            refs.setdefault(os.stat(fields[4]).st_ino, fields[4])
        except OSError:
            pass
found = []
for ino, ref in refs.items():
    if ino == host:
        continue
    ns = ["nsenter", f"--net={ref}"]
    out = subprocess.run(ns + ["ip", "-j", "link", "show", "type", "veth"], capture_output=True, text=True).stdout
    for link in json.loads(out or "[]"):
        k = subprocess.run(ns + ["ethtool", "-k", link["ifname"]], capture_output=True, text=True).stdout
        found.append({"netns": ino, "ref": ref, "ifname": link["ifname"], "alias": link.get("ifalias", ""),
                      "rx": "on" if "rx-checksumming: on" in k else "off"})
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    yield from vmlab.vm_lab(LAB, "unfixed", tmp_path_factory.mktemp("vm-systemd-inventory"), init="systemd")


def sh(info: dict, host: str, *command: str, check: bool = True, stdin: str | None = None) -> str:
    return vmlab.ssh(info, host, *command, check=check, stdin=stdin).stdout.strip()


def systemctl(info: dict, host: str, *args: str) -> subprocess.CompletedProcess[str]:
    return vmlab.ssh(info, host, "systemctl", *args, check=False)


def unit_property(info: dict, host: str, prop: str) -> str:
    return sh(info, host, "systemctl", "show", "--value", "-p", prop, UNIT)


def container_veths(info: dict, host: str) -> list[dict]:
    return json.loads(vmlab.ssh(info, host, "python3", "-", stdin=CONTAINER_VETHS).stdout)


def mark_as_old(info: dict, host: str) -> None:
    """An alias on every container veth there is now: a new container's veths have none. (Namespace
    inodes and ifindexes are reused by the kernel, so they cannot tell a new container from an old one.)"""
    for v in container_veths(info, host):
        sh(info, host, "nsenter", f"--net={v['ref']}", "ip", "link", "set", "dev", v["ifname"], "alias", OLD)


def playbook(info: dict, play: str, *extra: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(info["inventory"]), play, *extra]
    return subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout, check=False)


def start_containers(info: dict, *hosts: str, recreate: bool = False) -> None:
    extra = json.dumps({"badsum_fleet_lab_mix": MIX, "badsum_fleet_lab_recreate": recreate})
    run = playbook(info, "playbooks/fleet_lab.yml", "--limit", ",".join(hosts), "-e", extra)
    assert run.returncode == 0, run.stdout[-4000:]


def fleet(info: dict, phase: str, results: Path) -> tuple[int, dict]:
    extra = json.dumps({"badsum_fleet_results_dir": str(results), "badsum_fleet_run_id": phase})
    run = subprocess.run(
        [sys.executable, "-m", "badsum", "fleet", phase, "-i", str(info["inventory"]), "--json", "-e", extra],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert run.stdout.strip(), run.stderr[-3000:]
    return run.returncode, json.loads(run.stdout)


# What the fleet role passes on every call, from its defaults (the host kit has none of its own).
FLEET = yaml.safe_load((ROOT / "roles/badsum_fleet/defaults/main.yml").read_text())
CNI = {"cni_conf_dir": FLEET["badsum_fleet_cni_conf_dirs"], "cni_bin_dir": FLEET["badsum_fleet_cni_bin_dir"]}
AUDIT = {**CNI, "textfile_dir": ""}
APPLY = {
    **CNI,
    "guard": FLEET["badsum_fleet_guard"],
    "interval": FLEET["badsum_fleet_guard_interval"],
    "vxlan": FLEET["badsum_fleet_vxlan_remediation"],
}


def kit_call(info: dict, host: str, tool: str, action: str, **args) -> dict:
    """One host-kit call through badsum.kit.run, as the fleet playbooks make it (the kit comes with it)."""
    module_args = json.dumps({"tool": tool, "action": action, "ephemeral": True, "args": args})
    proc = subprocess.run(
        [str(VENV_BIN / "ansible"), "-i", str(info["inventory"]), host, "-m", "badsum.kit.run", "-a", module_args],
        cwd=ROOT,
        env=dict(ENV, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"][host]


def kit_verify(info: dict, host: str) -> dict:
    """The kit's own verification, as the rollout runs it: veths made the Docker and CNI ways, now."""
    return kit_call(info, host, "remediate", "verify", new_container=True, wait=5, **CNI)


def wait_for(what: str, test, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not test():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(1)


def test_every_guest_runs_systemd_with_nothing_failed_and_no_address_of_its_own_choosing(lab: dict) -> None:
    for host in (*HOSTS, "switch"):
        assert sh(lab, host, "cat", "/proc/1/comm") == "systemd"
        state = systemctl(lab, host, "is-system-running", "--wait")
        assert state.stdout.strip() == "running", sh(lab, host, "systemctl", "--failed", "--no-legend", check=False)
        # The masked system dockerd would have taken 172.17.0.0/16; nothing may leave the lab's ranges.
        addresses = {a["local"] for i in json.loads(sh(lab, host, "ip", "-j", "addr")) for a in i["addr_info"]}
        assert all(a.startswith(("198.18.", "198.19.", "fd00:", "fe80:", "127.", "::1")) for a in addresses), addresses


def test_containers_start_under_systemd(lab: dict) -> None:
    start_containers(lab, *HOSTS)
    # The kit's private dockerd runs as a transient unit where systemd runs (facts.service_manager).
    assert systemctl(lab, "host1", "is-active", "badsum-dockerd").stdout.strip() == "active"
    for host in HOSTS:
        veths = container_veths(lab, host)
        assert veths and all(v["rx"] == "on" for v in veths), (host, veths)  # exposed, as the kernel is


def test_check_mode_shows_the_unit_it_would_write_and_changes_nothing(lab: dict, tmp_path: Path) -> None:
    extra = json.dumps({"badsum_fleet_results_dir": str(tmp_path), "badsum_fleet_run_id": "check"})
    run = playbook(lab, "playbooks/remediate.yml", "--check", "--diff", "-e", extra)
    assert run.returncode == 0, run.stdout[-4000:]
    assert f"+++ after: {UNIT_FILE}" in run.stdout and "+Type=notify" in run.stdout
    for host in HOSTS:
        assert vmlab.ssh(lab, host, "test", "-e", UNIT_FILE, check=False).returncode == 1
        assert systemctl(lab, host, "is-enabled", UNIT).returncode != 0
        assert all(v["rx"] == "on" for v in container_veths(lab, host))


def test_the_rollout_runs_the_guard_as_an_enabled_sandboxed_unit(lab: dict, tmp_path_factory) -> None:
    results = tmp_path_factory.mktemp("fleet-results")
    lab["results"] = results
    code, summary = fleet(lab, "remediate", results)
    assert code == 0 == summary["exit_status"], summary["problems"]
    assert summary["status"] == {"ok": 2} and summary["risk"] == {"exposed": 2}
    assert summary["risk_after"] == {"mitigated": 2}
    # The canary's own cell, on the real unfixed kernel: the bug is there, the workaround holds.
    cell = json.loads((results / "remediate" / "canary" / "mesos-vulnerable.json").read_text())
    assert cell["verdict"] == "clean" and cell["condition_kind"] == "real", cell["verdict_reason"]
    assert cell["kernel"].endswith("-badsum-unfixed")
    for host in HOSTS:
        record = json.loads((results / "remediate" / "hosts" / f"{host}.json").read_text())
        assert record["after"]["guard"]["mode"] == "systemd" and record["after"]["guard"]["gap"] is None
        assert systemctl(lab, host, "is-active", UNIT).stdout.strip() == "active"
        assert systemctl(lab, host, "is-enabled", UNIT).stdout.strip() == "enabled"
        assert unit_property(lab, host, "Type") == "notify"
        assert unit_property(lab, host, "ControlGroup") == f"/system.slice/{UNIT}"
        assert unit_property(lab, host, "ProtectSystem") == "strict"
        assert "container veths turned to rx off" in unit_property(lab, host, "StatusText")
        main_pid = unit_property(lab, host, "MainPID")
        assert "guard" in sh(lab, host, "cat", f"/proc/{main_pid}/cmdline").replace("\0", " ")
        # Every setting of the unit is one this systemd knows: nothing silently ignored.
        verify = vmlab.ssh(lab, host, "systemd-analyze", "verify", UNIT_FILE, check=False)
        assert verify.returncode == 0 and UNIT not in verify.stderr, verify.stderr
        veths = container_veths(lab, host)
        assert veths and all(v["rx"] == "off" for v in veths), (host, veths)


def test_containers_started_after_the_rollout_come_up_protected(lab: dict) -> None:
    for host in HOSTS:
        mark_as_old(lab, host)
    start_containers(lab, *HOSTS, recreate=True)
    for host in HOSTS:
        veths = container_veths(lab, host)
        assert veths and all(v["alias"] != OLD for v in veths), f"{host}: the containers were not made anew"
        assert all(v["rx"] == "off" for v in veths), (host, veths)


def test_systemd_restarts_a_killed_guard_which_still_protects(lab: dict) -> None:
    old = unit_property(lab, "host2", "MainPID")
    restarts = int(unit_property(lab, "host2", "NRestarts"))
    sh(lab, "host2", "kill", "-9", old)

    def back() -> bool:
        pid = unit_property(lab, "host2", "MainPID")
        active = systemctl(lab, "host2", "is-active", UNIT).stdout.strip() == "active"
        return active and pid not in ("0", old)

    wait_for("the guard restarted by systemd", back, 60)
    assert int(unit_property(lab, "host2", "NRestarts")) == restarts + 1
    result = kit_verify(lab, "host2")
    assert result["ok"] is True, result.get("problems")
    # Docker/Mesos-style and CNI-style veths, made now: the restarted guard turned both off.
    assert len(result["new_containers"]) == 2 and all(c["seconds"] is not None for c in result["new_containers"])


def test_a_disabled_unit_leaves_the_host_exposed_until_remediation_enables_it_again(lab: dict) -> None:
    """Running but not enabled: protected now, not after the next reboot. The audit and the check must say so."""
    sh(lab, "host1", "systemctl", "disable", UNIT)
    why = f"{UNIT} runs but is disabled"
    result = kit_verify(lab, "host1")
    assert result["ok"] is False
    assert result["problems"] == [f"containers created after a reboot would come up with rx on: {why}"]
    audit = kit_call(lab, "host1", "audit", "show", **AUDIT)
    assert audit["risk"] == "exposed" and "after a reboot" in audit["reason"], audit["reason"]
    assert audit["guard"]["running"] is True and audit["guard"]["gap"] == why
    applied = kit_call(lab, "host1", "remediate", "apply", **APPLY)
    assert f"restart the guard (systemd unit {UNIT}): {why}" in applied["changes"]
    assert systemctl(lab, "host1", "is-enabled", UNIT).stdout.strip() == "enabled"
    assert kit_call(lab, "host1", "audit", "show", **AUDIT)["risk"] == "mitigated"
    assert kit_verify(lab, "host1")["ok"] is True


def test_a_unit_from_another_version_is_rewritten_and_the_guard_restarted_from_it(lab: dict) -> None:
    """A host remediated by an older badsum: its unit lacks the ordering before the runtimes (here: no Before=)."""
    sh(lab, "host1", "sed", "-i", "/^Before=/d", UNIT_FILE)
    sh(lab, "host1", "systemctl", "daemon-reload")
    old_pid = unit_property(lab, "host1", "MainPID")
    audit = kit_call(lab, "host1", "audit", "show", **AUDIT)
    assert audit["risk"] == "exposed" and audit["reason"].startswith("containers created at boot"), audit["reason"]
    applied = kit_call(lab, "host1", "remediate", "apply", **APPLY)
    assert any(c.startswith(f"restart the guard (systemd unit {UNIT}): ") for c in applied["changes"]), applied
    assert "docker.service" in unit_property(lab, "host1", "Before")
    assert unit_property(lab, "host1", "MainPID") not in ("0", old_pid)  # running from the unit now written
    assert kit_call(lab, "host1", "audit", "show", **AUDIT)["risk"] == "mitigated"


def test_after_a_reboot_the_guard_is_up_before_the_runtimes_and_protects_their_containers(lab: dict) -> None:
    # A stand-in for a runtime that starts its containers at boot, under one of the names the
    # guard's unit orders itself before: what it sees of the guard, and a container veth.
    assert f"{BOOT_RUNTIME}.service" in RUNTIME_UNITS
    sh(lab, "host2", "tee", f"/etc/systemd/system/{BOOT_RUNTIME}.service", stdin=BOOT_RUNTIME_UNIT)
    sh(lab, "host2", "systemctl", "enable", BOOT_RUNTIME)
    boot_id = sh(lab, "host2", "cat", "/proc/sys/kernel/random/boot_id")
    systemctl(lab, "host2", "reboot", "--no-block")

    def rebooted() -> bool:
        now = vmlab.ssh(lab, "host2", "cat", "/proc/sys/kernel/random/boot_id", check=False, timeout=15)
        return now.returncode == 0 and now.stdout.strip() not in ("", boot_id)

    wait_for("host2 back after its reboot", rebooted, 300)
    assert systemctl(lab, "host2", "is-system-running", "--wait").stdout.strip() == "running"
    assert systemctl(lab, "host2", "is-active", UNIT).stdout.strip() == "active"
    # The runtime started after the guard was ready (Type=notify + Before=): no window at boot.
    assert sh(lab, "host2", "cat", "/run/badsum-test-runtime-saw") == "active"
    veths = container_veths(lab, "host2")
    assert [v["ifname"] for v in veths] == ["bootpod0"] and veths[0]["rx"] == "off", veths
    # The CNI pod did not survive the reboot: started again, as its runtime would.
    start_containers(lab, "host2", recreate=True)
    veths = container_veths(lab, "host2")
    assert len(veths) == 2 and all(v["rx"] == "off" for v in veths), veths
    assert kit_verify(lab, "host2")["ok"] is True


def test_rollback_removes_the_unit_and_turns_every_veth_back_on(lab: dict) -> None:
    code, summary = fleet(lab, "rollback", lab["results"])
    assert code == 0, summary["problems"]
    assert summary["status"] == {"ok": 2}
    for host in HOSTS:
        assert systemctl(lab, host, "is-active", UNIT).stdout.strip() == "inactive"
        assert systemctl(lab, host, "is-enabled", UNIT).returncode != 0
        assert (
            sh(lab, host, "ls", "/etc/systemd/system/", "/etc/systemd/system/multi-user.target.wants/").count(
                "badsum-rx-guard"
            )
            == 0
        )
        assert sh(lab, host, "systemctl", "list-units", "--all", "--plain", "--no-legend", "badsum-rx-guard*") == ""
        assert sh(lab, host, "systemctl", "--failed", "--plain", "--no-legend") == ""
        # The record, the guard's files and its copy of the kit, and the directory that held them: all gone.
        assert vmlab.ssh(lab, host, "test", "-e", "/var/lib/badsum/remediation", check=False).returncode == 1
        veths = container_veths(lab, host)
        assert veths and all(v["rx"] == "on" for v in veths), (host, veths)


def test_down_leaves_nothing_behind(lab: dict) -> None:
    vmlab.assert_down_leaves_nothing(lab)
    assert "was not up" in badsum("lab", "down", "--lab", LAB).stdout
