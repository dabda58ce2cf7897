"""The documentation site's reference, written from the code as the site is built (so it cannot drift).

    reference/variables.md   every role variable: its default and comment (defaults/main.yml),
                             type, choices and description (meta/argument_specs.yml); the
                             inventory's, playbooks' and outputs' badsum_* names (badsum.specs)
    reference/cli.md         every `badsum` command and option, from the parser (internal
                             commands left out, as `--help` leaves them out)
    reference/exit-codes.md  the exit-code table (badsum.exitcodes)
    reference/topologies.md  the topology catalogue (badsum.topologies)

and, inside hand-written pages, a marker replaced by what the tree holds:
`<!-- badsum:exercises -->` (the workshop's exercises) and `<!-- badsum:tree -->` (the
packages and the collection's plugins).

mkdocs.yml names this file as a hook (on_files, on_page_markdown); `python -m badsum.docs
DIR` writes the generated pages into DIR, for reading them without mkdocs.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from badsum import paths, specs, topologies
from badsum.exitcodes import MEANING, Exit
from badsum.lab.spec import DEFAULT_HOSTS, DEFAULT_LAB

GENERATED = ("reference/variables.md", "reference/cli.md", "reference/exit-codes.md", "reference/topologies.md")
COLLECTION = paths.PROJECT / "collections" / "ansible_collections" / "badsum" / "kit" / "plugins"


# Variables with no default in their role: unset, the lab provider's own applies (`badsum lab up --help`).
UNSET_MEANS = {"badsum_lab_id": DEFAULT_LAB, "badsum_lab_hosts": DEFAULT_HOSTS}


def default(variable: str) -> Any:
    """What a variable is when nobody sets it: its role's default, or the provider's for the lab's. KeyError: none."""
    if variable in UNSET_MEANS:
        return UNSET_MEANS[variable]
    return specs.default(variable)


def render(value: Any) -> str:
    """A default as the pages show it, and as a hand-written page must state it: YAML's flow style."""
    if isinstance(value, str):
        return value if value else '""'
    return json.dumps(value) if isinstance(value, list | dict) else yaml.safe_dump(value).split("\n")[0]


def cell(text: Any) -> str:
    """Text safe inside a Markdown table cell (a Jinja filter's | would end the cell)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def comments(path: Path) -> dict[str, str]:
    """Each top-level variable's comment in a defaults file: the comment lines of its paragraph above it.

    Variables grouped under one comment (a paragraph with several keys) share it, as the file reads.
    """
    found: dict[str, str] = {}
    said: list[str] = []
    for line in path.read_text().splitlines():
        if not line.strip():
            said = []
        elif line.startswith("#"):
            said.append(line.lstrip("#").strip())
        elif m := re.match(r"^([A-Za-z_][A-Za-z0-9_]*):", line):
            found[m.group(1)] = " ".join(said)
    return found


def variables_page() -> str:
    out = [
        "# Variables",
        "",
        "Every `badsum_*` variable badsum reads, written from the roles as this site was built: the",
        "default and its comment from the role's `defaults/main.yml` (the only place a default lives),",
        "the type, choices and description from its `meta/argument_specs.yml`. Give one with `-e`",
        "(`ansible-playbook reproduce.yml -e badsum_experiment_rate=50`, or `badsum reproduce -e ...`);",
        "a `badsum_*` name not listed here is refused before anything changes, naming the closest one.",
        "",
    ]
    for name in specs.roles():
        role = specs.role(name)
        if not role.defaults and not role.options():
            continue
        said = comments(paths.role_defaults(name)) if paths.role_defaults(name).is_file() else {}
        options = role.options()
        out += [f"## {name}", "", "| variable | default | type | choices | what | its comment in defaults/main.yml |"]
        out.append("|---|---|---|---|---|---|")
        for var in sorted(n for n in set(role.defaults) | set(options) if n.startswith(specs.PREFIX)):
            spec = options.get(var, {})
            default = f"`{cell(render(role.defaults[var]))}`" if var in role.defaults else "(none)"
            if var in UNSET_MEANS:
                default += f" (unset: `{render(UNSET_MEANS[var])}`)"
            kind = spec.get("type", "")
            if kind == "list" and spec.get("elements"):
                kind = f"list of {spec['elements']}"
            allowed = ", ".join(f"`{cell(c)}`" for c in spec.get("choices") or ())
            what = f"{cell(_description(spec))} | {cell(said.get(var, ''))}"
            out.append(f"| `{var}` | {default} | {kind} | {allowed} | {what} |")
        out.append("")
    for title, table in (
        ("Inventory variables", specs.INVENTORY),
        ("Playbook variables", specs.PLAYBOOK),
        ("Outputs", specs.OUTPUTS),
    ):
        out += [f"## {title}", "", "| variable | what |", "|---|---|"]
        out += [f"| `{var}` | {cell(what)} |" for var, what in sorted(table.items())]
        out.append("")
    return "\n".join(out)


def _description(spec: dict) -> str:
    text = spec.get("description", "")
    return " ".join(text) if isinstance(text, list) else str(text)


Leaf = tuple[str, argparse.ArgumentParser]


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[Leaf]:
    """Every leaf command the help shows, in the parser's order (an internal one has no help: not listed)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(path), parser
        return
    shown = {a.dest for a in subs[0]._choices_actions}
    for name, child in subs[0].choices.items():
        if name in shown:
            yield from commands(child, (*path, name))


