"""The bad-input catalogue: every bad value, option and inventory is refused before anything changes.

Each case asserts the exit status, that the message names the culprit (the
variable or option, the value, what is allowed), that there is no Python
traceback, and that nothing changed: no task ran on any lab host (the play
recap names only the controller) and no run directory was made.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from badsum.lab.spec import STATE_ROOT
from conftest import ENV, LAB, ROOT, VENV_BIN, badsum, embedded_inventory, playbook, real_hosts_inventory

# (extra var, value as passed to -e, what the message must say)
VARIABLES = [
    ("badsum_experiment_rate", "101", "badsum_experiment_rate='101': allowed: a number from 0 to 100"),
    ("badsum_experiment_rate", "-1", "badsum_experiment_rate='-1': allowed"),
    ("badsum_experiment_rate", "abc", "badsum_experiment_rate='abc': not a number"),
    ("badsum_experiment_interval", "-1", "badsum_experiment_interval='-1': allowed"),
    ("badsum_experiment_size", "0", "badsum_experiment_size='0': allowed: a whole number from 1"),
    ("badsum_experiment_size", "100000000", "badsum_experiment_size='100000000'"),
    ("badsum_experiment_count", "0", "badsum_experiment_count='0'"),
    ("badsum_experiment_count", "many", "badsum_experiment_count='many': not a whole number"),
    ("badsum_experiment_corruption_duration", "-1", "badsum_experiment_corruption_duration='-1'"),
    ("badsum_experiment_corruption_duration", "60", "must end before the traffic does"),
    ("badsum_experiment_corruption_start_in", "x", "badsum_experiment_corruption_start_in='x': not a number"),
    ("badsum_experiment_pattern", "nope", "badsum_experiment_pattern='nope': allowed: 'random', 'stuck-bit'"),
    ("badsum_experiment_backend", "nope", "badsum_experiment_backend='nope': allowed: 'ebpf', 'netem'"),
    ("badsum_experiment_port", "0", "badsum_experiment_port='0': allowed: a whole number from 1 to 65535"),
    ("badsum_experiment_port", "22", "badsum_experiment_port=22: that is SSH's port"),
    ("badsum_experiment_port", "65536", "badsum_experiment_port='65536'"),
    ("badsum_experiment_topologies", "bare", "badsum_experiment_topologies='bare': must be a list"),
    ("badsum_experiment_topologies", '["bare", "nope"]', "unknown 'nope'"),
    ("badsum_experiment_topologies", "[]", "must name at least one"),
    ("badsum_experiment_conditions", '["patched", "fixed"]', "unknown 'fixed'; allowed items: vulnerable"),
    ("badsum_experiment_conntrack_checksum", "2", "badsum_experiment_conntrack_checksum='2'"),
    ("badsum_experiment_kernel_fixed", "maybe", "badsum_experiment_kernel_fixed='maybe'"),
    ("badsum_experiment_spread", "perhaps", "badsum_experiment_spread='perhaps': allowed: true or false"),
    ("badsum_experiment_min_corrupted", "-3", "badsum_experiment_min_corrupted='-3'"),
    ("badsum_experiment_capture", "sometimes", "badsum_experiment_capture='sometimes'"),
    ("badsum_experiment_run_id", "../../etc", "badsum_experiment_run_id='../../etc'"),
    ("badsum_experiment_results_dir", "relative/dir", "badsum_experiment_results_dir='relative/dir'"),
    ("badsum_corruption_stuck_bit", "9", "badsum_corruption_stuck_bit='9'"),
    ("badsum_corruption_stuck_offset", "40", "badsum_corruption_stuck_offset='40'"),
    ("badsum_corruption_direction", "up", "badsum_corruption_direction='up'"),
    ("badsum_lab_hosts", "3", "badsum_lab_hosts=3: allowed: an even number"),
    ("badsum_lab_hosts", "500", "badsum_lab_hosts='500'"),
    ("badsum_lab_id", "Bad-Id", "badsum_lab_id='Bad-Id'"),
    ("badsum_lab_hots", "4", "badsum_lab_hots: not a variable badsum knows; did you mean badsum_lab_hosts?"),
    ("badsum_corruption_stuck_bits", "3", "did you mean badsum_corruption_stuck_bit?"),
]

# Every one exits 64 (usage), before anything changes.
CLI = [
    (["lab", "up", "--hosts", "0"], "argument --hosts: '0': allowed: a whole number from 1 to 200"),
    (["lab", "up", "--hosts", "500"], "argument --hosts: '500': allowed: a whole number from 1 to 200"),
    (["lab", "up", "--hosts", "-1"], "argument --hosts: '-1': allowed: a whole number from 1 to 200"),
    (["lab", "up", "--hosts", "two"], "argument --hosts: 'two' is not a whole number"),
    (["lab", "up", "--lab", "Bad-Id"], "lab id 'Bad-Id' is not valid"),
    (["lab", "up", "--lab", "toolongid"], "lab id 'toolongid' is not valid"),
    (["lab", "up", "--slot", "99"], "argument --slot: '99': allowed: a whole number from 0 to 31"),
    (["lab", "up", "--kernel", "fixed"], "--kernel: not an option of a embedded lab"),
    (["lab", "up", "--provider", "qemu"], "--provider qemu needs --kernel"),
    (["lab", "up", "--remake"], "--remake: only with --hosts N"),
    (["lab", "status", "--hosts", "3", "--kernel", "fixed"], "unrecognized arguments: --hosts 3 --kernel fixed"),
    (["lab", "sideways"], "invalid choice: 'sideways'"),
    (["lab", "up", "--memory-max", "1x"], "argument --memory-max: '1x' is not a size (e.g. 512M, 2G)"),
    (["lab", "up", "--pids-max", "3"], "argument --pids-max: '3': allowed: a whole number, at least 64"),
    (["lab", "up", "--cpu-weight", "0"], "argument --cpu-weight: '0': allowed: a whole number from 1 to 10000"),
    (["workshop", "up", "--students", "3", "--lab-memory", "100G"], "--lab-memory 100G: allowed: 256 MiB to "),
    (["workshop", "up", "--students", "3", "--lab-pids", "5"], "--lab-pids 5: allowed: a whole number from 64 to "),
    (["workshop", "up", "--students", "3", "--lab-cpu-weight", "0"], "--lab-cpu-weight 0: allowed: a whole number"),
    (["workshop", "up", "--students", "0"], "argument --students: '0': allowed: a whole number from 1 to"),
    (["summary", "no-such-run"], "RUN no-such-run: no"),
    (["report", "no-such-run"], "RUN no-such-run: no"),
    (["analyze", "/no/such/raw"], "/no/such/raw/cell.json: missing"),
    (["reproduce", "-e", "nonsense"], "-e 'nonsense': 'nonsense' is not KEY=VALUE"),
    (["reproduce", "-e", "@/no/such/preset.yml"], "Could not find or access '/no/such/preset.yml'"),
    (["reproduce", "-e", "{broken"], "-e '{broken': YAML parsing failed"),
    (["reproduce", "-i", "/no/such/inventory"], "'/no/such/inventory': no such inventory"),
    (["fleet", "audit", "--check"], "unrecognized arguments: --check"),
]


def no_traceback(text: str) -> None:
    assert "Traceback (most recent call last)" not in text, text[-2000:]


def recap_hosts(stdout: str) -> set[str]:
    return set(re.findall(r"^(\S+)\s+: ok=", stdout, re.M))


@pytest.mark.parametrize(("name", "value", "message"), VARIABLES, ids=[f"{n}={v}" for n, v, _ in VARIABLES])
def test_a_bad_variable_is_refused_before_anything_changes(
    lab: Path, tmp_path: Path, name: str, value: str, message: str
) -> None:
    extra = json.dumps({name: json.loads(value)}) if value.startswith("[") else f"{name}={value}"
    results = tmp_path / "results"
    run = playbook(lab, "reproduce.yml", results, "-e", extra)
    assert run.returncode != 0
    assert message in run.stdout, run.stdout[-2000:]
    no_traceback(run.stdout + run.stderr)
    assert recap_hosts(run.stdout) == {"localhost"}, "a task ran on a lab host"
    assert not results.exists() or not any(results.iterdir()), "a run directory was made"


@pytest.mark.parametrize(("argv", "message"), CLI, ids=[" ".join(a) for a, _ in CLI])
def test_a_bad_command_line_is_a_clear_one_line_error(tmp_path: Path, argv: list[str], message: str) -> None:
    proc = (
        badsum(*argv, "--results", str(tmp_path), check=False)
        if argv[0] in ("summary", "report")
        else badsum(*argv, check=False)
    )
    assert proc.returncode == 64, proc.stdout + proc.stderr
    assert message in proc.stderr, proc.stderr
    no_traceback(proc.stderr)
    assert not list(tmp_path.iterdir())
    if argv[0] == "workshop":  # no room, no lab was made
        from badsum.workshop import room

        assert not room.ROOT.exists() and not (STATE_ROOT / "st01").exists()


def inventory_like_two_hosts(tmp_path: Path, lab: Path, change) -> Path:
    path = real_hosts_inventory(lab, tmp_path / "inventory.yml")
    inventory = yaml.safe_load(path.read_text())
    change(inventory)
    path.write_text(yaml.safe_dump(inventory))
    return path


INVENTORIES = [
    (lambda i: i["all"]["children"].pop("servers"), "no hosts in group servers"),
    (lambda i: i["all"]["children"].pop("clients"), "no hosts in group clients"),
    (
        lambda i: i["all"]["children"]["servers"]["hosts"]["host2"].pop("badsum_data_ipv4"),
        "badsum_data_ipv4 is not set on host2",
    ),
    (
        lambda i: i["all"]["children"]["servers"]["hosts"]["host2"].update(badsum_data_ipv4="not-an-address"),
        "badsum_data_ipv4='not-an-address': must be an IPv4 address (on host2)",
    ),
    (
        lambda i: i["all"]["children"]["servers"]["hosts"]["host2"].update(badsum_docker_bip="172.17.0.1/16"),
        "badsum_docker_bip='172.17.0.1/16': is in 172.16.0.0/12",
    ),
    (
        lambda i: i["all"]["children"]["servers"]["hosts"]["host2"].update(badsum_experiment_client="ghost"),
        "badsum_experiment_client='ghost' (on host2): not a host of this inventory",
    ),
    (lambda i: i["all"]["vars"].pop("badsum_experiment_corruptor"), "badsum_experiment_corruptor is not set"),
    (
        lambda i: i["all"]["vars"].update(badsum_experiment_corruption_hook="sideways"),
        "badsum_experiment_corruption_hook='sideways' (for host2): allowed: 'egress', 'ingress'",
    ),
    (
        lambda i: i["all"]["children"]["servers"]["hosts"]["host2"].update(badsum_pod_cdr="198.18.128.0/28"),
        "badsum_pod_cdr (on host2): not a variable badsum knows; did you mean badsum_pod_cidr?",
    ),
]


def test_a_misspelt_variable_is_refused_in_seconds_naming_the_right_one_and_no_lab_is_made(tmp_path: Path) -> None:
    """The README's own command with a typo: refused by its first play, before the lab exists."""
    inventory = embedded_inventory(tmp_path / "inventory")
    lab_id = "ityp"  # a lab id of this test's own, never brought up
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), "reproduce.yml"]
    cmd += ["-e", f"badsum_lab_id={lab_id}", "-e", "badsum_experiment_rat=20"]
    started = time.monotonic()
    run = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60, check=False)
    seconds = time.monotonic() - started
    assert run.returncode != 0, run.stdout[-2000:]
    assert seconds < 3, f"refused after {seconds:.1f} s"
    assert "badsum_experiment_rat: not a variable badsum knows; did you mean badsum_experiment_rate?" in run.stdout
    no_traceback(run.stdout + run.stderr)
    assert recap_hosts(run.stdout) == {"localhost"}
    assert not (STATE_ROOT / lab_id).exists(), "a lab was made"
    assert not (inventory / "hosts.yml").exists(), "a lab inventory was written"
    assert "Bring up the embedded lab" not in run.stdout


