"""badsum.kit.workers: a killed ansible-playbook leaves no worker behind (workers setsid(), group kills miss them),
nor the processes of the module a worker was running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from badsum.ansible import TETHER
from badsum.host.shared.common import alive

ROOT = Path(__file__).resolve().parents[2]
PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.command: sleep 21.5
      changed_when: false
"""


def stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name (state, ppid, pgrp, ...)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def group(pgid: int) -> list[int]:
    """The processes of a process group."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(stat(int(entry.name))[2]) == pgid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def module_running(forks: list[int]) -> list[int]:
    """The workers' process groups once the task's command (sleep 21.5) runs in one of them."""
    members = [pid for w in forks for pid in group(w)]
    for pid in members:
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x0021.5\x00":
                return members
        except OSError:
            continue
    return []


def workers(parent: int) -> list[int]:
    """Processes that are ansible-playbook forks of `parent` (same command line, parent = it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = stat(int(entry.name))
            except OSError:
                continue
            if int(fields[1]) == parent:
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
        while not (module := module_running(forks)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert module, "the task's command never ran in a worker's process group"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while any(alive(p) for p in forks + module) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(w) for w in forks), "a worker outlived its ansible-playbook"
        # The module's processes too (its shell, its Python, the command): the testinfra suite of a killed run went on.
        left = [p for p in module if alive(p)]
        assert not left, f"the module's processes {left} outlived their ansible-playbook"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


STARTER = f"""
import os, subprocess, sys
env = dict(os.environ, {TETHER}=str(os.getpid()))
# A session of its own, as ansible-runner starts ansible-playbook: the starter's death sends it nothing by itself.
child = subprocess.Popen(sys.argv[1:], env=env, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(child.pid, flush=True)
child.wait()
"""


def test_a_playbook_ends_with_the_badsum_command_that_started_it(tmp_path: Path) -> None:
    (tmp_path / "play.yml").write_text(PLAY)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    playbook = Path(sys.executable).parent / "ansible-playbook"
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(playbook), "-i", "localhost,", str(tmp_path / "play.yml")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    pid = int(starter.stdout.readline())
    try:
        deadline = time.monotonic() + 30
        while not (module := module_running(workers(pid))) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert module, "the playbook's command never ran"
        starter.kill()  # SIGKILL, to the starter alone: nothing of it runs after this
        starter.wait(timeout=10)
        deadline = time.monotonic() + 5
        while any(alive(p) for p in [pid, *module]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid), "ansible-playbook outlived the command that started it"
        assert not [p for p in module if alive(p)], "the module's processes outlived the run"
    finally:
        if starter.poll() is None:
            starter.kill()
        if alive(pid):
            os.killpg(pid, signal.SIGKILL)
