"""badsum.kit.workers: a killed ansible-playbook leaves no worker behind (workers setsid(), group kills miss them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from badsum.host.shared.common import alive

ROOT = Path(__file__).resolve().parents[2]
PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.command: sleep 20
      changed_when: false
"""


def workers(parent: int) -> list[int]:
    """Processes that are ansible-playbook forks of `parent` (same command line, parent = it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == parent:
                found.append(int(entry.name))
    return found


def test_a_killed_playbook_takes_its_workers_with_it(tmp_path: Path) -> None:
    (tmp_path / "play.yml").write_text(PLAY)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    playbook = Path(sys.executable).parent / "ansible-playbook"
    proc = subprocess.Popen(
        [str(playbook), "-i", "localhost,", str(tmp_path / "play.yml")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (forks := workers(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert forks, "ansible-playbook forked no worker within 30 s"
        # The worker left the playbook's process group, as Ansible's workers do: a group kill alone misses it.
        assert all(os.getpgid(w) != proc.pid for w in forks)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while any(alive(w) for w in forks) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(w) for w in forks), "a worker outlived its ansible-playbook"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