def cli_page() -> str:
    from badsum import cli  # the parser pulls in every command group: only when this page is made

    parser = cli.build_parser()
    out = [
        "# The badsum command",
        "",
        "Every command and option, as `badsum`'s own parser declares them (this page is written",
        "from it as the site is built). Every command exits with a code from",
        "[one table](exit-codes.md); each command's section says what each code means there.",
        "",
        "```",
        parser.format_usage().strip(),
        "```",
        "",
    ]
    for name, leaf in commands(parser):
        formatter = leaf._get_formatter()
        usage = leaf.format_usage().strip()
        out += [f"## badsum {name}", "", cell(leaf.description or ""), "", "```", usage, "```", ""]
        rows = [a for a in leaf._actions if not isinstance(a, argparse._HelpAction)]
        if rows:
            out += ["| option | what | default |", "|---|---|---|"]
            for action in rows:
                flags = ", ".join(f"`{f}`" for f in action.option_strings) or f"`{action.metavar or action.dest}`"
                default = action.default
                if isinstance(default, Path) and default.is_relative_to(paths.PROJECT):
                    default = default.relative_to(paths.PROJECT)  # the checkout's, wherever it is
                shown = (
                    f"`{cell(default)}`"
                    if default not in (None, False, [], argparse.SUPPRESS) and action.option_strings
                    else ""
                )
                said = formatter._expand_help(action) if action.help else ""
                said = said.replace(f"{paths.PROJECT}/", "")  # the checkout's paths, wherever it is
                out.append(f"| {flags} | {cell(said)} | {shown} |")
            out.append("")
        out += ["| exit | here |", "|---|---|"]
        out += [f"| {int(code)} | {cell(text)} |" for code, text in sorted(leaf.get_default("exits").items())]
        out.append("")
    return "\n".join(out)


def exit_codes_page() -> str:
    from badsum import exitcodes

    out = ["# Exit status", "", "Every `badsum` command exits with a code from this one table (`badsum --help`"]
    out += ["shows it):", ""]
    out += ["| code | meaning |", "|---|---|"]
    out += [f"| {int(code)} | {cell(MEANING[code])} |" for code in Exit]
    out += ["", "```", (exitcodes.__doc__ or "").strip(), "```", ""]
    out += [
        "`badsum --version` prints the package's version and, from a checkout, its commit",
        "(`git describe`); every run's `run.json` and report, and every fleet plan, host record and",
        "`fleet.json`, carry the same string as `badsum_version`.",
        "",
    ]
    return "\n".join(out)


