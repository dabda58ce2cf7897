"""testinfra suite of the molecule scenarios: is the topology wired, is nc listening?

Called by molecule/shared/verify.yml with the topology's name and the result
its role returned (JSON).
"""

from __future__ import annotations

import json

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--badsum-topology", required=True)
    parser.addoption("--badsum-result", required=True, help="the topology role's result, as JSON")


@pytest.fixture(scope="session")
def topology(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--badsum-topology")


@pytest.fixture(scope="session")
def result(request: pytest.FixtureRequest) -> dict:
    return json.loads(request.config.getoption("--badsum-result"))
