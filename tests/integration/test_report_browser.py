"""report.html in headless Chromium, with the network unreachable: it must render whole."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from badsum import report
from synthetic import make_run

CHROMIUM = shutil.which("chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # every network load fails at once: a page that needs one shows it
    "--proxy-server=127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--enable-logging=stderr",
    "--v=0",
]


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if not CHROMIUM:
        pytest.fail("chromium is not installed: `make deps` installs Debian's chromium")
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_report_renders_offline_with_table_and_plots(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    html = report.build(run)["html"]
    url = html.resolve().as_uri()
    shot = tmp_path / "report.png"
    out = chromium(tmp_path / "profile", "--window-size=1200,2000", f"--screenshot={shot}", url)
    assert shot.exists() and shot.stat().st_size > 20_000, out.stderr[-2000:]
    dom = chromium(tmp_path / "profile2", "--dump-dom", url)
    assert 'id="outcome"' in dom.stdout
    assert dom.stdout.count("<img ") == 4  # 3 timelines + 1 offsets histogram
    failed = [line for line in (out.stderr + dom.stderr).splitlines() if "net::ERR_" in line]
    assert failed == [], failed
