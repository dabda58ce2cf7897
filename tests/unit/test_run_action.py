"""badsum.kit.run's record option: every host's fleet record is kept, whatever became of its call."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from ansible.errors import AnsibleConnectionFailure, AnsibleError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "collections"))
from ansible_collections.badsum.kit.plugins.action.run import ActionModule

TASK = "Audit; on an exposed host apply the workaround, verify it, audit again"


def call(tmp_path: Path, outcome, check_mode: bool = False) -> tuple[dict, dict]:
    """The action's call-and-record step, with the module's answer (or Ansible's exception) given."""
    action = ActionModule.__new__(ActionModule)  # no connection, loader or play: only the step under test
    action._task = SimpleNamespace(name=TASK)

    def execute_module(*_args, **_kwargs) -> dict:
        if isinstance(outcome, Exception):
            raise outcome
        return dict(outcome)

    action._execute_module = execute_module
    result = action._call_and_record(
        {}, {"inventory_hostname": "host7", "ansible_check_mode": check_mode}, str(tmp_path), "remediate"
    )
    return result, json.loads((tmp_path / "hosts" / "host7.json").read_text())


def test_a_host_that_answered_gets_its_record_and_its_result_unchanged(tmp_path: Path) -> None:
    answer = {"changed": True, "action": "remediated (2 changes)", "apply": {"changes": ["a", "b"]}}
    result, record = call(tmp_path, answer, check_mode=True)
    assert result == answer
    assert (record["status"], record["error"], record["changes"], record["check_mode"]) == ("ok", "", ["a", "b"], True)


def test_a_failed_call_fails_the_host_with_the_steps_own_message(tmp_path: Path) -> None:
    result, record = call(tmp_path, {"failed": True, "msg": "boom"})
    assert result["failed"] is True
    assert (record["status"], record["error"]) == ("failed", f"{TASK}: boom")


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (AnsibleConnectionFailure("ssh: connect to host 198.18.0.15 port 22: timed out"), "unreachable: ssh: connect"),
        (AnsibleError("Incorrect sudo password"), f"{TASK}: Incorrect sudo password"),
    ],
)
def test_a_host_ansible_could_not_run_the_call_on_is_failed_not_lost(tmp_path: Path, exc, error: str) -> None:
    """Failed, not unreachable, so that a batch's max_fail_percentage counts it; and never without a record."""
    result, record = call(tmp_path, exc)
    assert result["failed"] is True and "unreachable" not in result
    assert record["status"] == "failed" and record["error"].startswith(error)


def test_a_record_of_an_unknown_phase_is_refused_before_the_host_is_called() -> None:
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    from ansible_collections.badsum.kit.plugins.action.run import ARGS

    spec = {"tool": "remediate", "action": "rollout", "record": {"run_dir": "/tmp/r", "phase": "remediation"}}
    errors = ArgumentSpecValidator(ARGS).validate(spec).error_messages
    assert len(errors) == 1 and "remediation" in errors[0] and "audit, remediate, rollback" in errors[0], errors
