"""The real table put together from two kernels' runs, and judged cell by cell."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from badsum.analysis import results
from badsum.vm import real

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
    assert len(results.planned_cells(out)) == 15
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
    assert len(failed) == 12 and not differ  # 15 planned, 3 measured right
    assert not [p for p in failed if p.startswith(("bare/vulnerable", "mesos/vulnerable", "bare/patched"))]
    cells[1] = {**cells[1], "verdict": "clean"}  # mesos/vulnerable: the unfixed kernel must deliver corrupt data
    cells[0] = {**cells[0], "condition_kind": "emulated"}
    failed, differ = real.problems_of(cells, real.TOPOLOGIES)
    # A cell off the incident's table is a finding (exit 1); one missing or not real, a failed run (exit 2).
    assert [p for p in differ if p.startswith("mesos/vulnerable: clean, the incident says corrupt-delivered")]
    assert any(p.startswith("bare/vulnerable: emulated, not real") for p in failed)
