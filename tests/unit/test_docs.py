"""The documentation agrees with the code: the site builds strict and offline, the generated reference says
what the code says, and what the hand-written pages state (variables, defaults, paths, options) exists.

Each check is a function over text, so a planted mismatch (a tmp copy of a page or of the roles) is shown
to fail it: a check that cannot fail proves nothing.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from badsum import cli, docs, paths, specs, topologies
from badsum.exitcodes import MEANING, Exit
from badsum.fleet import stats

HAND_WRITTEN = [*sorted((paths.PROJECT / "docs").rglob("*.md")), paths.PROJECT / "README.md"]
PAGES = docs.pages()
# badsum_* words in the docs that are not variables: the Prometheus metrics the fleet writes, the
# version field of every record, and the misspelling the pages show being refused.
METRICS = set(re.findall(r"badsum_[a-z0-9_]+", (Path(docs.__file__).parent / "host/shared/metrics.py").read_text()))
NOT_VARIABLES = METRICS | {"badsum_version", "badsum_experiment_rat"}


# ---- the site


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    cmd = [str(paths.BIN / "mkdocs"), "build", "--strict", "--config-file", str(config), "--site-dir", str(site)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, cwd=config.parent)


def copy_of_the_docs(tmp: Path) -> Path:
    """mkdocs.yml and docs/ in tmp, its hook still the package's (an absolute path)."""
    shutil.copytree(paths.PROJECT / "docs", tmp / "docs")
    config = yaml.safe_load((paths.PROJECT / "mkdocs.yml").read_text())
    config["hooks"] = [str(paths.PROJECT / h) for h in config["hooks"]]
    (tmp / "mkdocs.yml").write_text(yaml.safe_dump(config))
    return tmp / "mkdocs.yml"


def remote_assets(site: Path) -> list[str]:
    """Scripts, styles and fonts a page would fetch from the network (links to read elsewhere are fine)."""
    found = []
    for page in site.rglob("*.html"):
        for tag in re.findall(r"<(?:script|link|img|iframe)\b[^>]*>", page.read_text()):
            if re.search(r"""\b(?:src|href)=["']?(?:https?:)?//""", tag):
                found.append(f"{page.relative_to(site)}: {tag}")
    for css in site.rglob("*.css"):
        found += [
            f"{css.relative_to(site)}: {u}"
            for u in re.findall(r"url\((?:['\"])?(?:https?:)?//[^)]*\)", css.read_text())
        ]
    return found


