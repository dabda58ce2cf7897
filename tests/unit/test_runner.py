from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from badsum import ansible, paths, runner
from badsum.analysis import incident
from badsum.exitcodes import UsageError
from synthetic import make_run


def test_extravars_are_parsed_as_ansible_playbook_parses_them(tmp_path: Path) -> None:
    """The same -e values through ansible-playbook itself and through badsum: the same variables."""
    preset = tmp_path / "p.yml"
    preset.write_text("badsum_experiment_rate: 100\nnested: {a: [1, 2]}\n")
    values = [
        "badsum_experiment_rate=20 plain=x quoted='a b' other=\"c d\"",
        '{"badsum_experiment_topologies": ["bare"], "number": 3}',
        f"@{preset}",
        "plain=y",  # later wins
    ]
    got = ansible.parse_extra_vars(values)
    assert got == {
        "badsum_experiment_rate": 100,
        "plain": "y",
        "quoted": "a b",
        "other": "c d",
        "badsum_experiment_topologies": ["bare"],
        "number": 3,
        "nested": {"a": [1, 2]},
    }
    out = tmp_path / "vars.json"
    play = tmp_path / "show.yml"
    play.write_text(
        "- hosts: localhost\n  gather_facts: false\n  connection: local\n  tasks:\n"
        "    - ansible.builtin.copy:\n        dest: " + str(out) + "\n"
        "        content: \"{{ dict(names | zip(query('ansible.builtin.vars', *names))) | to_json }}\"\n"
        "        mode: '0600'\n"
    )
    names = json.dumps({"names": sorted(got)})
    argv = [str(paths.BIN / "ansible-playbook"), "-i", "localhost,", str(play), "-e", names]
    for value in values:
        argv += ["-e", value]
    proc = subprocess.run(argv, env=ansible.environment(), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert json.loads(out.read_text()) == got


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("nonsense", "'nonsense' is not KEY=VALUE"),
        ("@/no/such/file.yml", "Could not find or access '/no/such/file.yml'"),
        ("{not json", "YAML parsing failed"),
        ("/etc/passwd", "Please prepend extra_vars filename '/etc/passwd' with '@'"),
        ("[1, 2]", "could not be made into a dictionary"),
    ],
)
def test_a_bad_extravar_is_a_usage_error_naming_it(bad: str, says: str) -> None:
    with pytest.raises(UsageError, match=f"^-e {re.escape(repr(bad))}: .*{re.escape(says)}"):
        ansible.parse_extra_vars(["ok=1", bad])


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
