"""Every badsum.kit.run call of the roles, playbooks and molecule scenarios against the host kit's own parsers.

A host-kit call is one module call: `args` become the tool's options. A call
must give every option its tool requires and none the tool lacks; and an
option every call gives is required by the tool - its default lives in the
role that passes it (the fleet's CNI directories, the guard's interval...),
not a second time in the kit.
"""

from __future__ import annotations

import argparse
import importlib
import re
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from badsum import topologies
from badsum.host import TOOLS

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(
    [*(ROOT / "roles").rglob("tasks/*.yml"), *(ROOT / "playbooks").rglob("*.yml"), *(ROOT / "molecule").rglob("*.yml")]
)


def role_vars(task_file: Path) -> dict:
    """The role's vars/main.yml, where a call's args name one of its variables."""
    for parent in task_file.parents:
        if parent.parent.name == "roles":
            path = parent / "vars" / "main.yml"
            return yaml.safe_load(path.read_text()) if path.is_file() else {}
    return {}


def option_names(args, task: dict, variables: dict) -> set[str] | None:
    """The option names a call's args give: a mapping, a role variable, combined dicts. None: cannot tell."""
    if isinstance(args, dict):
        return set(args)
    if not isinstance(args, str):
        return None
    names: set[str] = set()
    first = re.match(r"\s*{{\s*(\w+)", args)
    if not first:
        return None
    base = task.get("vars", {}).get(first[1], variables.get(first[1]))
    if not isinstance(base, dict):
        return None
    names |= set(base)
    for combined in re.findall(r"combine\(\s*(\{[^)]*\}|\w+)\s*\)", args):
        if combined.startswith("{"):
            names |= set(re.findall(r"'(\w+)':", combined))
        else:
            value = task.get("vars", {}).get(combined, variables.get(combined))
            if not isinstance(value, dict):
                return None
            names |= set(value)
    return names


def tasks(data) -> list[dict]:
    found = []
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, dict):
            continue
        found += [item] if "badsum.kit.run" in item else []
        for key in ("tasks", "block", "rescue", "always", "pre_tasks", "post_tasks"):
            found += tasks(item.get(key))
    return found


def calls() -> list[tuple[str, str, str, set[str] | None]]:
    """(where, tool, action, the option names it gives) for every call in the roles and playbooks."""
    found = []
    for path in FILES:
        for task in tasks(yaml.safe_load(path.read_text())):
            call = task["badsum.kit.run"]
            where = f"{path.relative_to(ROOT)}: {task.get('name')}"
            args = call.get("args", {})
            if isinstance(args, str) and "lookup('badsum.kit.topology'" in args:
                # The shared topology tasks: one call per record, its args what the lookup builds from it.
                for record in topologies.catalogue().values():
                    names = {"name", "module", "mode", "port", *record.options}
                    found.append((f"{where} [{record.name}]", call["tool"], call["action"], names))
                continue
            found.append((where, call["tool"], call["action"], option_names(args, task, role_vars(path))))
    return found


def subparser(tool: str, action: str) -> argparse.ArgumentParser:
    parser = importlib.import_module(f"badsum.host.{TOOLS[tool].module}").build_parser()
    return parser._subparsers._group_actions[0].choices[action]


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.option_strings and a.dest not in ("help", "check")}


def key(action: argparse.Action) -> str:
    """The args key that becomes this option (badsum.kit.run: key -> --key-with-dashes)."""
    return action.option_strings[-1].removeprefix("--").replace("-", "_")


CALLS = calls()


def test_the_calls_are_found() -> None:
    assert len(CALLS) > 30
    assert {("audit", "show"), ("remediate", "rollout"), ("corruptor", "arm"), ("client", "run")} <= {
        (t, a) for _, t, a, _ in CALLS
    }
    assert all(names is not None for where, _, _, names in CALLS if "badsum_fleet" in where)
    assert {w.rsplit("[", 1)[-1].rstrip("]") for w, t, a, _ in CALLS if (t, a) == ("topology", "up")} >= set(
        topologies.names()
    )


@pytest.mark.parametrize(("where", "tool", "action", "names"), CALLS, ids=[c[0] for c in CALLS])
def test_a_call_gives_what_its_tool_requires_and_nothing_it_lacks(where, tool, action, names) -> None:
    if names is None:
        pytest.skip("its args are an expression this test cannot read")
    have = {key(a): a for a in options(subparser(tool, action)).values()}
    assert names - set(have) == set(), "options the tool does not have"
    assert {k for k, a in have.items() if a.required} - names == set(), "required options the call does not give"


def test_an_option_every_call_gives_has_its_default_in_the_role_not_in_the_kit() -> None:
    given: dict[tuple[str, str], list[set[str]]] = defaultdict(list)
    for _, tool, action, names in CALLS:
        given[(tool, action)].append(names)
    optional = []
    for (tool, action), each in given.items():
        if any(names is None for names in each):
            continue
        always = set.intersection(*each)
        for name, option in {key(a): a for a in options(subparser(tool, action)).values()}.items():
            # A flag or a repeatable option may be given empty (nothing on the command line): those may stay optional.
            flag = option.nargs == 0 or (isinstance(option, argparse._AppendAction) and not option.required)
            if name in always and not option.required and not flag and tool != "topology":
                optional.append(f"{tool} {action} --{name.replace('_', '-')} (default {option.default!r})")
    # topology: its options are each topology's own (the topology catalogue, issue 23 item 1)
    assert optional == []


@pytest.mark.parametrize(
    ("tool", "action", "option"),
    [
        ("audit", "show", "cni_conf_dir"),
        ("audit", "show", "cni_bin_dir"),
        ("audit", "show", "textfile_dir"),
        ("remediate", "rollout", "interval"),
        ("remediate", "rollout", "wait"),
        ("remediate", "rollout", "vxlan"),
        ("remediate", "rollback", "cni_bin_dir"),
        ("remediate", "verify", "wait"),
        ("guard", "run", "interval"),
    ],
)
def test_the_fleets_values_have_no_second_default_in_the_kit(tool: str, action: str, option: str) -> None:
    """The guard's interval, the CNI directories, the textfile and the wait: the fleet's defaults/main.yml only."""
    found = options(subparser(tool, action))[option]
    assert found.required and found.default is None
