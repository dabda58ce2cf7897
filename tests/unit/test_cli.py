from __future__ import annotations

import pytest

from badsum import cli


def test_lab_commands_need_root(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert cli.main(["lab", "up"]) == 2
    assert "needs root" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["lab", "up", "--lab", "Bad-Id"],
        ["lab", "up", "--hosts", "-1"],
        ["lab", "up", "--hosts", "two"],
        ["lab", "sideways"],
        ["analyze"],
    ],
)
def test_bad_options_are_refused_before_anything_runs(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_too_many_hosts_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr("badsum.lab.provider.allocate_slot", lambda lab_id: 0)
    assert cli.main(["lab", "up", "--hosts", "500"]) == 2
    assert "--hosts must be between 1 and 200" in capsys.readouterr().err


def test_summary_of_a_missing_run_says_what_to_do(tmp_path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["summary", "nope", "--results", str(tmp_path)]) == 2
    assert "reproduce.yml" in capsys.readouterr().err
