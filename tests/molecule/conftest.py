"""testinfra suite of the molecule scenarios: is the topology wired, is nc listening?

Called by molecule/topology/verify.yml with the topology's name, the port, and
the result its role returned (JSON); interfaces and prefixes come from the
inventory.
"""

from __future__ import annotations

import json

import pytest
import testinfra
from testinfra.utils.ansible_runner import AnsibleRunner


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--badsum-topology", required=True)
    parser.addoption("--badsum-result", required=True, help="the topology role's result, as JSON")
    parser.addoption("--badsum-server", required=True, help="inventory name of the server host")
    parser.addoption("--badsum-client", required=True, help="inventory name of its client host")
    parser.addoption("--badsum-port", required=True, type=int, help="the experiment's port")


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
def server_vars(request: pytest.FixtureRequest) -> dict:
    """The server's inventory variables: its data NIC and prefixes come from there, never from the test."""
    runner = AnsibleRunner(request.config.getoption("--ansible-inventory"))
    return runner.get_variables(request.config.getoption("--badsum-server"))


@pytest.fixture(scope="session")
def port(request: pytest.FixtureRequest) -> int:
    return request.config.getoption("--badsum-port")


@pytest.fixture(scope="session")
def topology(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--badsum-topology")


@pytest.fixture(scope="session")
def result(request: pytest.FixtureRequest) -> dict:
    return json.loads(request.config.getoption("--badsum-result"))
