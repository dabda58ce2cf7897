from __future__ import annotations

from pathlib import Path

import yaml

from badsum.lab.inventory import LAB_SETTINGS, inventory_data, remove_inventory, write_inventory
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


def fake_lab(tmp_path: Path, monkeypatch) -> LabSpec:
    """A 2-host lab spec whose nodes' host keys exist (all write_inventory reads of the lab)."""
    spec = LabSpec("lab9", hosts=2, slot=9)
    monkeypatch.setattr(LabSpec, "state_dir", property(lambda self: tmp_path / "state"))
    for node in spec.nodes():
        (tmp_path / "state" / node.name).mkdir(parents=True)
        (tmp_path / "state" / node.name / "ssh_host_ed25519_key.pub").write_text("ssh-ed25519 AAAA x\n")
    return spec


def test_an_inventory_written_elsewhere_carries_the_embedded_labs_settings(tmp_path: Path, monkeypatch) -> None:
    spec = fake_lab(tmp_path, monkeypatch)
    inv = tmp_path / "inv"
    (inv / ".ssh").mkdir(parents=True)
    write_inventory(spec, inv, lab_settings=True)
    settings = yaml.safe_load((inv / "group_vars" / "all.yml").read_text())
    assert settings == yaml.safe_load(LAB_SETTINGS.read_text())
    assert settings["badsum_embedded_lab"] is True and settings["badsum_common_install_packages"] is False
    remove_inventory(inv)
    assert not (inv / "group_vars").exists() and not (inv / "hosts.yml").exists()


def test_a_users_own_settings_are_neither_replaced_nor_removed(tmp_path: Path, monkeypatch) -> None:
    spec = fake_lab(tmp_path, monkeypatch)
    inv = tmp_path / "inv"
    (inv / ".ssh").mkdir(parents=True)
    (inv / "group_vars").mkdir()
    (inv / "group_vars" / "all.yml").write_text("badsum_embedded_lab: true\nmine: 1\n")
    write_inventory(spec, inv, lab_settings=True)
    remove_inventory(inv)
    assert (inv / "group_vars" / "all.yml").read_text() == "badsum_embedded_lab: true\nmine: 1\n"
