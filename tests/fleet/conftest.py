"""testinfra suite of the fleet: the hosts as remediation left them, or back as they were before it.

    pytest tests/fleet --ansible-inventory=INV --badsum-baseline=results/fleet/<audit run> \\
        --badsum-expect=prior|remediated [--badsum-remediation=results/fleet/<remediate run>]

The baseline is an audit run made before anything changed: it names the
hosts (each test is parametrized by host, so a host fails by name) and what
each one had - its container veths and their rx-checksumming, its host
interfaces. The hosts are read again here through the same inventory, with
one call of the host kit's read-only audit each.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import testinfra
from testinfra.utils.ansible_runner import AnsibleRunner


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--badsum-baseline", required=True, help="an audit run made before any change")
    parser.addoption("--badsum-expect", choices=["prior", "remediated"], required=True)
    parser.addoption("--badsum-remediation", default="", help="the remediation run (its canary cell)")


def _baseline(config: pytest.Config) -> dict[str, dict]:
    run = Path(config.getoption("--badsum-baseline"))
    plan = json.loads((run / "plan.json").read_text())
    records = {h: json.loads((run / "hosts" / f"{h}.json").read_text()) for h in plan["hosts"]}
    bad = [h for h, r in records.items() if r["status"] != "ok"]
    if bad:
        raise pytest.UsageError(f"the baseline audit failed on {bad}: it cannot be compared with")
    return records


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "host_name" in metafunc.fixturenames:
        metafunc.parametrize("host_name", sorted(_baseline(metafunc.config)))


@pytest.fixture(scope="session")
def baseline(request: pytest.FixtureRequest) -> dict[str, dict]:
    return {h: r["audit"] for h, r in _baseline(request.config).items()}


@pytest.fixture(scope="session")
def expect(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--badsum-expect")


@pytest.fixture(scope="session")
def remediation(request: pytest.FixtureRequest) -> Path | None:
    value = request.config.getoption("--badsum-remediation")
    return Path(value) if value else None


@pytest.fixture(scope="session")
def inventory(request: pytest.FixtureRequest) -> AnsibleRunner:
    return AnsibleRunner(request.config.getoption("--ansible-inventory"))


@pytest.fixture(scope="session")
def now(inventory: AnsibleRunner, baseline: dict[str, dict]) -> dict[str, dict]:
    """Each host's audit now, read once per host, probed the way the baseline was."""
    found = {}
    for name, before in baseline.items():
        host = testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory.inventory_file)
        hostvars = inventory.get_variables(name)
        lib = hostvars.get("badsum_lib_dir", "/var/lib/badsum")
        probe = before.get("probe") or {}
        args = ["--emulate-bug"] if probe.get("kind") == "emulated" else [] if probe else ["--no-probe"]
        args.append(f"--cni-bin-dir={before['cni']['plugin'].rsplit('/', 1)[0]}")
        args += [f"--cni-conf-dir={d}" for d in before["cni"]["conf_dirs"]]
        args.append("--textfile-dir=")  # off: the fleet's default; this call only reads
        cmd = host.run(f"/usr/bin/python3 {lib}/bin/badsum-host.pyz audit show {shlex.join(args)}")
        assert cmd.rc == 0, f"{name}: {cmd.stderr or cmd.stdout}"
        found[name] = json.loads(cmd.stdout)
    return found
