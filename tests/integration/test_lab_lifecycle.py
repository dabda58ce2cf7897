"""`badsum lab up|down|status`: idempotent, and down leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from badsum.lab import cgroups
from badsum.lab.spec import NS_ROOT, STATE_ROOT
from conftest import ENV, LAB, ROOT, VENV_BIN, badsum, embedded_inventory

LIFE = "ilife"


def leftovers(lab_id: str) -> list[str]:
    """Everything of the lab that still exists, by kind."""
    found = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"netns {line.split()[0]}" for line in netns.splitlines() if line.startswith(f"{lab_id}-")]
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True).stdout)
    found += [f"link {link['ifname']}" for link in links if link["ifname"].startswith(f"{lab_id}-")]
    found += [f"ns file {p}" for p in NS_ROOT.glob(f"{lab_id}-*")]
    mounts = Path("/proc/self/mounts").read_text()
    found += [f"mount {line.split()[1]}" for line in mounts.splitlines() if f"/{lab_id}-" in line.split()[1]]
    if (STATE_ROOT / lab_id).exists():
        found.append(f"state {STATE_ROOT / lab_id}")
    found += [f"cgroup {path}" for path in cgroups.leftovers(lab_id)]
    return found


def identity(pid: int) -> tuple[int, int, str] | None:
    """(pid, start time, state) of a process, or None when there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return pid, int(fields[19]), fields[0]  # an exiting process still counts: down waits for it


def test_up_twice_is_a_no_op_and_down_removes_everything(tmp_path: Path) -> None:
    badsum("lab", "down", "--lab", LIFE)
    first = badsum("lab", "up", "--lab", LIFE, "--hosts", "3", "--inventory", str(tmp_path))
    assert "is up" in first.stdout
    second = badsum("lab", "up", "--lab", LIFE, "--hosts", "3", "--inventory", str(tmp_path))
    assert "already up" in second.stdout
    status = json.loads(badsum("lab", "status", "--lab", LIFE, "--json").stdout)
    assert status[0]["healthy"] and len(status[0]["nodes"]) == 4
    assert (tmp_path / "hosts.yml").exists() and (tmp_path / ".ssh" / "known_hosts").exists()

    other = badsum("lab", "up", "--lab", LIFE, "--hosts", "2", "--inventory", str(tmp_path), check=False)
    assert other.returncode == 2 and "badsum lab down --lab ilife" in other.stderr
    elsewhere = badsum("lab", "up", "--lab", LIFE, "--hosts", "3", "--inventory", str(tmp_path / "x"), check=False)
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
    ip = next(line.split()[0] for line in known.read_text().splitlines())
    out = subprocess.run(
        ["ssh", "-i", str(key), "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
         "-o", "PasswordAuthentication=no", f"root@{ip}", "hostname"],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    assert out.returncode == 0 and out.stdout.strip() == "switch"


def test_down_after_sigkill_mid_experiment_leaves_nothing(tmp_path: Path) -> None:
    inv = embedded_inventory(tmp_path / "inv")
    lab_id = "ikill"
    badsum("lab", "down", "--lab", lab_id)
    badsum("lab", "up", "--lab", lab_id, "--hosts", "2", "--inventory", str(inv))
    proc = subprocess.Popen(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(inv), "playbooks/experiment.yml",
         "-e", f"badsum_lab_id={lab_id}", "-e", f"badsum_experiment_results_dir={tmp_path / 'results'}",
         "-e", '{"badsum_experiment_topologies": ["docker-ipv6"], "badsum_experiment_count": 200}'],
        cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    # Kill it once dockerd runs, the corruptor is armed and traffic flows: the worst moment.
    deadline = time.monotonic() + 90
    armed = False
    while time.monotonic() < deadline and not armed:
        out = subprocess.run(["ip", "netns", "exec", f"{lab_id}-sw", "tc", "filter", "show", "dev", "p2", "egress"],
                             capture_output=True, text=True).stdout  # fmt: skip
        armed = "corrupt" in out
        time.sleep(0.1)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert armed, "the experiment never armed the corruptor"
    status = json.loads(badsum("lab", "status", "--lab", lab_id, "--json").stdout)[0]
    assert status["processes"] > 0  # the server, the client, dockerd and the container were left running
    containers = Path(f"/sys/fs/cgroup/unified/badsum/{lab_id}/host2/docker")
    container_procs = [identity(int(pid)) for f in containers.rglob("cgroup.procs") for pid in f.read_text().split()]
    assert container_procs, "no container was running under the lab's cgroup"

    badsum("lab", "down", "--lab", lab_id)
    assert leftovers(lab_id) == []
    assert json.loads(badsum("lab", "status", "--lab", lab_id, "--json").stdout) == []
    # PIDs wrap quickly here (pid_max 32768): a process is the same one only with the same start time.
    alive = [p for p in container_procs if (now := identity(p[0])) and now[1] == p[1] and now[2] != "Z"]
    assert alive == [], "the killed run's container survived the teardown"
