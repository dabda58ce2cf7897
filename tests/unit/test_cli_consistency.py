"""The CLI speaks one dialect: walked from the parser itself, every command at once.

Every reporting command has --json; every -i/--inventory reads an inventory
(and only `lab up --write-inventory` writes one); --results is the one name for
where runs are; every command documents its exit codes, all from the one table;
every option a command takes is read by the code that runs it (none silently
ignored); --version works; internal commands work but are not listed.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import textwrap

import pytest

from badsum import cli
from badsum.cli import common
from badsum.exitcodes import Exit

# What the kit reports: each must offer --json (the list, and every status).
REPORTING = {
    "reproduce",
    "reproduce-real",
    "summary",
    "report",
    "analyze",
    "lab status",
    "kernel build",
    "kernel status",
    "fleet audit",
    "fleet remediate",
    "fleet rollback",
    "workshop status",
    "workshop check",
}
# Where runs are read or written: --results DIR, nothing else.
RESULTS = {"reproduce", "reproduce-real", "summary", "report", "fleet audit", "fleet remediate", "fleet rollback"}
INTERNAL = {"run-info", "hostkit"}


def leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {" ".join(path): parser}
    for name, child in subs[0].choices.items():
        found |= leaves(child, (*path, name))
    return found


LEAVES = leaves(cli.build_parser())


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]


def test_the_walk_finds_every_command() -> None:
    assert set(LEAVES) >= REPORTING | RESULTS | INTERNAL
    assert len(LEAVES) >= 20


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_every_command_documents_its_exit_codes_from_the_one_table(name: str) -> None:
    parser = LEAVES[name]
    exits = parser.get_default("exits")
    assert exits and set(exits) <= set(Exit) and Exit.USAGE in exits, name
    for code in exits:
        assert f"\n  {int(code):<3} " in parser.epilog, f"{name}: exit {int(code)} not in its --help"


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_every_reporting_command_has_json(name: str) -> None:
    parser = LEAVES[name]
    has_json = any("--json" in a.option_strings for a in options(parser))
    assert parser.get_default("reports") == (name in REPORTING), name
    assert has_json == (name in REPORTING), name


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_an_inventory_option_always_reads_one(name: str) -> None:
    for action in options(LEAVES[name]):
        flags = set(action.option_strings)
        if flags & {"-i", "--inventory"}:
            assert flags == {"-i", "--inventory"} and action.type is common.inventory, name
        elif any("inventory" in f for f in flags):
            assert (name, flags) == ("lab up", {"--write-inventory"}), f"{name}: {flags}"


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_results_are_found_one_way(name: str) -> None:
    flags = {f for a in options(LEAVES[name]) for f in a.option_strings}
    assert not flags & {"--results-dir", "--run-dir", "--project"}, name
    assert ("--results" in flags) == (name in RESULTS), name


def _reads(function, seen: set) -> set[str]:
    """The attributes of `args` a function reads, and those of the functions it hands `args` to."""
    if function in seen or not inspect.isfunction(function):
        return set()
    seen.add(function)
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    read: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "args":
            read.add(node.attr)
        elif isinstance(node, ast.Call):
            named = [a.id for a in node.args[:1] if isinstance(a, ast.Name)]
            if isinstance(node.func, ast.Name) and node.func.id == "getattr" and named == ["args"]:
                read.add(node.args[1].value)  # getattr(args, "check", False)
            if any(isinstance(a, ast.Name) and a.id == "args" for a in node.args):
                callee = function.__globals__.get(node.func.id) if isinstance(node.func, ast.Name) else None
                read |= _reads(callee, seen)
    return read


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_no_option_is_silently_ignored(name: str) -> None:
    """Each option of a command is read by its handler (or what the handler hands the arguments to)."""
    parser = LEAVES[name]
    dests = {a.dest for a in options(parser) if a.dest != argparse.SUPPRESS}
    unread = dests - _reads(parser.get_default("func"), set())
    assert not unread, f"`badsum {name}` takes {sorted(unread)} but never reads them"


def test_an_option_of_another_action_is_a_usage_error(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["lab", "status", "--hosts", "3", "--kernel", "fixed"])
    assert exc.value.code == Exit.USAGE
    assert "unrecognized arguments: --hosts 3 --kernel fixed" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture) -> None:
    from badsum.version import version

    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    said = capsys.readouterr().out.strip()
    assert said == f"badsum {version()}" and said.startswith("badsum 0.")
    assert "(git " in said  # run from a checkout: its commit too


def test_the_top_level_help_shows_the_table_and_hides_the_internal_commands(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    shown = capsys.readouterr().out
    for code in Exit:
        assert f"\n  {int(code):<3} " in shown
    for name in INTERNAL:
        assert name not in shown
        assert cli.build_parser().parse_args([name, "x"]).func  # still there
