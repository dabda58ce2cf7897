"""README.md's front page, run as written: every ```sh block's commands, each in a fresh login shell
(`env -i bash -l`: no virtualenv, no PATH from make or pytest), from the checkout, as a new user would.

This is the one test that uses lab0 and this checkout's results/: the front page's own commands make
and take down the user's lab, and nothing else could be "as written". `make test` is not run again (it
is what runs this test); it is checked to be the Makefile's target, as `.ci/run` runs it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

README = ROOT / "README.md"
LINK = Path("/usr/local/bin/badsum")
NOT_RUN = {"make test": "the suite this test is part of"}


def front_page_commands() -> list[str]:
    blocks = re.findall(r"^```sh\n(.*?)^```", README.read_text(), re.M | re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def fresh_shell(command: str, timeout: int, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """A root login shell with nothing inherited (HOME and TERM as a console would set them)."""
    return subprocess.run(
        ["env", "-i", "HOME=/root", "TERM=dumb", "bash", "-l", "-c", f"cd {cwd} && {command}"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def why(output: str) -> str:
    """A failed run's own words: Ansible's failed tasks and their messages, wherever they are, then the end."""
    failed = [line for line in output.splitlines() if re.search(r"fatal:|FAILED!|\bmsg:|TASK \[", line)]
    return "\n".join(failed[-60:]) + "\n...\n" + output[-2000:]


def lab0_inventory() -> str | None:
    """Where lab0's inventory is, if lab0 exists (`lab status --lab ID --json`: a list, empty when it does not)."""
    proc = fresh_shell(f"{ROOT}/.venv/bin/badsum lab status --lab lab0 --json", 60)
    labs = json.loads(proc.stdout)
    return next((str(lab["inventory"]) for lab in labs if lab.get("inventory")), "(no inventory)" if labs else None)


@pytest.fixture
def own_lab0():
    """lab0 free, or this checkout's: the front page makes it; someone else's lab0 is not ours to take down."""
    inventory = lab0_inventory()
    if inventory and not inventory.startswith(str(ROOT)) and Path(inventory).exists():
        pytest.fail(f"lab0 is up with another checkout's inventory ({inventory}): the front page cannot run here")
    before = os.readlink(LINK) if LINK.is_symlink() else None
    yield
    fresh_shell(f"{ROOT}/.venv/bin/badsum lab down --lab lab0", 120)
    # The machine's PATH as it was: another checkout's badsum, or none (a CI clone goes away after its run).
    if LINK.is_symlink() and os.readlink(LINK) != before:
        os.remove(LINK)
        if before:
            os.symlink(before, LINK)


def test_the_front_page_names_the_two_commands_and_no_venv_path() -> None:
    commands = front_page_commands()
    assert commands[:2] == ["make reproduce", "make test"]
    assert "badsum lab down" in commands
    assert not [c for c in commands if ".venv/" in c]  # a new user's shell has no such path
    makefile = (ROOT / "Makefile").read_text()
    for command in NOT_RUN:
        target = command.split()[1]
        assert re.search(rf"^{target}:", makefile, re.M), command
    assert "exec make test" in (ROOT / ".ci/run").read_text()


@pytest.mark.usefixtures("own_lab0")
def test_every_front_page_command_works_in_a_fresh_shell() -> None:
    ran = []
    for command in front_page_commands():
        if command in NOT_RUN:
            continue
        # The page runs make "from the checkout", and the rest "in any root shell": from root's home.
        proc = fresh_shell(command, 900, cwd=ROOT if command.startswith("make ") else Path("/root"))
        assert proc.returncode == 0, f"{command}: exit {proc.returncode}\n{why(proc.stdout)}\n{proc.stderr[-3000:]}"
        ran.append((command, proc.stdout))
    said = dict(ran)
    assert os.readlink(LINK) == str(ROOT / ".venv/bin/badsum")
    assert "| mesos " in said["make reproduce"] and "CORRUPT" in said["make reproduce"]
    assert "| docker-nat " in said["badsum summary"]
    mesos_only = next(out for cmd, out in ran if cmd.startswith("badsum reproduce"))
    assert "mesos" in mesos_only and "| bare " not in mesos_only
    assert lab0_inventory() is None  # the page's last command took the lab down


def test_make_reproduce_refuses_to_replace_a_file_that_is_not_its_symlink(tmp_path: Path) -> None:
    """make cli, the PATH step of make reproduce, with its link pointed at a scratch path (CLI_LINK=...)."""
    link = tmp_path / "badsum"
    link.write_text("#!/bin/sh\necho someone else's\n")
    proc = fresh_shell(f"make cli CLI_LINK={link}", 120)
    assert proc.returncode != 0 and "is not a symlink" in proc.stderr
    assert link.read_text().startswith("#!/bin/sh")
    link.unlink()
    for _ in range(2):  # safe to run twice
        proc = fresh_shell(f"make cli CLI_LINK={link}", 120)
        assert proc.returncode == 0, proc.stderr
        assert os.readlink(link) == str(ROOT / ".venv/bin/badsum")
