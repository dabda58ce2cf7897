from __future__ import annotations

import re
from pathlib import Path

import pytest

from badsum import report
from badsum.analysis import signature
from badsum.report import plots
from synthetic import make_run


def test_html_has_the_table_one_image_per_cell_and_nothing_external(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    built = report.build(run)
    html = built["html"].read_text()
    assert 'id="outcome"' in html
    assert html.count('<img alt="messages over time') == 3
    assert html.count('<img alt="corrupted bit offsets') == 1  # the corrupt cell only
    assert not re.search(r'(src|href)="(https?:)?//', html), "external resource"
    assert "<script" not in html
    assert 'href="#cell-mesos-vulnerable"' in html and 'id="cell-mesos-vulnerable"' in html
    assert "ansible-playbook reproduce.yml" in html  # the environment section
    md = built["md"].read_text()
    assert "| mesos |" in md and "report-plots/mesos-vulnerable-offsets.png" in md
    assert (run / "report-plots" / "mesos-vulnerable-offsets.png").exists()


def test_rebuilding_gives_the_same_report_but_for_its_build_time(tmp_path: Path) -> None:
    run = make_run(tmp_path)

    def strip(text: str) -> str:
        return re.sub(r"Built [0-9: -]+UTC", "Built X", text)

    report.build(run)
    first = {p: strip(p.read_text()) for p in (run / "report.html", run / "report.md")}
    pngs = {p: p.read_bytes() for p in (run / "report-plots").glob("*.png")}
    for p in (*first, *pngs):
        p.unlink()
    report.build(run)
    assert {p: strip(p.read_text()) for p in first} == first
    assert {p: p.read_bytes() for p in pngs} == pngs


@pytest.mark.parametrize(
    ("content", "message"),
    [("{broken", "not valid JSON"), ('{"topology": "mesos", "condition": "patched"}', "field 'verdict'")],
)
def test_a_malformed_file_is_named_and_the_rest_is_still_built(tmp_path: Path, content: str, message: str) -> None:
    run = make_run(tmp_path)
    (run / "mesos-patched.json").write_text(content)
    built = report.build(run)
    assert len(built["problems"]) == 1
    assert "mesos-patched.json" in built["problems"][0] and message in built["problems"][0]
    html = built["html"].read_text()
    assert 'class="unusable"' in html and "could not be used" in html
    assert html.count('<img alt="messages over time') == 2  # the other cells are all there


def test_comparison_marks_differences(tmp_path: Path) -> None:
    a = [report.Cell("mesos", "vulnerable", {"verdict": "corrupt-delivered"})]
    b = [
        report.Cell("mesos", "vulnerable", {"verdict": "clean"}),
        report.Cell("bare", "patched", {"verdict": "clean"}),
    ]
    rows = {r["cell"]: r for r in report.comparison(a, b)}
    assert rows["mesos/vulnerable"]["same"] is False
    assert rows["bare/patched"]["this"] == "-"


def test_cells_know_the_incidents_expectation() -> None:
    assert report.Cell("docker-ipv6", "vulnerable").expected == "corrupt-delivered"
    assert report.Cell("docker-nat", "vulnerable").expected == "clean"
    knob = report.Cell("docker-nat", "vulnerable", {"conntrack_checksum": "0"})
    assert knob.expected == "corrupt-delivered"


def test_a_planned_cell_without_a_result_is_shown_not_hidden(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    (run / "mesos-patched.json").unlink()
    built = report.build(run)
    assert any("mesos/patched was planned but has no result file" in p for p in built["problems"])


def test_timeline_data_counts_messages_as_they_go() -> None:
    cell = {
        "timeline": [
            {"seq": 0, "sent": 10.0, "arrived": 10.1, "status": "intact"},
            {"seq": 1, "sent": 11.0, "arrived": 13.0, "status": "corrupt"},
            {"seq": 2, "sent": 12.0, "arrived": 13.0, "status": "intact"},
        ],
        "corruption": {"window_start": 10.5, "window_end": 12.5},
    }
    data = plots.timeline_data(cell)
    assert data.window == (0.5, 2.5)
    assert max(data.pending) == 2 and data.pending[-1] == 0
    assert data.intact[-1] == 2 and data.corrupt[-1] == 1


def test_bit_offsets_are_taken_mod_32_of_the_stream() -> None:
    cell = {"corrupt_messages": [{"stream_offset": 100, "bit_diffs": [[5, 2], [37, 2]]}]}
    assert signature.bit_offsets_mod32(cell) == {9: 2}
