"""The topology catalogue: one record per topology, in its role; every layer reads it, nothing else spells one.

The last test adds a throw-away topology to a copy of the project, the way
CONTRIBUTING.md's checklist says (a role with its record, a host module), and
shows that every layer takes it up with no other file changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from test_settings import resolved

from badsum import topologies
from badsum.analysis import incident
from badsum.fleet import settings as fleet
from badsum.host.experiment import topology as host_topology

ROOT = Path(__file__).resolve().parents[2]

# The incident's table (Pandurangan, 2016), written out here as the records must give it.
INCIDENT = {
    "bare": ("clean", "clean", "clean"),
    "mesos": ("corrupt-delivered", "clean", "clean"),
    "kubernetes": ("corrupt-delivered", "clean", "clean"),
    "docker-ipv6": ("corrupt-delivered", "clean", "clean"),
    "docker-nat": ("clean", "clean", "clean"),
}
# The 2020 incident's row (kubernetes#88986, flannel#1279, calico#3145): valid data dropped.
INCIDENT_2020 = {"vxlan-nat": ("valid-dropped", "clean", "clean")}


def test_the_catalogue_is_the_incidents_table_in_its_order() -> None:
    assert topologies.names() == tuple(INCIDENT) + tuple(INCIDENT_2020)
    assert topologies.of_incident("2016") == tuple(INCIDENT)
    assert topologies.of_incident("2020") == tuple(INCIDENT_2020)
    for name, row in {**INCIDENT, **INCIDENT_2020}.items():
        got = tuple(incident.expected(name, c) for c in ("vulnerable", "workaround", "patched"))
        assert got == row, name
    # Beyond the article: without conntrack's checksum check, Docker's NAT delivers corrupt data too.
    assert incident.expected("docker-nat", "vulnerable", "0") == "corrupt-delivered"
    assert fleet.canary_topologies() == ("mesos", "kubernetes", "docker-ipv6", "vxlan-nat")
    assert topologies.with_containers() == ("mesos", "kubernetes", "docker-ipv6", "docker-nat")


@pytest.mark.parametrize("name", topologies.names())
def test_each_record_names_a_host_module_that_takes_its_options(name: str) -> None:
    record = topologies.get(name)
    assert record.module in host_topology.modules()
    module = __import__(f"badsum.host.experiment.topology.{record.module}", fromlist=["OPTIONS"])
    assert set(record.options) <= set(module.OPTIONS), "an option the module does not take"
    assert set(module.NEEDS) <= set(record.options), "an option the module needs that the record does not give"
    assert (ROOT / "roles" / record.role / "README.md").is_file()


def record(**over) -> dict:
    base = yaml.safe_load((ROOT / "roles/badsum_topology_mesos/meta/topology.yml").read_text())
    return {**base, **over}


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"module": 3}, "module must be a str"),
        ({"container": "vm"}, "container must be one of none, mesos, cni, docker"),
        ({"exposed": "sometimes"}, "exposed must be one of always, never, without-conntrack-checksum"),
        ({"options": {"iface": "badsum_secret"}}, "options read badsum_secret, which inventory does not list"),
        ({"client_route": ["a"]}, "client_route must be [] or [prefix variable, via variable]"),
        ({"colour": "red"}, "unknown fields colour"),
        ({"name": "mesos2"}, "name 'mesos2' is not its role's (badsum_topology_mesos)"),
        ({"client_side": True}, "client_side is for the 2020 bug's overlays (bug vxlan-nat), not bug veth"),
    ],
)
def test_a_record_that_cannot_be_used_names_its_file_and_field(tmp_path: Path, over: dict, message: str) -> None:
    path = tmp_path / "badsum_topology_mesos" / "meta" / "topology.yml"
    path.parent.mkdir(parents=True)
    data = record(**over)
    path.write_text(yaml.safe_dump({k: v for k, v in data.items() if v is not None}))
    with pytest.raises(topologies.TopologyError, match=str(path)) as err:
        topologies.catalogue.__wrapped__(tmp_path)
    assert message in str(err.value)


TUNNEL_RECORD = """\
---
name: tunnel
row: 9
summary: a throw-away topology, made by a test
module: tunnel
mode: ""
options:
  address: badsum_data_ipv4
