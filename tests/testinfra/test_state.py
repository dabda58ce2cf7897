"""After the run every host is back in the state the run found it in.

The run's record holds each host's state as the host kit read it before the
run (namespaces, links, qdiscs, filters and offloads of the interfaces badsum
touches, forwarding and conntrack sysctls, the firewall, routes, listeners on
the experiment port, badsum's own scratch files and processes). Here the kit
reads it again, through the same inventory, and every part must be equal.
"""

from __future__ import annotations

import json
import shlex
from concurrent.futures import ThreadPoolExecutor

import pytest
import testinfra
from testinfra.utils.ansible_runner import AnsibleRunner

ASPECTS = (
    "netns",
    "links",
    "interfaces",
    "sysctl",
    "iptables",
    "ip6tables",
    "routes",
    "listening",
    "scratch",
    "processes",
)


@pytest.fixture(scope="module")
def inventory(request: pytest.FixtureRequest) -> AnsibleRunner:
    # The runner testinfra's own ansible:// hosts use: the inventory is read once (ansible-inventory, ~1 s).
    return AnsibleRunner.get_runner(request.config.getoption("--ansible-inventory"))


@pytest.fixture(scope="module")
def state_after(inventory: AnsibleRunner, record: dict, settings: dict) -> dict:
    """Each host's state now, read once per host with one call of the host kit, all hosts at once.

    Each read waits on its host (SSH and the kit's commands there): one after
    the other, they were most of the suites' time.
    """
    hosts = {name: info["state_before"] for name, info in record["hosts"].items() if info.get("state_before")}
    # A host of the plan without a state before the run is its own failure (below), not a crash here.

    def read(name: str) -> dict:
        host = testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory.inventory_file)
        lib = inventory.get_variables(name).get("badsum_lib_dir", "/var/lib/badsum")
        args = [f"--iface={i}" for i in hosts[name]["interfaces"]] + [f"--port={settings['port']}"]
        cmd = host.run(f"/usr/bin/python3 {lib}/bin/badsum-host.pyz state show {shlex.join(args)}")
        assert cmd.rc == 0, f"{name}: {cmd.stderr or cmd.stdout}"
        return json.loads(cmd.stdout)

    assert inventory.inventory  # read before the threads, which all use it
    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip(hosts, pool.map(read, hosts), strict=True))


def test_the_runs_record_read_every_planned_host_before_it_changed_anything(record: dict, host_name: str) -> None:
    assert (record["hosts"].get(host_name) or {}).get("state_before"), f"{host_name}: its state before was never read"


@pytest.mark.parametrize("aspect", ASPECTS)
def test_the_host_is_back_as_the_run_found_it(record: dict, state_after: dict, host_name: str, aspect: str) -> None:
    if not (record["hosts"].get(host_name) or {}).get("state_before"):
        pytest.fail(f"{host_name}: its state before the run was never read, so nothing can say it is back")
    before = record["hosts"][host_name]["state_before"][aspect]
    assert state_after[host_name][aspect] == before, f"{host_name}: {aspect} changed during the run"
