"""The topology scenario for each topology of the catalogue, against the test lab: converge, idempotence,
verify, cleanup."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from badsum import topologies
from conftest import ENV, ROOT, VENV_BIN, playbook


@pytest.fixture(scope="module")
def prepared(lab: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = playbook(lab, "playbooks/prepare.yml", tmp_path_factory.mktemp("results"))
    assert run.returncode == 0, run.stdout[-3000:]
    return lab


@pytest.mark.parametrize("topology", topologies.names())
def test_molecule_scenario(prepared: Path, topology: str, tmp_path: Path) -> None:
    # A fresh state: molecule skips steps an earlier run's state (in ~/.ansible/tmp) says were done.
    env = dict(
        ENV,
        BADSUM_MOLECULE_INVENTORY=str(prepared),
        BADSUM_MOLECULE_TOPOLOGY=topology,
        MOLECULE_EPHEMERAL_DIRECTORY=str(tmp_path / "molecule"),
    )
    run = subprocess.run(
        [str(VENV_BIN / "molecule"), "test", "-s", "topology"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = re.sub(r"\x1b\[[0-9;]*m", "", run.stdout + run.stderr)  # molecule colours its output
    assert run.returncode == 0, output[-4000:]
    for step in ("converge", "idempotence", "verify", "cleanup"):
        assert f"{step}: Executed: Successful" in output, step
    assert re.search(r"\d+ passed", output)  # the testinfra suite really ran
    assert "Check that every byte sent arrived" in output  # and traffic went through the topology
