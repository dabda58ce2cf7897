"""testinfra suites: a run's result files judged against the incident, and the hosts' state after it.

    pytest tests/testinfra --ansible-inventory=inventories/local --badsum-run=results/<run>

The run's record (run.json) says which cells were asked for and what each
host's state was before the run; every test is parametrized from it, so a
cell or a host fails by name, and a cell that never ran fails instead of
being skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--badsum-run", default="results/latest", help="the run directory to judge")


def _record(config: pytest.Config) -> dict:
    path = Path(config.getoption("--badsum-run")) / "run.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise pytest.UsageError(f"{path}: cannot read the run's record ({exc}): run reproduce.yml first") from exc


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    record = _record(metafunc.config)
    if "cell_key" in metafunc.fixturenames:
        keys = [(c["topology"], c["condition"]) for c in record["plan"]["cells"]]
        metafunc.parametrize("cell_key", keys, ids=[f"{t}-{c}" for t, c in keys])
    if "host_name" in metafunc.fixturenames:
        # Every host the run's plan touched: one whose state was never read fails by name (test_state).
        metafunc.parametrize("host_name", sorted(record["plan"]["hosts"]))


@pytest.fixture(scope="session")
def run_dir(request: pytest.FixtureRequest) -> Path:
    return Path(request.config.getoption("--badsum-run"))


@pytest.fixture(scope="session")
def record(request: pytest.FixtureRequest) -> dict:
    return _record(request.config)


@pytest.fixture(scope="session")
def settings(record: dict) -> dict:
    return {k.removeprefix("badsum_experiment_"): v for k, v in record["plan"]["settings"].items()}


@pytest.fixture
def cell(run_dir: Path, cell_key: tuple[str, str]) -> dict:
    path = run_dir / f"{cell_key[0]}-{cell_key[1]}.json"
    if not path.exists():
        pytest.fail(f"{path.name}: the cell was planned but has no result (it never ran or never finished)")
    return json.loads(path.read_text())
