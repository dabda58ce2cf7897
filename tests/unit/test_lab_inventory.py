from __future__ import annotations

from pathlib import Path

import yaml

from badsum.lab.inventory import inventory_data
from badsum.lab.spec import LabSpec


def test_fleet_holds_every_host_and_not_the_switch(tmp_path: Path) -> None:
    children = inventory_data(LabSpec("lab0", hosts=4, slot=0), tmp_path)["all"]["children"]
    assert list(children["fleet"]["hosts"]) == ["host1", "host2", "host3", "host4"]
    assert "switch" not in children["fleet"]["hosts"]
    assert "switch" in children["badsum_lab"]["hosts"]
    assert children["fleet"]["hosts"] == children["lab_hosts"]["hosts"]


def test_fleet_is_an_extra_group_only(tmp_path: Path) -> None:
    """The groups that were there keep their place and members; `fleet` carries no variables of its own."""
    children = inventory_data(LabSpec("lab0", hosts=2, slot=0), tmp_path, user="ops")["all"]["children"]
    assert list(children) == ["badsum_lab", "lab_hosts", "clients", "servers", "switches", "fleet"]
    assert children["clients"]["hosts"] == {"host1": None} and children["servers"]["hosts"] == {"host2": None}
    assert children["switches"]["hosts"] == {"switch": None}
    assert set(children["fleet"]) == {"hosts"}
    assert children["badsum_lab"]["vars"]["ansible_user"] == "ops"


def test_fleet_survives_the_yaml_round_trip(tmp_path: Path) -> None:
    data = inventory_data(LabSpec("lab0", hosts=200, slot=31), tmp_path)
    back = yaml.safe_load(yaml.safe_dump(data, sort_keys=False))
    fleet = back["all"]["children"]["fleet"]["hosts"]
    assert len(fleet) == 200 and all(v is None for v in fleet.values())
