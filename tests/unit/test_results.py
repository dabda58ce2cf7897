from __future__ import annotations

import json
from pathlib import Path

import pytest

from badsum.analysis import results, summary
from badsum.host.shared import framing
from synthetic import make_raw, make_run, run_record


def test_a_clean_cell(tmp_path: Path) -> None:
    cell = results.build_cell_result(make_raw(tmp_path))
    assert cell["verdict"] == "clean"
    assert cell["csum_errors"] == {"host": {"TcpInCsumErrors": 7}}
    assert cell["messages"] == {"sent": 4, "intact": 4, "corrupt": 0, "missing": 0}
    assert cell["held_messages"]["count"] == 2  # sent at 12 and 13, arrived at 16
    assert (cell["topology"], cell["condition"], cell["port"]) == ("bare", "patched", 5001)


def test_a_corrupt_cell_records_the_bits(tmp_path: Path) -> None:
    cell = results.build_cell_result(make_raw(tmp_path, flip=True, csum=0))
    assert cell["verdict"] == "corrupt-delivered"
    frame = framing.HEADER_LEN + 100
    assert cell["corrupt_messages"] == [
        {"seq": 2, "stream_offset": 2 * frame, "bit_diffs": [[framing.HEADER_LEN + 3, 7]]}
    ]


def test_a_missing_field_names_the_file_and_the_field(tmp_path: Path) -> None:
    raw = make_raw(tmp_path)
    (raw / "corruption.json").write_text(json.dumps({"stats": {}}))
    with pytest.raises(results.ResultError, match=r"corruption.json: field 'window_start'"):
        results.build_cell_result(raw)


def test_a_namespace_read_once_only_is_an_error_not_a_zero(tmp_path: Path) -> None:
    raw = make_raw(tmp_path, "mesos", "patched")
    recv = json.loads((raw / "recv.json").read_text())
    del recv["counters"]["container"]
    (raw / "recv.json").write_text(json.dumps(recv))
    with pytest.raises(results.ResultError, match="no counters for namespace 'container'"):
        results.build_cell_result(raw)


def test_an_unknown_corruption_count_is_inconclusive(tmp_path: Path) -> None:
    cell = results.build_cell_result(make_raw(tmp_path, corrupted=None))
    assert cell["verdict"] == "inconclusive" and "unknown" in cell["verdict_reason"]


def test_loading_a_run_reports_unusable_files_and_keeps_the_rest(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    (run / "broken-cell.json").write_text("{not json")
    cells, problems = results.load_run(run)
    assert len(cells) == 3 and len(problems) == 1 and "broken-cell.json" in problems[0]
    assert (run.parent / "latest").resolve() == run.resolve()


def test_the_run_knows_which_cells_were_planned(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    assert results.planned_cells(run) == [("bare", "patched"), ("mesos", "vulnerable"), ("mesos", "patched")]
    assert results.planned_cells(tmp_path) == []


def test_cell_meta_refuses_a_cell_that_was_not_planned(tmp_path: Path) -> None:
    with pytest.raises(results.ResultError, match="not in the run's plan"):
        results.cell_meta(run_record(tmp_path / "r", [("bare", "patched")]), "mesos-patched", {}, {})


def test_results_are_written_whole(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    assert not list(run.glob(".*.tmp")), "a temporary file was left"


def test_the_table_shows_each_cell_and_the_missing_ones(tmp_path: Path) -> None:
    cell = results.build_cell_result(make_raw(tmp_path))
    error = results.error_result({"topology": "mesos", "condition": "patched"}, "boom")
    text = summary.table([cell, error], [("bare", "patched"), ("mesos", "patched"), ("mesos", "vulnerable")])
    assert "clean: 7 pkts, 7 csum" in text and "| error" in text and "MISSING" in text
    lines = text.splitlines()
    assert lines[0].split("|")[2].strip() == "vulnerable" and len({len(line) for line in lines}) == 1
