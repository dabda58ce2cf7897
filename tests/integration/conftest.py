"""Integration tests: real namespaces, real sshd, real tc, real nc, real dockerd. Root only.

They use labs of their own (lab ids it*), so a user's lab0 is left alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LAB = "itest"
VENV_BIN = Path(sys.executable).parent
ENV = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))

pytestmark = pytest.mark.lab


def badsum(*args: str, check: bool = True, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "badsum", *args],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


@pytest.fixture(scope="session", autouse=True)
def _root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("integration tests build network namespaces: run them as root")


def embedded_inventory(path: Path) -> Path:
    """An inventory directory like inventories/local: its group_vars, and what `badsum lab up` writes."""
    (path / "group_vars").mkdir(parents=True, exist_ok=True)
    (path / "group_vars" / "all.yml").write_text((ROOT / "inventories/local/group_vars/all.yml").read_text())
    return path


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One lab (the default size: the lab reproduce.yml uses) for the session; removed at the end."""
    inventory = embedded_inventory(tmp_path_factory.mktemp("inventory"))
    badsum("lab", "down", "--lab", LAB)
    badsum("lab", "up", "--lab", LAB, "--write-inventory", str(inventory))
    yield inventory
    badsum("lab", "down", "--lab", LAB)


def playbook(inventory: Path, playbook: str, results: Path, *extra: str, timeout: int = 300):
    cmd = [
        str(VENV_BIN / "ansible-playbook"),
        "-i",
        str(inventory),
        playbook,
        "-e",
        f"badsum_lab_id={LAB}",
        "-e",
        f"badsum_experiment_results_dir={results}",
        *extra,
    ]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=ENV, timeout=timeout, check=False)


def cells(results: Path) -> dict[tuple[str, str], dict]:
    found = [json.loads(p.read_text()) for p in (results / "latest").glob("*-*.json")]
    return {(c["topology"], c["condition"]): c for c in found}


def only_cell(results: Path) -> dict:
    found = list(cells(results).values())
    assert len(found) == 1, found
    return found[0]


def one_cell(topology: str, condition: str) -> tuple[str, str]:
    return ("-e", json.dumps({"badsum_experiment_topologies": [topology], "badsum_experiment_conditions": [condition]}))


def real_hosts_inventory(
    lab: Path, path: Path, client: str = "host1", server: str = "host2", ipv6: bool = False, **over
) -> Path:
    """Two of a lab's hosts in an inventory shaped like inventories/examples/two-hosts.

    No switches group, badsum_embedded_lab false, the injector on host B's data
    NIC at ingress: the kit sees two machines it did not create. The hosts'
    own variables (addresses, prefixes, how to reach them) are the lab's;
    with ipv6, Ansible reaches them at their IPv6 management addresses.
    """
    from badsum.lab.spec import LabSpec

    data = yaml.safe_load((lab / "hosts.yml").read_text())["all"]["children"]["badsum_lab"]
    reach = {k: v for k, v in data["vars"].items() if k.startswith("ansible_")}
    lab_only = ("badsum_experiment_corruption_iface", "badsum_experiment_client", "badsum_switch_port")
    hosts = {h: {k: v for k, v in {**data["hosts"][h], **reach}.items() if k not in lab_only} for h in (client, server)}
    if ipv6:
        spec = LabSpec(data["vars"]["badsum_lab_id"], len(data["hosts"]) - 1, data["vars"]["badsum_lab_slot"])
        for name, host in hosts.items():
            host["ansible_host"] = spec.host(int(name.removeprefix("host"))).mgmt_v6
    inventory = {
        "all": {
            "vars": {
                "badsum_embedded_lab": False,
                "badsum_common_install_packages": False,
                # the lab's own directory: nothing of the kit outside the lab
                "badsum_lib_dir": data["vars"]["badsum_lib_dir"],
                "badsum_experiment_corruptor": server,
                "badsum_experiment_corruption_iface": "eth0",
                "badsum_experiment_corruption_hook": "ingress",
                **over,
            },
            "children": {
                "clients": {"hosts": {client: hosts[client]}},
                "servers": {"hosts": {server: hosts[server]}},
                "switches": {"hosts": {}},
            },
        }
    }
    path.write_text(yaml.safe_dump(inventory))
    return path
