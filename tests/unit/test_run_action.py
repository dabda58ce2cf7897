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


PYTHON36 = Path("/root/.pyenv/versions/3.6.15/bin/python3.6")


def raw_action(tmp_path: Path, check_mode: bool = False, python: str = sys.executable) -> tuple[ActionModule, list]:
    """The action as the raw transport runs it: its one shell command run here, as a host's shell would."""
    import subprocess

    action = ActionModule.__new__(ActionModule)
    action._task = SimpleNamespace(name=TASK, check_mode=check_mode, delegate_to=None)
    action._templar = SimpleNamespace(template=lambda value: value)
    sent: list = []

    def execute(cmd: str, sudoable: bool = True, in_data: str | None = None) -> dict:
        sent.append((cmd, sudoable, len(in_data or "")))
        run = subprocess.run(["sh", "-c", cmd], input=in_data, capture_output=True, text=True, timeout=60, check=False)
        return {"rc": run.returncode, "stdout": run.stdout, "stderr": run.stderr}

    action._low_level_execute_command = execute
    return action, sent


def raw_args(tmp_path: Path, *argv: str) -> dict:
    from badsum import hostkit

    return {
        "tool": argv[0],
        "action": argv[1],
        # what the fleet role passes on every audit (the kit has no defaults for them)
        "args": {
            "no_probe": True,
            "cni_conf_dir": [str(tmp_path / "net.d")],
            "cni_bin_dir": str(tmp_path / "bin"),
            "textfile_dir": "",
        }
        if argv[0] == "audit"
        else {},
        "argv": [],
        "kit_content": hostkit.encoded(),
        "lib_dir": str(tmp_path / "lib"),
    }


@pytest.mark.parametrize("python", [sys.executable, str(PYTHON36)], ids=["python3.11", "python3.6"])
def test_the_raw_transport_runs_the_kit_with_the_hosts_own_python_and_leaves_nothing(
    tmp_path: Path, python: str
) -> None:
    """No Ansible module on the host: one shell command, the kit on its stdin, one JSON answer back."""
    if not Path(python).exists():
        pytest.skip(f"no {python} on this machine")
    action, sent = raw_action(tmp_path)
    before = set(Path("/tmp").glob("badsum-kit-*"))
    result = action._run_raw(raw_args(tmp_path, "audit", "show"), {"badsum_fleet_python": python})
    assert result.get("failed") is None and result["risk"] in ("patched", "not-applicable", "exposed"), result
    assert result["changed"] is False and result["kernel"]["release"]
    ((cmd, sudoable, kit_bytes),) = sent
    assert cmd.startswith(f"{python} -I -c ") and sudoable and kit_bytes > 100_000  # the kit went on stdin
    assert set(Path("/tmp").glob("badsum-kit-*")) == before  # its private copy is gone


def test_the_raw_transport_says_why_when_the_hosts_python_cannot_run_it(tmp_path: Path) -> None:
    action, _ = raw_action(tmp_path)
    result = action._run_raw(raw_args(tmp_path, "audit", "show"), {"badsum_fleet_python": "/bin/false"})
    assert result["failed"] is True and result["msg"].startswith("/bin/false on the host: ")
    result = action._run_raw(raw_args(tmp_path, "audit", "nonsense"), {"badsum_fleet_python": sys.executable})
    assert result["failed"] is True and result["msg"].startswith("badsum-host audit: ") and "nonsense" in result["msg"]


def test_the_raw_transport_runs_check_mode_as_the_module_does(tmp_path: Path) -> None:
    """Check mode: what would change is skipped (guard run), never run."""
    action, sent = raw_action(tmp_path, check_mode=True)
    args = raw_args(tmp_path, "guard", "run")
    args["args"] = {"state_dir": str(tmp_path / "state"), "interval": 1}
    result = action._run_raw(args, {"badsum_fleet_python": sys.executable})
    assert result["skipped"] is True and "check mode" in result["msg"], result
    assert '"--check-mode"' in sent[0][0] and not (tmp_path / "state").exists()
