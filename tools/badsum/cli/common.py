"""What every `badsum` command shares: the parser class, how a command is declared, the common options.

A command is declared with `command()`: its help, the exit statuses it uses
(from badsum.exitcodes, shown in its --help), whether it reports (then it has
--json), whether it is internal (then it is left out of the help). The
options that mean the same everywhere are added by one function each: `-i`
reads an inventory, `-e` is ansible-playbook's, `--results DIR` is where runs
are, `--json` is machine-readable output on stdout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from badsum import ansible, paths
from badsum.exitcodes import MEANING, Exit, UsageError

Handler = Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on the table's code (64), not its own 2 (which means a failure here)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(Exit.USAGE, f"{self.prog}: error: {message}\n")


def exit_table(exits: dict[Exit, str]) -> str:
    rows = {**exits, Exit.USAGE: exits.get(Exit.USAGE, MEANING[Exit.USAGE])}
    return "exit status:\n" + "\n".join(f"  {int(code):<3} {text}" for code, text in sorted(rows.items()))


def command(
    sub: argparse._SubParsersAction,
    name: str,
    handler: Handler,
    *,
    help: str,
    exits: dict[Exit, str],
    reports: bool = False,
    internal: bool = False,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """A leaf command. Internal ones (only playbooks or badsum itself call them) work but are not listed."""
    shown = {} if internal else {"help": help}
    parser = sub.add_parser(name, description=description or help, epilog=exit_table(exits), **shown)
    parser.set_defaults(func=handler, exits={**exits, Exit.USAGE: MEANING[Exit.USAGE]}, reports=reports)
    if reports:
        add_json(parser)
    return parser


def group(sub: argparse._SubParsersAction, name: str, *, help: str) -> argparse._SubParsersAction:
    """A command of commands (`badsum lab up|down|status`): each action its own options."""
    parser = sub.add_parser(name, help=help, description=help)
    return parser.add_subparsers(dest=f"{name}_action", metavar="ACTION", required=True)


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout (JSON)")


def inventory(text: str) -> Path:
    """An inventory to read, as ansible-playbook's -i: a file or a directory that exists."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text!r}: no such inventory (a file or a directory to read)")
    return path.resolve()


def add_inventory(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("-i", "--inventory", type=inventory, default=paths.LOCAL_INVENTORY, help=help)


def add_extra_vars(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument(
        "-e",
        "--extra-vars",
        dest="extra_vars",
        action="append",
        default=[],
        metavar="VARS",
        help=f"{help}; as ansible-playbook -e: KEY=VALUE ... (quoted as in a shell), JSON or YAML, or @FILE; "
        "repeatable, the last one wins",
    )


def directory(text: str) -> Path:
    return Path(text).resolve()


def add_results(parser: argparse.ArgumentParser, default: Path, what: str) -> None:
    parser.add_argument("--results", type=directory, default=default, metavar="DIR", help=f"{what} (default {default})")


def whole_number(low: int, high: int | None = None, what: str = "") -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high], the message saying what is allowed."""

    def parse(text: str) -> int:
        allowed = f"a whole number from {low} to {high}" if high is not None else f"a whole number, at least {low}"
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; allowed: {allowed}{what}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text!r}: allowed: {allowed}{what}")
        return value

    return parse


def extra_vars_with_results(args: argparse.Namespace, variable: str) -> dict:
    """The -e values, with --results as the playbook's own results variable (both given: they must agree)."""
    extra = ansible.parse_extra_vars(args.extra_vars)
    given = extra.get(variable)
    if args.results is not None:
        if given is not None and Path(str(given)).resolve() != args.results:
            raise UsageError(f"--results {args.results} and -e {variable}={given}: two places; give one")
        extra[variable] = str(args.results)
    return extra
