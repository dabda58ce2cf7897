from __future__ import annotations

import json
from pathlib import Path

import pytest

from badsum.lab import cgroups, state
from badsum.lab.spec import LabError, LabSpec


def test_walk_lists_each_cgroup_after_the_ones_it_contains(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    for d in ("host1/docker/abc", "host2", "switch"):
        (lab / d).mkdir(parents=True)
    (lab / "host1" / "cgroup.procs").write_text("")  # files are not cgroups
    order = cgroups._walk(lab)
    assert sorted(order) == sorted(
        [lab, lab / "host1", lab / "host1/docker", lab / "host1/docker/abc", lab / "host2", lab / "switch"]
    )
    for d in order:  # rmdir in this order never meets a directory that still has one below it
        assert all(order.index(sub) < order.index(d) for sub in order if d in sub.parents)
    assert cgroups._walk(tmp_path / "gone") == []


def test_procs_reads_a_cgroup_and_tolerates_one_that_went(tmp_path: Path) -> None:
    (tmp_path / "cgroup.procs").write_text("12\n345\n")
    assert cgroups._procs(tmp_path) == [12, 345]
    assert cgroups._procs(tmp_path / "gone") == []


def _state(root: Path, lab_id: str, slot: int) -> None:
    (root / lab_id).mkdir(parents=True)
    state = {"lab_id": lab_id, "hosts": 2, "slot": slot, "inventory": "/x", "complete": True}
    (root / lab_id / "lab.json").write_text(json.dumps(state))


def test_a_slot_another_lab_has_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "EMBEDDED", state.StateStore(tmp_path / "labs", tmp_path / "labs.lock"))
    _state(tmp_path / "labs", "other", 3)
    _state(tmp_path / "labs", "mine", 5)
    with pytest.raises(LabError, match="slot 3 is taken by lab other"):
        state.check_slot_free(LabSpec("mine", 2, 3))
    state.check_slot_free(LabSpec("mine", 2, 5))  # its own slot, from an earlier run
    assert state.allocate_slot("third") == 0
    with state.EMBEDDED.locked():  # the lock file is no lab
        assert set(state.EMBEDDED.all()) == {"other", "mine"}


def test_named_hierarchies_are_cleaned_but_not_joined() -> None:
    """dockerd makes its containers' cgroups in name=systemd too: teardown must see that hierarchy."""
    mounted = [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if " - cgroup " in line and "name=" in line.split(" - ")[1]
    ]
    if not mounted:
        pytest.skip("no named cgroup hierarchy on this machine")
    named = [h for h in cgroups.hierarchies() if str(h.mount) in mounted]
    assert named and all(not h.joined for h in named)
    assert all(any(c.startswith("name=") for c in h.controllers) for h in named)
