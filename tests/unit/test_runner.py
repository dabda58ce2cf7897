from __future__ import annotations

from pathlib import Path

import pytest

from badsum import runner
from badsum.analysis import incident
from synthetic import make_run


def test_extravars_take_key_value_json_and_files(tmp_path: Path) -> None:
    preset = tmp_path / "p.yml"
    preset.write_text("badsum_experiment_rate: 100\n")
    got = runner.parse_extravars(
        ["badsum_experiment_rate=20", '{"badsum_experiment_topologies": ["bare"]}', f"@{preset}"]
    )
    assert got == {"badsum_experiment_rate": 100, "badsum_experiment_topologies": ["bare"]}


@pytest.mark.parametrize("bad", ["nonsense", "@/no/such/file.yml", "{not json"])
def test_a_bad_extravar_says_what_it_wants(bad: str) -> None:
    with pytest.raises(ValueError, match="-e"):
        runner.parse_extravars([bad])


def test_progress_counts_the_result_files_of_the_run(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    assert runner.progress(run) == (3, 3)
    (run / "mesos-patched.json").unlink()
    assert runner.progress(run) == (2, 3)
    assert runner.progress(tmp_path / "nothing") == (0, 0)


def test_mismatches_name_the_cells_off_the_incidents_table() -> None:
    cells = [
        {"topology": "mesos", "condition": "vulnerable", "verdict": "clean"},
        {"topology": "docker-nat", "condition": "vulnerable", "verdict": "clean"},
    ]
    assert incident.mismatches(cells) == ["mesos/vulnerable: clean (incident: corrupt-delivered)"]
