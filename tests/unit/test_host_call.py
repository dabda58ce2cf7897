"""badsum.host.call: the one way every tool action runs, from the CLI and from the Ansible module."""

from __future__ import annotations

import pytest

from badsum.host import TOOLS, HostError, call


def test_a_read_only_action_never_reports_a_change() -> None:
    result = call("counters", ["read", "--ns", "host=self"])
    assert result["changed"] is False and "TcpInCsumErrors" in result["counters"]["host"]


def test_check_mode_skips_an_action_that_changes_the_host() -> None:
    result = call("corruptor", ["disarm", "--iface", "lo"], check_mode=True)
    assert result == {
        "changed": False,
        "skipped": True,
        "msg": "check mode: `corruptor disarm` would change the host, so it did not run",
    }


def test_check_mode_runs_what_only_reads() -> None:
    assert "counters" in call("counters", ["read"], check_mode=True)


@pytest.mark.parametrize(
    ("tool", "argv", "message"),
    [
        ("nope", [], "no tool 'nope'"),
        ("corruptor", ["sideways"], "invalid choice: 'sideways'"),
        ("recorder", ["start", "--out", "/tmp/x"], "required: --port, --timeout"),
        ("counters", ["read", "--ns", "oops"], "want LABEL=NETNS_PATH"),
    ],
)
def test_bad_calls_raise_host_errors_that_say_why(tool: str, argv: list[str], message: str) -> None:
    with pytest.raises(HostError, match=message):
        call(tool, argv)


def test_the_table_names_only_actions_the_tools_have() -> None:
    import importlib

    for name, tool in TOOLS.items():
        parser = importlib.import_module(f"badsum.host.{tool.module}").build_parser()
        actions = set(parser._subparsers._group_actions[0].choices)
        assert set(tool.read_only) <= actions and set(tool.checkable) <= actions, name
