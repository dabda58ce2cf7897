"""The `badsum` command: the parser, assembled here from one module per command group.

    lab        badsum.cli.lab        up, down, status (both providers, through badsum.lab.interface)
    reproduce  badsum.cli.reproduce  reproduce, reproduce-real
    runs       badsum.cli.runs       summary, report, analyze
    fleet      badsum.cli.fleet      audit, remediate, rollback
    workshop   badsum.cli.workshop   up, down, reset, status, serve, check, publish, handout
    kernel     badsum.cli.kernel     build, status
    internal   badsum.cli.internal   run-info, hostkit (left out of the help: only the kit calls them)

Nothing below this package imports it. Every command exits with a code from
one table (badsum.exitcodes), shown below and in each command's --help.
"""

from __future__ import annotations

import argparse
import os
import sys

from badsum.cli import common, fleet, internal, kernel, lab, reproduce, runs, workshop
from badsum.exitcodes import MEANING, Exit, UsageError
from badsum.lab.spec import LabError
from badsum.lab.sysrun import CommandError

GROUPS = (lab, reproduce, runs, fleet, workshop, kernel, internal)
DESCRIPTION = "badsum: reproduce, prove and remediate the Linux veth checksum bug."


class Version(argparse.Action):
    """--version: the package's version and, from a checkout, its commit (git describe: only when asked)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from badsum.version import version

        print(f"badsum {version()}")
        parser.exit(Exit.OK)


def build_parser() -> argparse.ArgumentParser:
    parser = common.Parser(
        prog="badsum",
        description=DESCRIPTION,
        epilog=common.exit_table(MEANING) + "\n\n`badsum COMMAND --help` says what each command's codes mean there.",
    )
    parser.add_argument("--version", action=Version, help="the badsum version (and its commit, from a checkout)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in GROUPS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"badsum: error: {exc}", file=sys.stderr)
        return Exit.USAGE
    except (LabError, CommandError, PermissionError, FileNotFoundError, ValueError) as exc:
        print(f"badsum: error: {exc}", file=sys.stderr)
        return Exit.FAILURE
    except BrokenPipeError:  # `badsum lab status | head`: the reader had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return Exit.OK
