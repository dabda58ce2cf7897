"""`badsum lab up|down|status`: idempotent, and down leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from badsum.labspec import NS_ROOT, STATE_ROOT
from conftest import LAB, ROOT, VENV_BIN, badsum

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
    return found


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

    assert "is down" in badsum("lab", "down", "--lab", LIFE).stdout
    assert leftovers(LIFE) == []
    assert not (tmp_path / "hosts.yml").exists() and not (tmp_path / ".ssh").exists()
    # nothing up: down still succeeds
    assert badsum("lab", "down", "--lab", LIFE).returncode == 0


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
    inv = tmp_path / "inv"
    lab_id = "ikill"
    badsum("lab", "down", "--lab", lab_id)
    badsum("lab", "up", "--lab", lab_id, "--inventory", str(inv))
    (inv / "group_vars").mkdir()
    (inv / "group_vars" / "all.yml").write_text((ROOT / "inventories/local/group_vars/all.yml").read_text())
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    proc = subprocess.Popen(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(inv), "playbooks/experiment.yml",
         "-e", f"badsum_lab_id={lab_id}", "-e", f"badsum_results_dir={tmp_path / 'results'}",
         "-e", '{"badsum_experiment_topologies": ["docker-ipv6"], "badsum_experiment_count": 200}'],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    # Kill it once dockerd runs, the corruptor is armed and traffic flows: the worst moment.
    deadline = time.monotonic() + 90
    armed = False
    while time.monotonic() < deadline and not armed:
        out = subprocess.run(
            ["ip", "netns", "exec", f"{lab_id}-sw", "tc", "filter", "show", "dev", "p2", "egress"],
            capture_output=True,
            text=True,
        ).stdout
        armed = "badsum_corrupt" in out
        time.sleep(0.1)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert armed, "the experiment never armed the corruptor"
    in_lab = badsum("lab", "status", "--lab", lab_id, "--json").stdout
    assert json.loads(in_lab)[0]["processes"] > 0  # the server and the client were left running
    in_host = subprocess.run(
        ["ip", "netns", "pids", f"{lab_id}-h2"], capture_output=True, text=True
    ).stdout.split()
    names = {
        Path(f"/proc/{pid}/comm").read_text().strip() for pid in in_host if Path(f"/proc/{pid}").exists()
    }
    assert "dockerd" in names, names  # the cell was killed with its dockerd running

    badsum("lab", "down", "--lab", lab_id)
    assert leftovers(lab_id) == []
    assert json.loads(badsum("lab", "status", "--lab", lab_id, "--json").stdout) == []
    alive = [pid for pid in in_host if Path(f"/proc/{pid}").exists() and "Z" not in
             Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1]]  # fmt: skip
    assert alive == [], "processes of the killed run survived the teardown"
