from __future__ import annotations

import pytest

from badsum import incident, runner


def test_extravars_take_key_value_and_json() -> None:
    got = runner.parse_extravars(["badsum_experiment_rate=20", '{"badsum_experiment_topologies": ["bare"]}'])
    assert got == {"badsum_experiment_rate": "20", "badsum_experiment_topologies": ["bare"]}


def test_bad_extravar_says_what_it_wants() -> None:
    with pytest.raises(ValueError, match="KEY=VALUE"):
        runner.parse_extravars(["nonsense"])


def test_cell_count_follows_the_selection() -> None:
    assert runner.cell_count({}) == 15
    assert runner.cell_count({"badsum_experiment_topologies": ["bare", "mesos"]}) == 6


def test_mismatches_name_the_cells_off_the_incidents_table() -> None:
    cells = [
        {"topology": "mesos", "condition": "vulnerable", "verdict": "clean"},
        {"topology": "docker-nat", "condition": "vulnerable", "verdict": "clean"},
    ]
    assert incident.mismatches(cells) == ["mesos/vulnerable: clean (incident: corrupt-delivered)"]
