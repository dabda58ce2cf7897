"""AWX / Automation Platform: the execution environment builds its context, and no playbook waits for a person."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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
    assert (built / "pyproject.toml").exists() and (built / "badsum" / "fleet" / "report.py").exists()
    assert "pip install --no-cache-dir /tmp/badsum-src" in (tmp_path / "Dockerfile").read_text()
    ee = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    assert ee["dependencies"]["ansible_core"]["package_pip"] == f"ansible-core=={pins()['ansible-core']}"
    assert ee["dependencies"]["ansible_runner"]["package_pip"] == f"ansible-runner=={pins()['ansible-runner']}"


def test_no_playbook_waits_for_a_person() -> None:
    """AWX runs jobs without a terminal: no vars_prompt, no pause without a timeout."""
    for path in [*ROOT.glob("*.yml"), *(ROOT / "playbooks").rglob("*.yml"), *(ROOT / "roles").rglob("*.yml")]:
        text = path.read_text()
        assert "vars_prompt" not in text, path
        for block in re.findall(r"ansible\.builtin\.pause:[^\n]*\n((?:\s{4,}.*\n)*)", text):
            assert re.search(r"\b(seconds|minutes):", block), f"{path}: a pause without a timeout"