def topologies_page() -> str:
    out = [
        "# Topology catalogue",
        "",
        "One record per topology, `roles/badsum_topology_<name>/meta/topology.yml`, read by every",
        "layer (`badsum/topologies.py` describes each field). This page is written from them.",
        "",
        "| row | topology | what it stands for | host module (mode) | container | exposed without the fix "
        "| server inventory |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in topologies.catalogue().values():
        module = f"`badsum/host/experiment/topology/{t.module}.py` ({t.mode})"
        needs = ", ".join(f"`{v}`" for v in t.inventory)
        out.append(f"| {t.row} | `{t.name}` | {cell(t.summary)} | {module} | {t.container} | {t.exposed} | {needs} |")
    out.append("")
    return "\n".join(out)


def exercises_table() -> str:
    rows = ["| exercise | title | minutes | check |", "|---|---|---|---|"]
    for path in sorted(paths.EXERCISES.glob("[0-9][0-9]-*.md")):
        front = yaml.safe_load(path.read_text().split("---")[1])
        rows.append(f"| `{path.name}` | {cell(front['title'])} | {front['minutes']} | {cell(front['check'])} |")
    return "\n".join(rows)


def _docstring(path: Path) -> str:
    text = ast.get_docstring(ast.parse(path.read_text())) or ""
    return cell(text.split("\n")[0])


def tree_listing() -> str:
    """The packages of badsum/ and the collection's plugins, each with its docstring's first line."""
    package = Path(__file__).resolve().parent  # wherever the checkout keeps the package
    rows = ["| where | what |", "|---|---|"]
    for path in sorted(package.rglob("*.py")):
        if path.name == "__init__.py" and path.parent != package:
            rows.append(f"| `{path.parent.relative_to(paths.PROJECT)}/` | {_docstring(path)} |")
        elif path.parent == package and path.name != "__init__.py":
            rows.append(f"| `{path.relative_to(paths.PROJECT)}` | {_docstring(path)} |")
    rows += ["", "| plugin | kind | what |", "|---|---|---|"]
    for name, (kinds, what) in sorted(kit_plugins().items()):
        rows.append(f"| `badsum.kit.{name}` | {', '.join(kinds)} | {what} |")
    return "\n".join(rows)


def kit_plugins() -> dict[str, tuple[list[str], str]]:
    """The collection's plugins by the name a playbook uses: a filter's is its docstring's
    (`badsum.kit.kernel_has_fix: ...`), anything else's its file's; an action and its module are one name."""
    found: dict[str, tuple[list[str], str]] = {}
    for path in sorted(COLLECTION.glob("*/*.py")):
        if path.parent.name == "plugin_utils":
            continue  # shared code of the plugins, no plugin itself
        said = _docstring(path)
        named = re.match(r"badsum\.kit\.(\w+): (.*)", said)
        name, what = (named.group(1), named.group(2)) if named else (path.stem, said)
        what = re.sub(r"^Action of badsum\.kit\.\w+: ", "", what)
        kinds, known = found.get(name, ([], ""))
        found[name] = ([*kinds, path.parent.name.rstrip("s")], known or what)
    return found


MARKERS = {"<!-- badsum:exercises -->": exercises_table, "<!-- badsum:tree -->": tree_listing}


def pages() -> dict[str, str]:
    return dict(zip(GENERATED, (variables_page(), cli_page(), exit_codes_page(), topologies_page()), strict=True))


def expand(markdown: str) -> str:
    for marker, make in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown


# mkdocs hooks (mkdocs.yml: hooks): the generated pages join the site's files; markers are expanded.
def on_files(files, config):
    from mkdocs.structure.files import File

    for uri, content in pages().items():
        files.append(File.generated(config, uri, content=content))
    return files


def on_page_markdown(markdown, page, config, files):
    return expand(markdown)


def main(argv: list[str] | None = None) -> int:
    out = Path((argv if argv is not None else sys.argv[1:])[0])
    for uri, content in pages().items():
        (out / uri).parent.mkdir(parents=True, exist_ok=True)
        (out / uri).write_text(content)
    return 0


if __name__ == "__main__":
    sys.exit(main())
