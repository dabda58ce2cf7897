"""testinfra suite of the molecule scenarios: is the topology wired, is nc listening?

Called by molecule/shared/verify.yml with the topology's name and the result
its role returned (JSON).
"""

from __future__ import annotations

import json

import pytest
import testinfra


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--badsum-topology", required=True)
    parser.addoption("--badsum-result", required=True, help="the topology role's result, as JSON")
    parser.addoption("--badsum-server", required=True, help="inventory name of the server host")
    parser.addoption("--badsum-client", required=True, help="inventory name of its client host")


def _host(request: pytest.FixtureRequest, option: str):
    return testinfra.get_host(
        f"ansible://{request.config.getoption(option)}",
        ansible_inventory=request.config.getoption("--ansible-inventory"),
    )


@pytest.fixture(scope="session")
def server(request: pytest.FixtureRequest):
    return _host(request, "--badsum-server")


@pytest.fixture(scope="session")
def client(request: pytest.FixtureRequest):
    return _host(request, "--badsum-client")


@pytest.fixture(scope="session")
def topology(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--badsum-topology")


@pytest.fixture(scope="session")
def result(request: pytest.FixtureRequest) -> dict:
    return json.loads(request.config.getoption("--badsum-result"))
