"""The real table put together from two kernels' runs, and judged cell by cell."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from badsum import topologies
from badsum.analysis import results
from badsum.vm import kernel, real

RECORDED = Path(__file__).resolve().parents[1] / "data" / "real-unfixed-run"  # a run on the unfixed kernel


def parts(tmp_path: Path) -> dict[str, dict]:
    unfixed = tmp_path / "parts" / "unfixed"
    shutil.copytree(RECORDED, unfixed)
    fixed = tmp_path / "parts" / "fixed"
    fixed.mkdir()
    cell = json.loads((RECORDED / "bare-vulnerable.json").read_text())
    cell |= {"condition": "patched", "kernel": "6.1.192-badsum-fixed", "verdict": "clean"}
    (fixed / "bare-patched.json").write_text(json.dumps(cell))
    return {"unfixed": {"run_dir": str(unfixed)}, "fixed": {"run_dir": str(fixed)}}


def test_both_kernels_cells_land_in_one_run_that_plans_the_whole_table(tmp_path: Path) -> None:
    out = tmp_path / "real-x"
    out.mkdir()
    cells = real.merge(out, parts(tmp_path), real.TOPOLOGIES)
    assert {(c["topology"], c["condition"]) for c in cells} == {
        ("bare", "vulnerable"),
        ("mesos", "vulnerable"),
        ("bare", "patched"),
    }
    assert len(results.planned_cells(out)) == 18  # both incidents: 5 rows of 2016, vxlan-nat of 2020
    assert results.planned_cells(out)[-3:] == [
        ("vxlan-nat", "vulnerable"),
        ("vxlan-nat", "workaround"),
        ("vxlan-nat", "patched"),
    ]
    assert results.planned_cells(out)[:3] == [("bare", "vulnerable"), ("bare", "workaround"), ("bare", "patched")]
    assert {p.name for p in out.glob("*-*.json")} == {
        "bare-vulnerable.json",
        "mesos-vulnerable.json",
        "bare-patched.json",
    }
    record = json.loads((out / "run.json").read_text())
    assert record["parts"]["unfixed"]["kernel"] == "6.1.192-badsum-unfixed"
    assert record["parts"]["fixed"]["kernel"] == "6.1.192-badsum-fixed"


def test_every_missing_not_real_or_off_table_cell_is_a_problem(tmp_path: Path) -> None:
    out = tmp_path / "real-x"
    out.mkdir()
    cells = real.merge(out, parts(tmp_path), real.TOPOLOGIES)
    failed, differ = real.problems_of(cells, real.TOPOLOGIES)
    assert len(failed) == 15 and not differ  # 18 planned, 3 measured right
    assert not [p for p in failed if p.startswith(("bare/vulnerable", "mesos/vulnerable", "bare/patched"))]
    cells[1] = {**cells[1], "verdict": "clean"}  # mesos/vulnerable: the unfixed kernel must deliver corrupt data
    cells[0] = {**cells[0], "condition_kind": "emulated"}
    failed, differ = real.problems_of(cells, real.TOPOLOGIES)
    # A cell off the incident's table is a finding (exit 1); one missing or not real, a failed run (exit 2).
    assert [p for p in differ if p.startswith("mesos/vulnerable: clean, the incident says corrupt-delivered")]
    assert any(p.startswith("bare/vulnerable: emulated, not real") for p in failed)


def test_the_2020_rows_cells_are_judged_by_its_own_table(tmp_path: Path) -> None:
    cell = json.loads((RECORDED / "bare-vulnerable.json").read_text())
    cells = [
        cell | {"topology": "vxlan-nat", "condition": c, "verdict": v, "condition_kind": "real"}
        for c, v in (("vulnerable", "valid-dropped"), ("workaround", "clean"), ("patched", "clean"))
    ]
    assert real.problems_of(cells, ["vxlan-nat"]) == ([], [])
    cells[0] = cells[0] | {"verdict": "clean"}  # a kernel that kept the fix: nothing dropped
    cells[1] = cells[1] | {"condition_kind": "emulated"}
    failed, differ = real.problems_of(cells, ["vxlan-nat"])
    assert differ == ["vxlan-nat/vulnerable: clean, the incident says valid-dropped"]
    assert failed == ["vxlan-nat/workaround: emulated, not real"]


def test_which_kernel_measures_what_comes_from_the_catalogue(monkeypatch) -> None:
    both = ["bare", "mesos", "vxlan-nat"]
    assert real.parts_of(both) == {"unfixed": ["vulnerable", "workaround"], "fixed": ["patched"]}
    assert real.parts_of(["vxlan-nat"]) == real.parts_of(["bare"])
    assert list(topologies.names()) == real.TOPOLOGIES  # both incidents by default
    # the unfixed kernel lacks every incident's fix, the fixed one has them all
    assert set(kernel.PATCHES["unfixed"]) == {kernel.REVERTS[b] for b in topologies.BUGS}
    assert not kernel.has_fix("unfixed") and kernel.has_fix("fixed")
    # a row real on the other kernel would change the parts; rows that disagree cannot share a run
    vx = topologies.get("vxlan-nat")
    monkeypatch.setattr(
        type(vx), "real_with_fix", lambda self, c: c != "vulnerable" if self.bug == "vxlan-nat" else c == "patched"
    )
    assert real.parts_of(["vxlan-nat"]) == {"unfixed": ["vulnerable"], "fixed": ["workaround", "patched"]}
    with pytest.raises(ValueError, match="workaround: these rows are real on different kernels"):
        real.parts_of(both)
