"""The host kit as shipped: one zipapp built from the badsum.host package, nothing kept by hand."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from badsum import hostkit
from badsum.host import TOOLS

HOST_PACKAGE = Path(hostkit.__file__).parent / "host"


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kit") / "badsum-host.pyz"
    hostkit.write(path)
    return path


def test_every_module_and_program_of_the_package_is_in_the_kit(kit: Path) -> None:
    names = set(zipfile.ZipFile(kit).namelist())
    for path in HOST_PACKAGE.rglob("*"):
        if path.suffix in (".py", ".c") and "__pycache__" not in path.parts:
            assert f"badsum/host/{path.relative_to(HOST_PACKAGE).as_posix()}" in names


def test_the_kit_is_reproducible(tmp_path: Path) -> None:
    assert hostkit.build() == hostkit.build()
    assert hostkit.write(tmp_path / "k.pyz") is True
    assert hostkit.write(tmp_path / "k.pyz") is False


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_every_tool_runs_from_the_kit_alone(kit: Path, tool: str) -> None:
    # -I -S: no site-packages, no environment, no current directory: the
    # standard library and the kit are all a host has.
    proc = subprocess.run(
        ["python3", "-I", "-S", str(kit), tool, "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert f"badsum-host {tool}" in proc.stdout


def test_a_refusal_is_one_json_object_and_exit_status_2(kit: Path) -> None:
    proc = subprocess.run(
        ["python3", "-I", "-S", str(kit), "corruptor", "arm", "--iface", "lo"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["failed"] is True
    assert "the following arguments are required: --backend" in proc.stderr


def test_an_unknown_tool_lists_the_tools(kit: Path) -> None:
    proc = subprocess.run(["python3", "-I", "-S", str(kit), "nope"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "corruptor" in json.loads(proc.stdout)["msg"]
