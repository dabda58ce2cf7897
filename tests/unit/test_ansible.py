"""badsum.ansible: one way to run Ansible. A watched playbook's failures outlive ansible-runner's private
directory, and a run stopped by a settings check is told from one that failed later."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from badsum import ansible

PLAY = """\
- hosts: localhost
  gather_facts: false
  connection: local
  tasks:
    - name: Fine
      ansible.builtin.debug:
        msg: fine
    - name: Ignored
      ansible.builtin.fail:
        msg: not this one
      ignore_errors: true
    - name: {name}
      {task}
"""
CHECK = """ansible.builtin.validate_argument_spec:
        argument_spec: {rate: {type: int}}
        provided_arguments: {rate: fast}"""
FAIL = """ansible.builtin.fail:
        msg: the host broke"""


@pytest.mark.parametrize(
    ("task", "name", "refused"), [(CHECK, "Check the settings", True), (FAIL, "Do the work", False)]
)
def test_a_watched_run_keeps_its_failures(tmp_path: Path, task: str, name: str, refused: bool) -> None:
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(name=name, task=task))
    inventory = tmp_path / "hosts"
    inventory.write_text("localhost ansible_connection=local\n")
    seen: list[str] = []
    outcome = ansible.watched(str(play), inventory, {}, lambda e: seen.append(e.get("event", "")))
    assert outcome.rc != 0 and "playbook_on_task_start" in seen
    assert ansible.first_failure(outcome, "play.yml").startswith(f"{name}: ")  # not the ignored one
    assert ansible.refused(outcome) is refused
    assert not list(Path(tempfile.gettempdir()).glob(f"{ansible.RUNNER_PREFIX}{os.getpid()}-*"))  # cleaned up