@pytest.mark.parametrize(("change", "message"), INVENTORIES, ids=[m[:40] for _, m in INVENTORIES])
def test_a_bad_inventory_is_refused_naming_the_host_and_the_variable(
    lab: Path, tmp_path: Path, change, message: str
) -> None:
    inventory = inventory_like_two_hosts(tmp_path, lab, change)
    results = tmp_path / "results"
    run = playbook(inventory, "reproduce.yml", results)
    assert run.returncode != 0
    assert message in run.stdout, run.stdout[-2000:]
    no_traceback(run.stdout + run.stderr)
    assert recap_hosts(run.stdout) == {"localhost"}, "a task ran on a host"
    assert not results.exists()


def test_a_missing_data_interface_is_found_on_the_host_before_anything_changes(lab: Path, tmp_path: Path) -> None:
    inventory = inventory_like_two_hosts(
        tmp_path, lab, lambda i: i["all"]["children"]["servers"]["hosts"]["host2"].update(badsum_data_iface="eth9")
    )
    before = subprocess.run(["ip", "netns", "exec", f"{LAB}-h2", "ip", "-br", "link"], capture_output=True, text=True)
    run = playbook(inventory, "reproduce.yml", tmp_path / "results")
    assert run.returncode != 0
    assert "host2: badsum_data_iface=eth9 does not exist here; the interfaces are" in run.stdout, run.stdout[-2000:]
    no_traceback(run.stdout)
    after = subprocess.run(["ip", "netns", "exec", f"{LAB}-h2", "ip", "-br", "link"], capture_output=True, text=True)
    assert before.stdout == after.stdout
    assert not (tmp_path / "results").exists()


