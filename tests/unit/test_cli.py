from __future__ import annotations

import json
from pathlib import Path

import pytest

from badsum import cli, paths
from badsum.exitcodes import Exit
from synthetic import make_run


def test_lab_commands_need_root(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert cli.main(["lab", "up"]) == Exit.FAILURE
    assert "needs root" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["lab", "up", "--lab", "Bad-Id"], "argument --lab: lab id 'Bad-Id' is not valid"),
        (["lab", "up", "--hosts", "-1"], "argument --hosts: '-1': allowed: a whole number from 1 to 200"),
        (["lab", "up", "--hosts", "two"], "argument --hosts: 'two' is not a whole number"),
        (["lab", "up", "--hosts", "500"], "argument --hosts: '500': allowed: a whole number from 1 to 200"),
        (["lab", "up", "--slot", "99"], "argument --slot: '99': allowed: a whole number from 0 to 31"),
        (["lab", "up", "--student", "/no/such.json"], "argument --student: want JSON with name, password_hash"),
        (["lab", "sideways"], "invalid choice: 'sideways'"),
        (["lab", "status", "--hosts", "3", "--kernel", "fixed"], "unrecognized arguments: --hosts 3 --kernel fixed"),
        (["lab", "down", "--lab", "lab1", "--all"], "argument --all: not allowed with argument --lab"),
        (["fleet", "audit", "--check"], "unrecognized arguments: --check"),
        (["reproduce", "-i", "/no/such/inventory"], "'/no/such/inventory': no such inventory"),
        (["analyze"], "the following arguments are required: RAW"),
    ],
)
def test_bad_options_are_refused_before_anything_runs(
    argv: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == Exit.USAGE
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["lab", "up", "--provider", "qemu"], "--provider qemu needs --kernel"),
        (["lab", "up", "--kernel", "unfixed"], "--kernel: not an option of a embedded lab"),
        (["lab", "up", "--init", "systemd"], "--init: not an option of a embedded lab"),
        (["lab", "up", "--provider", "qemu", "--kernel", "fixed", "--hosts", "4"], "--hosts: not an option of a qemu"),
        (["lab", "up", "--remake"], "--remake: only with --hosts N"),
        (["reproduce", "-e", "nonsense"], "-e 'nonsense': 'nonsense' is not KEY=VALUE"),
        (["reproduce", "-e", "@/no/such/preset.yml"], "Could not find or access '/no/such/preset.yml'"),
        (["reproduce", "-e", "{broken"], "-e '{broken': YAML parsing failed"),
        (["fleet", "audit", "-l", "a;b"], "--limit 'a;b': not a host pattern"),
    ],
)
def test_options_that_do_not_apply_are_usage_errors(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr("badsum.cli.lab.owner", lambda lab_id: None)  # no lab of either provider on this machine
    assert cli.main(argv) == Exit.USAGE
    assert message in capsys.readouterr().err


def test_one_account_per_lab(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    account = tmp_path / "account.json"
    account.write_text(json.dumps({"name": "student", "password_hash": "x", "keys": [], "home": str(paths.EXERCISES)}))
    with pytest.raises(SystemExit) as exc:
        cli.main(["lab", "up", "--student", str(account), "--user", "al"])
    assert exc.value.code == Exit.USAGE
    assert "argument --user: not allowed with argument --student" in capsys.readouterr().err


def test_summary_of_a_missing_run_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["summary", "nope", "--results", str(tmp_path)]) == Exit.USAGE
    assert "RUN nope: no such run under" in capsys.readouterr().err


def test_summary_exit_status_follows_the_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = make_run(tmp_path)
    assert cli.main(["summary", str(run), "--json"]) == Exit.OK
    said = json.loads(capsys.readouterr().out)
    assert said["exit_status"] == 0 and said["badsum_version"]
    cell = run / "mesos-vulnerable.json"
    cell.write_text(json.dumps({**json.loads(cell.read_text()), "verdict": "clean"}))
    assert cli.main(["summary", str(run)]) == Exit.FINDING  # off the incident's table
    assert "DIFFERS from the incident: mesos/vulnerable" in capsys.readouterr().out
    (run / "bare-patched.json").unlink()
    assert cli.main(["summary", str(run)]) == Exit.FAILURE  # a planned cell with no result
