"""testinfra suites: run against the lab's inventory, judge a run's result files.

    pytest tests/testinfra --ansible-inventory=inventories/local --badsum-run=results/latest

Each module names its hosts (testinfra_hosts) by inventory group.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--badsum-run", default="results/latest", help="the run directory to judge")


@pytest.fixture(scope="session")
def run_dir(request: pytest.FixtureRequest) -> Path:
    path = Path(request.config.getoption("--badsum-run"))
    if not path.is_dir():
        pytest.fail(f"run directory {path} does not exist: run reproduce.yml first")
    return path


@pytest.fixture(scope="session")
def cells(run_dir: Path) -> dict[tuple[str, str], dict]:
    found = {}
    for path in sorted(run_dir.glob("*-*.json")):
        data = json.loads(path.read_text())
        found[(data["topology"], data["condition"])] = data
    if not found:
        pytest.fail(f"no cell results in {run_dir}")
    return found
