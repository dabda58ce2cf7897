"""AWX / Automation Platform: the execution environment builds its context, and no playbook waits for a person."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def pins() -> dict[str, str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return dict(line.split("==") for line in lines if "==" in line and not line.startswith("#"))


def test_the_execution_environment_has_badsum_and_the_pinned_ansible(tmp_path: Path) -> None:
    run = subprocess.run(
        [str(BIN / "ansible-builder"), "create", "-f", "execution-environment.yml", "-c", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    built = tmp_path / "_build" / "badsum"
    assert (built / "pyproject.toml").exists() and (built / "tools" / "badsum" / "fleet" / "report.py").exists()
    assert "pip install --no-cache-dir /tmp/badsum-src" in (tmp_path / "Dockerfile").read_text()
    ee = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    assert ee["dependencies"]["ansible_core"]["package_pip"] == f"ansible-core=={pins()['ansible-core']}"
    assert ee["dependencies"]["ansible_runner"]["package_pip"] == f"ansible-runner=={pins()['ansible-runner']}"


PAUSE = ("pause", "ansible.builtin.pause", "ansible.legacy.pause")
PROMPTS = ("vars_prompt",)


def waits_for_a_person(node: object, where: str) -> list[str]:
    """Every play with vars_prompt, and every pause task without a timeout, anywhere in a parsed YAML file."""
    found = []
    if isinstance(node, list):
        for i, item in enumerate(node):
            found += waits_for_a_person(item, f"{where}[{i}]")
    elif isinstance(node, dict):
        if any(k in node for k in PROMPTS):
            found.append(f"{where}: vars_prompt")
        for key in PAUSE:
            if key in node:
                args = node[key] if isinstance(node[key], dict) else {}
                if not ({"seconds", "minutes"} & set(args)) or isinstance(node[key], str):
                    found.append(f"{where}: {key} without seconds or minutes")
        for key, value in node.items():
            found += waits_for_a_person(value, f"{where}.{key}")
    return found


def test_no_playbook_waits_for_a_person() -> None:
    """AWX runs jobs without a terminal: no vars_prompt, no pause without a timeout (in any form)."""
    paths = [*ROOT.glob("*.yml"), *(ROOT / "playbooks").rglob("*.yml"), *(ROOT / "roles").rglob("*.yml")]
    assert len(paths) > 30  # it looked at the project's playbooks and roles
    for path in paths:
        assert waits_for_a_person(yaml.safe_load(path.read_text()), str(path.relative_to(ROOT))) == []


@pytest.mark.parametrize(
    "task",
    [
        {"name": "x", "pause": None},
        {"name": "x", "pause": ""},
        {"name": "x", "ansible.builtin.pause": {"prompt": "go on?"}},
        {"name": "x", "ansible.legacy.pause": {"echo": False}},
        {"name": "x", "ansible.builtin.pause": "seconds=5"},
    ],
)
def test_a_pause_without_a_timeout_is_found_in_any_form(task: dict) -> None:
    assert waits_for_a_person([{"hosts": "all", "tasks": [task]}], "play") != []
    assert waits_for_a_person([{"hosts": "all", "vars_prompt": [{"name": "p"}]}], "play") != []
    assert waits_for_a_person([{"hosts": "all", "tasks": [{"ansible.builtin.pause": {"seconds": 1}}]}], "p") == []
