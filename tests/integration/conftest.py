"""Integration tests: real namespaces, real sshd, real tc, real nc. Root only.

They use their own lab id and inventory, so a user's lab0 is left alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LAB = "itest"
VENV_BIN = Path(sys.executable).parent

pytestmark = pytest.mark.lab


def badsum(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "badsum", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


@pytest.fixture(scope="session", autouse=True)
def _root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("integration tests build network namespaces: run them as root")


@pytest.fixture(scope="session")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    inv = tmp_path_factory.mktemp("inventory")
    shutil.copytree(ROOT / "inventories" / "local" / "group_vars", inv / "group_vars")
    return inv


@pytest.fixture(scope="session")
def lab(inventory: Path) -> Iterator[Path]:
    """One lab for the session's experiments; removed at the end, also on failure."""
    hosts = yaml.safe_load((inventory / "group_vars" / "all.yml").read_text())["badsum_lab_hosts"]
    badsum("lab", "down", "--lab", LAB)
    badsum("lab", "up", "--lab", LAB, "--hosts", str(hosts), "--inventory", str(inventory))
    yield inventory
    badsum("lab", "down", "--lab", LAB)


def playbook(inventory: Path, playbook: str, results: Path, *extra: str, timeout: int = 300):
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    cmd = [
        str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), playbook,
        "-e", f"badsum_lab_id={LAB}", "-e", f"badsum_results_dir={results}", *extra,
    ]  # fmt: skip
    return subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def only_cell(results: Path) -> dict:
    cells = [json.loads(p.read_text()) for p in (results / "latest").glob("*-*.json")]
    assert len(cells) == 1, cells
    return cells[0]
