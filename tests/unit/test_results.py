from __future__ import annotations

import json
from pathlib import Path

import pytest

from badsum import framing, results, summary
from synthetic import make_raw


def test_clean_cell(tmp_path: Path) -> None:
    cell = results.build_cell_result(make_raw(tmp_path))
    assert cell["verdict"] == "clean"
    assert cell["csum_errors"] == {"host": {"TcpInCsumErrors": 7}}
    assert cell["messages"] == {"sent": 4, "intact": 4, "corrupt": 0, "missing": 0}
    assert cell["held_messages"]["count"] == 2  # sent at 12 and 13, arrived at 16


def test_corrupt_cell_records_bits(tmp_path: Path) -> None:
    cell = results.build_cell_result(make_raw(tmp_path, flip=True, csum=0))
    assert cell["verdict"] == "corrupt-delivered"
    frame = framing.HEADER_LEN + 100
    assert cell["corrupt_messages"] == [
        {"seq": 2, "stream_offset": 2 * frame, "bit_diffs": [[framing.HEADER_LEN + 3, 7]]}
    ]


def test_missing_field_names_file_and_field(tmp_path: Path) -> None:
    raw = make_raw(tmp_path)
    (raw / "corruption.json").write_text(json.dumps({"stats": {}}))
    with pytest.raises(results.ResultError, match=r"corruption.json: field 'window_start'"):
        results.build_cell_result(raw)


def test_run_loading_reports_unusable_files_and_keeps_the_rest(tmp_path: Path) -> None:
    run = tmp_path / "run1"
    results.write_result(results.build_cell_result(make_raw(tmp_path)), run)
    (run / "broken-cell.json").write_text("{not json")
    cells, problems = results.load_run(run)
    assert len(cells) == 1 and len(problems) == 1 and "broken-cell.json" in problems[0]
    assert (tmp_path / "latest").resolve() == run.resolve()


def test_table_shows_each_cell(tmp_path: Path) -> None:
    cell = results.build_cell_result(make_raw(tmp_path))
    text = summary.table([cell, results.error_result({"topology": "mesos", "condition": "patched"}, "boom")])
    assert "bare" in text and "clean: 7 pkts, 7 csum" in text and "error" in text