inventory: [badsum_data_ipv4]
container: cni
exposed: always
client_route: []
bug: veth
client_side: false
"""
TUNNEL_MODULE = '''\
"""A throw-away topology module, made by a test."""

OPTIONS = {"address": "host B's data IPv4 address"}
NEEDS = ("address",)


def up(o) -> dict:
    return {"changed": False}


def down(o) -> dict:
    return {"changed": False}
'''
# Every layer that knows the topologies, asked in a fresh process of the copy.
LAYERS = textwrap.dedent(
    """
    import json, sys
    # the copy's badsum, not this checkout's (an editable install finds it before PYTHONPATH)
    sys.meta_path = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
    from badsum import settings, topologies
    from badsum.analysis import incident
    from badsum.fleet import settings as fleet
    from badsum.host.experiment import topology
    from badsum.vm import real
    raw = {**json.loads(sys.argv[1]), "badsum_experiment_topologies": ["tunnel"]}
    print(json.dumps({
        "settings": settings.experiment_settings(raw).problems,
        "incident": incident.expected("tunnel", "vulnerable"),
        "canary": list(fleet.canary_topologies()),
        "containers": list(topologies.with_containers()),
        "vm": real.TOPOLOGIES,
        "host_modules": topology.modules(),
    }))
    """
)


def test_adding_a_topology_touches_only_the_checklists_files(tmp_path: Path) -> None:
    """CONTRIBUTING.md: a role with its record, a host module (and its tests). Nothing else."""
    copy = tmp_path / "project"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            (copy / name).write_bytes((ROOT / name).read_bytes())
    subprocess.run(["git", "init", "-q"], cwd=copy, check=True)
    subprocess.run(["git", "add", "-A"], cwd=copy, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"], cwd=copy, check=True)
    # The checklist's files, and nothing else.
    (copy / "roles/badsum_topology_tunnel/meta").mkdir(parents=True)
    (copy / "roles/badsum_topology_tunnel/meta/topology.yml").write_text(TUNNEL_RECORD)
    (copy / "roles/badsum_topology_tunnel/meta/main.yml").write_text(
        (ROOT / "roles/badsum_topology_bare/meta/main.yml").read_text()
    )
    (copy / "roles/badsum_topology_tunnel/README.md").write_text("# badsum_topology_tunnel\n")
    (copy / "tools/badsum/host/experiment/topology/tunnel.py").write_text(TUNNEL_MODULE)
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=copy, capture_output=True, text=True
    ).stdout.split("\n")
    assert sorted(line[3:] for line in changed if line) == [
        "roles/badsum_topology_tunnel/README.md",
        "roles/badsum_topology_tunnel/meta/main.yml",
        "roles/badsum_topology_tunnel/meta/topology.yml",
        "tools/badsum/host/experiment/topology/tunnel.py",
    ]
    env = {**os.environ, "PYTHONPATH": str(copy / "tools")}
    raw = resolved()  # the experiment's defaults, as test_settings resolves them
    run = subprocess.run(
        [sys.executable, "-c", LAYERS, json.dumps(raw)], cwd=copy, env=env, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    layers = json.loads(run.stdout.strip().splitlines()[-1])
    assert not any("badsum_experiment_topologies" in p for p in layers["settings"]), layers["settings"]
    assert layers["incident"] == "corrupt-delivered"
    assert "tunnel" in layers["canary"] and "tunnel" in layers["containers"] and "tunnel" in layers["vm"]
    assert "tunnel" in layers["host_modules"]
    # molecule's list (make molecule, tests/integration/test_molecule.py)
    listed = subprocess.run(
        [
            sys.executable,
            "-c",
            LAYERS.split("from badsum")[0] + "import runpy; runpy.run_module('badsum.topologies', run_name='__main__')",
        ],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert listed.stdout.split()[-1] == "tunnel"
    # and Ansible's view: the lookup every playbook and role reads the catalogue through
    playbook = copy / "list.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n"
        "        msg: \"{{ query('badsum.kit.topology') | map(attribute='name') | join(',') }}\"\n"
    )
    bin_dir = Path(sys.executable).parent
    ran = subprocess.run(
        [str(bin_dir / "ansible-playbook"), "-i", "localhost,", str(playbook)],
        cwd=copy,
        env={**env, "ANSIBLE_CONFIG": str(copy / "ansible.cfg")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert "bare,mesos,kubernetes,docker-ipv6,docker-nat,vxlan-nat,tunnel" in ran.stdout


def test_the_default_run_is_the_2016_incidents_table_and_the_preset_the_2020_row() -> None:
    defaults = yaml.safe_load((ROOT / "roles/badsum_experiment/defaults/main.yml").read_text())
    assert defaults["badsum_experiment_topologies"] == list(topologies.of_incident("2016"))  # 5 x 3 = 15 cells
    preset = yaml.safe_load((ROOT / "presets/vxlan-2020.yml").read_text())
    assert preset["badsum_experiment_topologies"] == list(topologies.of_incident("2020")) == ["vxlan-nat"]
    assert preset["badsum_experiment_conditions"] == defaults["badsum_experiment_conditions"]


def _lookup(expression: str) -> subprocess.CompletedProcess[str]:
    """The lookup as the topology role calls it, in a one-task ad-hoc run on the controller."""
    ansible = Path(sys.executable).parent / "ansible"
    return subprocess.run(
        [str(ansible), "localhost", "-c", "local", "-m", "ansible.builtin.debug", "-a", f"msg={{{{ {expression} }}}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_topology_with_an_end_on_host_a_is_refused_without_its_client() -> None:
    # The topology role's one check of it (it was an assert task in every cell): before any host call.
    refused = _lookup("lookup('badsum.kit.topology', 'vxlan-nat', args=true, port=5001)")
    assert refused.returncode != 0
    assert "topology vxlan-nat has an end on host A" in refused.stdout + refused.stderr
    # With its client the lookup goes on, to the server's own variables (none on localhost).
    named = _lookup("lookup('badsum.kit.topology', 'vxlan-nat', args=true, port=5001, client='host1')")
    assert "has an end on host A" not in named.stdout + named.stderr
    assert "is not set on this host" in named.stdout + named.stderr
    # A topology without one needs no client: it too goes on to the server's variables.
    bare = _lookup("lookup('badsum.kit.topology', 'bare', args=true, port=5001)")
    assert "has an end on host A" not in bare.stdout + bare.stderr
    assert "is not set on this host" in bare.stdout + bare.stderr
