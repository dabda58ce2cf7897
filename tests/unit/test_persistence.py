"""The guard's systemd unit as systemd itself reads it, and where each guard mode applies."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from badsum.host import persistence
from badsum.host.common import HostError


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_knows_every_setting_of_the_guards_unit(tmp_path: Path) -> None:
    """A setting systemd does not know is ignored with a warning: the sandbox would silently not be there."""
    unit = tmp_path / persistence.UNIT
    unit.write_text(persistence.unit_text(60))
    run = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False)
    assert run.returncode == 0 and run.stderr == "", run.stderr
    assert "ExecStart=/usr/bin/python3 -I " in unit.read_text() and "--interval 60\n" in unit.read_text()


def test_auto_picks_the_daemon_where_systemd_does_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(persistence, "has_systemd", lambda: False)
    assert persistence.guard_mode("auto") == "daemon"
    with pytest.raises(HostError, match="systemd is not running"):
        persistence.guard_mode("systemd")
    monkeypatch.setattr(persistence, "has_systemd", lambda: True)
    assert persistence.guard_mode("auto") == "systemd"
    assert persistence.guard_mode("daemon") == "daemon"
    assert persistence.guard_enabled("daemon") is False  # a daemon never comes back after a reboot
