"""The guard's systemd unit as systemd itself reads it, and where each guard mode applies."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from badsum.host.fleet import persistence
from badsum.host.shared.common import HostError


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


@pytest.fixture
def systemd_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A host whose systemctl answers as `host` says: is the guard active, what is-enabled prints."""
    host = {"active": True, "enabled": "enabled", "stop_fails": False}
    monkeypatch.setenv("BADSUM_LIB_DIR", str(tmp_path / "lib"))
    monkeypatch.setattr(persistence, "UNIT_PATH", tmp_path / persistence.UNIT)

    def systemctl(*cmd: str, check: bool = True, **_kw) -> subprocess.CompletedProcess:
        if cmd[1] == "is-active":
            return subprocess.CompletedProcess(cmd, 0 if host["active"] else 3, "", "")
        if cmd[1] == "is-enabled":
            # systemctl's own exit codes: 0 also for states that do not start the unit at boot.
            code = 0 if host["enabled"] in ("enabled", "enabled-runtime", "static", "indirect") else 1
            return subprocess.CompletedProcess(cmd, code, host["enabled"] + "\n", "")
        if cmd[1:3] == ("disable", "--now") and host["stop_fails"]:
            return subprocess.CompletedProcess(cmd, 1, "", "Job for badsum-rx-guard.service canceled.")
        host["active"] = host["active"] and cmd[1:3] != ("disable", "--now")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(persistence, "sh", systemctl)
    return host


def test_the_guard_covers_the_host_only_running_enabled_and_as_this_kit_writes_it(systemd_host: dict) -> None:
    unit = persistence.UNIT_PATH
    unit.write_text(persistence.unit_text(30))
    assert persistence.guard_gap("systemd") is None
    # enabled-runtime is gone after a reboot, as disabled is: is-enabled's exit code alone says 0 for it.
    for state in ("disabled", "enabled-runtime", "masked"):
        systemd_host["enabled"] = state
        assert persistence.guard_gap("systemd") == ("after a reboot", f"{persistence.UNIT} runs but is {state}")
    systemd_host["enabled"] = "enabled"
    # Another version's unit (here: without the ordering before the runtimes), an edited one, none at all.
    unit.write_text("".join(line for line in persistence.unit_text(30).splitlines(True) if "Before=" not in line))
    assert persistence.guard_gap("systemd")[0] == "at boot"
    unit.write_text(persistence.unit_text(30).replace("Restart=always", "Restart=no"))
    assert persistence.guard_gap("systemd")[0] == "at boot"
    unit.unlink()
    assert persistence.guard_gap("systemd")[0] == "at boot"
    systemd_host["active"] = False
    assert persistence.guard_gap("systemd") == persistence.GUARD_DOWN


def test_a_daemon_covers_the_host_while_it_runs(systemd_host: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    assert persistence.guard_gap("daemon") == persistence.GUARD_DOWN  # no pidfile: none runs
    assert persistence.guard_gap(None) == persistence.GUARD_DOWN
    # Running, it is not held to a unit: none is written, none is enabled (systemd says disabled here).
    systemd_host["enabled"] = "disabled"
    monkeypatch.setattr(persistence, "guard_running", lambda mode: mode == "daemon")
    assert persistence.guard_gap("daemon") is None


def test_a_guard_that_did_not_stop_is_not_forgotten(systemd_host: dict) -> None:
    """Its unit and pidfile stay, and the rollback fails: a forgotten guard would turn veths off again."""
    persistence.UNIT_PATH.write_text(persistence.unit_text(30))
    systemd_host["stop_fails"] = True
    with pytest.raises(HostError, match=r"did not stop: Job for badsum-rx-guard\.service canceled"):
        persistence.stop_guard("systemd")
    assert persistence.UNIT_PATH.exists()
    systemd_host["stop_fails"] = False
    persistence.stop_guard("systemd")
    assert not persistence.UNIT_PATH.exists() and systemd_host["active"] is False
