"""`badsum lab up|down|status`: idempotent, and down leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from badsum.host.shared.common import identity
from conftest import ENV, LAB, ROOT, VENV_BIN, badsum, embedded_inventory
from residue import leftovers

LIFE = "ilife"


def test_up_twice_is_a_no_op_and_down_removes_everything(tmp_path: Path) -> None:
    badsum("lab", "down", "--lab", LIFE)
    first = badsum("lab", "up", "--lab", LIFE, "--hosts", "3", "--write-inventory", str(tmp_path))
    assert "is up" in first.stdout
    second = badsum("lab", "up", "--lab", LIFE, "--hosts", "3", "--write-inventory", str(tmp_path))
    assert "already up" in second.stdout
    status = json.loads(badsum("lab", "status", "--lab", LIFE, "--json").stdout)
    assert status[0]["healthy"] and len(status[0]["nodes"]) == 4
    assert (tmp_path / "hosts.yml").exists() and (tmp_path / ".ssh" / "known_hosts").exists()

    other = badsum("lab", "up", "--lab", LIFE, "--hosts", "2", "--write-inventory", str(tmp_path), check=False)
    assert other.returncode == 2 and "badsum lab down --lab ilife" in other.stderr
    elsewhere = badsum(
        "lab", "up", "--lab", LIFE, "--hosts", "3", "--write-inventory", str(tmp_path / "x"), check=False
    )
    assert elsewhere.returncode == 2 and f"with its inventory in {tmp_path}" in elsewhere.stderr

    assert "is down" in badsum("lab", "down", "--lab", LIFE).stdout
    assert leftovers(LIFE) == []
    assert not (tmp_path / "hosts.yml").exists() and not (tmp_path / ".ssh").exists()
    # nothing up: down still succeeds, and says so
    assert "was not up" in badsum("lab", "down", "--lab", LIFE).stdout


def test_ssh_reaches_each_host_with_checked_host_keys(lab: Path) -> None:
    key, known = lab / ".ssh" / "id_ed25519", lab / ".ssh" / "known_hosts"
    for addr, name in (("host1", "host1"), ("host2", "host2"), ("switch", "switch")):
        status = json.loads(badsum("lab", "status", "--lab", LAB, "--json").stdout)[0]
        assert any(n["name"] == name and n["sshd"] for n in status["nodes"]), addr
    hosts = (lab / "hosts.yml").read_text()
    assert "198.18." in hosts and "StrictHostKeyChecking=yes" in hosts
    # The first node in known_hosts is the switch, at its IPv4 and IPv6 management addresses: sshd answers on both.
    addresses = next(line.split()[0] for line in known.read_text().splitlines()).split(",")
    assert [a.count(":") > 1 for a in addresses] == [False, True], addresses
    for ip in addresses:
        out = subprocess.run(
            [
                "ssh",
                "-i",
                str(key),
                "-o",
                f"UserKnownHostsFile={known}",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "PasswordAuthentication=no",
                f"root@{ip}",
                "hostname",
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        assert out.returncode == 0 and out.stdout.strip() == "switch", (ip, out.stderr)


def test_reproduce_uses_a_lab_of_another_size_or_remakes_it_as_asked(tmp_path: Path) -> None:
    inv, lab_id = embedded_inventory(tmp_path / "inv"), "ifit"
    badsum("lab", "down", "--lab", lab_id)
    badsum("lab", "up", "--lab", lab_id, "--hosts", "4", "--write-inventory", str(inv))
    try:
        one = ["-e", '{"badsum_experiment_topologies": ["bare"], "badsum_experiment_conditions": ["patched"]}']

        def reproduce(*extra: str) -> subprocess.CompletedProcess[str]:
            argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(inv), "reproduce.yml", *one, *extra]
            argv += ["-e", f"badsum_lab_id={lab_id}", "-e", f"badsum_experiment_results_dir={tmp_path / 'results'}"]
            return subprocess.run(argv, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300, check=False)

        # No size asked: the lab as it is (left by `badsum lab up --hosts 4`), not an error.
        run = reproduce()
        assert run.returncode == 0, run.stdout[-3000:]
        assert "the run uses it as it is: 2 client/server pairs" in run.stdout
        assert json.loads(badsum("lab", "status", "--lab", lab_id, "--json").stdout)[0]["hosts"] == 4
        # Another size asked: the lab is made again at that size, and the run says so.
        run = reproduce("-e", "badsum_lab_hosts=2")
        assert run.returncode == 0, run.stdout[-3000:]
        assert "remade: it was up with 4 hosts, 2 were asked for" in run.stdout
        assert json.loads(badsum("lab", "status", "--lab", lab_id, "--json").stdout)[0]["hosts"] == 2
        # A bad size is refused before the lab is touched; a lab of another inventory is never remade.
        bad = badsum(
            "lab", "up", "--lab", lab_id, "--hosts", "500", "--remake", "--write-inventory", str(inv), check=False
        )
        assert bad.returncode == 64 and "argument --hosts: '500': allowed: a whole number from 1 to 200" in bad.stderr
        other = str(tmp_path / "other")
        elsewhere = badsum(
            "lab", "up", "--lab", lab_id, "--hosts", "4", "--remake", "--write-inventory", other, check=False
        )
        assert elsewhere.returncode == 2 and f"with its inventory in {inv}" in elsewhere.stderr
        assert json.loads(badsum("lab", "status", "--lab", lab_id, "--json").stdout)[0]["hosts"] == 2
    finally:
        badsum("lab", "down", "--lab", lab_id)


def test_down_after_sigkill_mid_experiment_leaves_nothing(tmp_path: Path) -> None:
    inv = embedded_inventory(tmp_path / "inv")
    lab_id = "ikill"
    badsum("lab", "down", "--lab", lab_id)
    badsum("lab", "up", "--lab", lab_id, "--hosts", "2", "--write-inventory", str(inv))
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            str(inv),
            "playbooks/experiment.yml",
            "-e",
            f"badsum_lab_id={lab_id}",
            "-e",
            f"badsum_experiment_results_dir={tmp_path / 'results'}",
            "-e",
            '{"badsum_experiment_topologies": ["docker-ipv6"], "badsum_experiment_count": 200}',
        ],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    # Kill it once dockerd runs, the corruptor is armed and traffic flows: the worst moment.
    deadline = time.monotonic() + 90
    armed = False
    while time.monotonic() < deadline and not armed:
        out = subprocess.run(
            ["ip", "netns", "exec", f"{lab_id}-sw", "tc", "filter", "show", "dev", "p2", "egress"],
            capture_output=True,
            text=True,
        ).stdout
        armed = "corrupt" in out
        time.sleep(0.1)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert armed, "the experiment never armed the corruptor"
    status = json.loads(badsum("lab", "status", "--lab", lab_id, "--json").stdout)[0]
    assert status["processes"] > 0  # the server, the client, dockerd and the container were left running
    containers = Path(f"/sys/fs/cgroup/unified/badsum/{lab_id}/host2/docker")
    pids = [int(pid) for f in containers.rglob("cgroup.procs") for pid in f.read_text().split()]
    container_procs = {i for pid in pids if (i := identity(pid))}
    assert container_procs, "no container was running under the lab's cgroup"

    badsum("lab", "down", "--lab", lab_id)
    # leftovers() compares (pid, start time): PIDs wrap quickly here, zombies do not count.
    assert leftovers(lab_id, container_procs) == []
    assert json.loads(badsum("lab", "status", "--lab", lab_id, "--json").stdout) == []