def test_the_site_builds_strict_offline_with_the_generated_reference(tmp_path: Path) -> None:
    proc = build(paths.PROJECT / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for uri in docs.GENERATED:
        assert (tmp_path / "site" / uri.replace(".md", ".html")).is_file(), uri
    assert (tmp_path / "site/guide/fleet.html").is_file()  # use_directory_urls: false, readable from disk
    assert "badsum:tree" not in (tmp_path / "site/internals.html").read_text()  # the marker was expanded
    assert "01-baseline.md" in (tmp_path / "site/guide/workshop.html").read_text()
    assert remote_assets(tmp_path / "site") == []


def test_a_broken_link_fails_the_strict_build(tmp_path: Path) -> None:
    config = copy_of_the_docs(tmp_path)
    page = tmp_path / "docs/glossary.md"
    page.write_text(page.read_text() + "\nSee [the missing page](guide/no-such-page.md).\n")
    proc = build(config, tmp_path / "site")
    assert proc.returncode != 0 and "no-such-page.md" in proc.stderr


def test_a_page_that_loads_from_the_network_is_found(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text('<script src="https://cdn.example/x.js"></script><a href="https://x">ok</a>')
    assert len(remote_assets(tmp_path)) == 1


# ---- the generated reference against the code


def variable_rows(page: str) -> dict[str, tuple[str, str]]:
    """variable -> (default, choices) as the variables page's role tables state them."""
    rows = {}
    for m in re.finditer(r"^\| `(badsum_\w+)` \| (`(?:[^`]|\\`)*`|\(none\)[^|]*) \| [^|]* \| ([^|]*) \|", page, re.M):
        rows[m.group(1)] = (m.group(2).strip("`").replace("\\|", "|"), m.group(3).strip())
    return rows


def load(path: Path):
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def variable_mismatches(page: str, roles: Path) -> list[str]:
    """Every role variable of `roles` (read here, apart from badsum.specs) missing or stated otherwise."""
    rows = variable_rows(page)
    problems = []
    for role in sorted(roles.glob("badsum_*")):
        defaults = load(role / "defaults/main.yml") or {}
        argument_specs = (load(role / "meta/argument_specs.yml") or {}).get("argument_specs") or {}
        options = {k: v for entry in argument_specs.values() for k, v in (entry.get("options") or {}).items()}
        for var in {n for n in set(defaults) | set(options) if n.startswith("badsum_")}:  # __internal ones aside
            if var not in rows:
                problems.append(f"{var}: not on the page")
                continue
            default, choices = rows[var]
            if var in defaults and default != " ".join(docs.render(defaults[var]).split()):
                problems.append(f"{var}: page says {default!r}, {role.name}/defaults/main.yml {defaults[var]!r}")
            for choice in options.get(var, {}).get("choices") or ():
                if f"`{choice}`" not in choices:
                    problems.append(f"{var}: choice {choice!r} not on the page")
    return problems


def test_the_variables_page_states_every_default_and_choice_of_the_roles() -> None:
    assert len(variable_rows(PAGES["reference/variables.md"])) > 60
    assert variable_mismatches(PAGES["reference/variables.md"], paths.ROLES) == []
    for var in set(specs.INVENTORY) | set(specs.OUTPUTS):
        assert f"| `{var}` |" in PAGES["reference/variables.md"]


def test_each_variable_carries_its_comment_from_defaults_main_yml(tmp_path: Path) -> None:
    defaults = tmp_path / "main.yml"
    defaults.write_text("---\n# The first group:\n# two lines.\nbadsum_x_a: 1\nbadsum_x_b: [2]\n\nbadsum_x_c: 3\n")
    assert docs.comments(defaults) == {
        "badsum_x_a": "The first group: two lines.",
        "badsum_x_b": "The first group: two lines.",
        "badsum_x_c": "",
    }
    row = next(
        r for r in PAGES["reference/variables.md"].splitlines() if r.startswith("| `badsum_fleet_guard_interval` |")
    )
    assert "every guard_interval seconds" in row  # its comment in roles/badsum_fleet/defaults/main.yml
    assert "| float |" in row  # its type, from meta/argument_specs.yml


def test_a_default_changed_in_a_role_is_a_mismatch(tmp_path: Path) -> None:
    shutil.copytree(paths.ROLES, tmp_path / "roles")
    defaults = tmp_path / "roles/badsum_experiment/defaults/main.yml"
    defaults.write_text(defaults.read_text().replace("badsum_experiment_rate: 20", "badsum_experiment_rate: 25"))
    assert variable_mismatches(PAGES["reference/variables.md"], tmp_path / "roles") == [
        "badsum_experiment_rate: page says '20', badsum_experiment/defaults/main.yml 25"
    ]


def test_a_default_misstated_on_the_page_is_a_mismatch() -> None:
    page = PAGES["reference/variables.md"].replace(
        "| `badsum_fleet_guard_interval` | `60` |", "| `badsum_fleet_guard_interval` | `30` |"
    )
    assert variable_mismatches(page, paths.ROLES) == [
        "badsum_fleet_guard_interval: page says '30', badsum_fleet/defaults/main.yml 60"
    ]


def shown_commands() -> dict[str, argparse.ArgumentParser]:
    """The leaf commands `--help` lists, walked here from the parser (internal ones have no help entry)."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found[" ".join(path)] = parser
            return
        listed = {a.dest for a in subs[0]._choices_actions}
        for name, child in subs[0].choices.items():
            if name in listed:
                walk(child, (*path, name))

    walk(cli.build_parser(), ())
    return found


def cli_mismatches(page: str) -> list[str]:
    sections = dict(re.findall(r"^## badsum (.+?)\n(.*?)(?=^## |\Z)", page, re.M | re.S))
    problems = []
    for name, parser in shown_commands().items():
        if name not in sections:
            problems.append(f"badsum {name}: not on the page")
            continue
        for action in parser._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help") and f"`{flag}`" not in sections[name]:
                    problems.append(f"badsum {name} {flag}: not on the page")
        for code in parser.get_default("exits"):
            if f"\n| {int(code)} |" not in sections[name]:
                problems.append(f"badsum {name}: exit {int(code)} not on the page")
    problems += [
        f"badsum {name}: on the page, not a command --help shows" for name in set(sections) - set(shown_commands())
    ]
    return problems


def test_the_cli_page_has_every_command_option_and_exit_code_and_no_internal_command() -> None:
    assert len(shown_commands()) >= 20
    assert cli_mismatches(PAGES["reference/cli.md"]) == []
    for internal in ("run-info", "hostkit"):
        assert f"## badsum {internal}" not in PAGES["reference/cli.md"]


def test_an_option_missing_from_the_cli_page_is_a_mismatch() -> None:
    page = PAGES["reference/cli.md"].replace("| `--hosts` |", "| `--host-count` |", 1)
    assert cli_mismatches(page) == ["badsum lab up --hosts: not on the page"]
    page = PAGES["reference/cli.md"] + "\n## badsum hostkit\n\nbuild it\n"
    assert cli_mismatches(page) == ["badsum hostkit: on the page, not a command --help shows"]


def test_the_exit_code_and_topology_pages_follow_the_code() -> None:
    for code in Exit:
        assert f"| {int(code)} | {docs.cell(MEANING[code])} |" in PAGES["reference/exit-codes.md"]
    for name, topology in topologies.catalogue().items():
        assert f"| {topology.row} | `{name}` |" in PAGES["reference/topologies.md"]


# ---- the hand-written pages against the code


def unknown_names(text: str) -> list[str]:
    """badsum_* words that are no variable badsum knows (one ending in _ is a prefix: `badsum_fleet_risk_<class>`)."""
    allowed = specs.known() | set(specs.roles()) | set(stats.KEYS) | NOT_VARIABLES
    found = set()
    for word in re.findall(r"badsum_[a-z0-9_]+", text):
        if not (any(a.startswith(word) for a in allowed) if word.endswith("_") else word in allowed):
            found.add(word)
    return sorted(found)


STATED = (
    # `badsum_x` (default 16)  /  `badsum_x` (default `[1, 10]`)
    re.compile(r"`(badsum_\w+)`\s*\(default\s+(?:`([^`]+)`|([^`),;]+))"),
    # an options table row: | `badsum_x` | `20` | ...
    re.compile(r"^\|\s*`(badsum_\w+)`\s*\|\s*`([^`]*)`\s*\|()", re.M),
)


def stated_defaults(text: str) -> list[tuple[str, str]]:
    found = []
    for pattern in STATED:
        for m in pattern.finditer(text):
            try:
                docs.default(m.group(1))
            except KeyError:
                continue  # no default to compare with (an output, an inventory variable)
            found.append((m.group(1), (m.group(2) or m.group(3)).strip()))
    return found


def default_mismatches(text: str) -> list[str]:
    return [
        f"{var}: the page says {said!r}, its default is {docs.render(docs.default(var))!r}"
        for var, said in stated_defaults(text)
        if said != docs.render(docs.default(var))
    ]


# A path the pages name in backquotes, under one of the checkout's top directories (placeholders aside).
PATH = re.compile(
    r"`((?:badsum|tools|roles|tests|bench|playbooks|inventories|collections|presets|exercises|kernel|molecule)/[^`\s]*)"
)


# What `badsum lab up` writes into the checkout (gitignored): there only while a lab is up.
MADE_BY_A_LAB = ("inventories/lab-", "inventories/local/hosts.yml", "inventories/local/.ssh")


def missing_paths(text: str, root: Path = paths.PROJECT) -> list[str]:
    missing = []
    for path in PATH.findall(text):
        path = path.split(":")[0].rstrip(".,;)")
        if re.search(r"[<>*{}\[\]]|NN|\.\.\.|…", path):
            continue  # a pattern (roles/badsum_topology_<name>, exercises/NN-*.md), not a path
        if path.startswith(MADE_BY_A_LAB):
            continue
        if not (root / path).exists():
            missing.append(path)
    return missing


def unknown_kit_plugins(text: str) -> list[str]:
    return sorted({n for n in re.findall(r"badsum\.kit\.([a-z_]+)", text) if n not in docs.kit_plugins()})


def unknown_options(text: str) -> list[str]:
    """`badsum CMD ... --opt` in backquotes: --opt must be an option of CMD (the longest command named)."""
    commands = {name: parser for name, parser in shown_commands().items()}
    problems = []
    for snippet in re.findall(r"`badsum ([a-z][^`]*)`", text):
        words = snippet.split()
        name = next((" ".join(words[:n]) for n in (2, 1) if " ".join(words[:n]) in commands), None)
        if name is None:
            continue
        flags = {f for a in commands[name]._actions for f in a.option_strings}
        problems += [f"badsum {name} {w}" for w in re.findall(r"(?<![\w-])--[a-z][a-z-]*", snippet) if w not in flags]
    return problems


@pytest.mark.parametrize("page", HAND_WRITTEN, ids=lambda p: str(p.relative_to(paths.PROJECT)))
def test_a_hand_written_page_names_only_what_exists(page: Path) -> None:
    text = page.read_text()
    assert unknown_names(text) == []
    assert default_mismatches(text) == []
    assert missing_paths(text) == []
    assert unknown_kit_plugins(text) == []
    assert unknown_options(text) == []


def broken_links(readme: Path) -> list[str]:
    """README.md's links into the checkout (the docs pages, mostly): mkdocs checks the site's, not this one's."""
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", readme.read_text())
    return [link for link in links if not (paths.PROJECT / link).exists()]


def test_the_front_page_links_to_pages_that_exist(tmp_path: Path) -> None:
    readme = paths.PROJECT / "README.md"
    assert broken_links(readme) == []
    assert len(re.findall(r"\]\(docs/", readme.read_text())) >= 8
    planted = tmp_path / "README.md"
    planted.write_text(readme.read_text() + "\n[gone](docs/guide/gone.md)\n")
    assert broken_links(planted) == ["docs/guide/gone.md"]


def test_the_pages_state_defaults_the_checks_read() -> None:
    """The checks above compare something: the pages do state defaults, paths and options."""
    text = "\n".join(p.read_text() for p in HAND_WRITTEN)
    assert len(stated_defaults(text)) >= 10
    assert len(PATH.findall(text)) >= 50
    assert len(re.findall(r"`badsum [a-z][^`]*--", text)) >= 10


def test_a_planted_mismatch_in_a_page_copy_is_found(tmp_path: Path) -> None:
    page = tmp_path / "reproduce.md"
    text = (paths.PROJECT / "docs/guide/reproduce.md").read_text()
    assert "| `badsum_experiment_rate` | `20` |" in text
    page.write_text(
        text.replace("| `badsum_experiment_rate` | `20` |", "| `badsum_experiment_rate` | `10` |")
        + "\n`badsum_lab_hosts` (default 10), `badsum_experiment_ratee`, `badsum/host/topology/`,"
        " `badsum.kit.preflight`, `badsum lab status --hosts 3`\n"
    )
    planted = page.read_text()
    assert default_mismatches(planted) == [
        "badsum_lab_hosts: the page says '10', its default is '12'",
        "badsum_experiment_rate: the page says '10', its default is '20'",
    ]
    assert unknown_names(planted) == ["badsum_experiment_ratee"]
    assert missing_paths(planted) == ["badsum/host/topology/"]
    assert unknown_kit_plugins(planted) == ["preflight"]
    assert unknown_kit_plugins("`badsum.kit.kernel_has_fix` (a filter), `badsum.kit.run` (a module)") == []
    assert unknown_options(planted) == ["badsum lab status --hosts"]


def test_a_stated_default_is_compared_with_the_role_or_the_provider() -> None:
    assert default_mismatches("`badsum_lab_hosts` (default 12)") == []
    assert default_mismatches("`badsum_fleet_plan` (default 3)") == []  # an output: nothing to compare
    assert default_mismatches("`badsum_fleet_guard_interval` (default 30)") == [
        "badsum_fleet_guard_interval: the page says '30', its default is '60'"
    ]
    assert default_mismatches("`badsum_fleet_guard_interval` (default 60)") == []