def test_a_lab_owned_by_another_inventory_says_where_it_is(lab: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-checkout"
    (other / "group_vars").mkdir(parents=True)
    (other / "group_vars" / "all.yml").write_text((ROOT / "inventories/local/group_vars/all.yml").read_text())
    run = playbook(other, "reproduce.yml", tmp_path / "results")
    assert run.returncode != 0
    assert f"lab {LAB} is already up, with its inventory in {lab}" in run.stdout, run.stdout[-2000:]
    assert f"badsum lab down --lab {LAB}" in run.stdout
    no_traceback(run.stdout)


def test_badsum_reproduce_refuses_a_bad_value_through_the_same_check(lab: Path, tmp_path: Path) -> None:
    run = subprocess.run(
        [
            str(VENV_BIN / "badsum"),
            "reproduce",
            "-i",
            str(lab),
            "--json",
            "-e",
            f"badsum_lab_id={LAB}",
            "-e",
            f"badsum_experiment_results_dir={tmp_path}",
            "-e",
            "badsum_experiment_rate=500",
        ],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 64  # refused by the playbook's checks, before anything changed: a usage error
    summary = json.loads(run.stdout)
    assert "badsum_experiment_rate='500'" in summary["failure"] and summary["exit_status"] == 64
    no_traceback(run.stdout + run.stderr)
