"""`badsum fleet audit|remediate|rollback`: the fleet subcommands of the `badsum` command."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from badsum.fleet import PHASES
from badsum.runner import parse_extravars

LIMIT_RE = re.compile(r"^[A-Za-z0-9_.:,!&*\[\]~-]+$")


def with_controller(limit: str) -> str:
    """The limit, and localhost: the plan and the report run there, and without the plan no host is touched.

    Ansible splits a pattern on its commas when it has any, else on its colons: join the same way.
    """
    return f"localhost{',' if ',' in limit else ':'}{limit}"


def cmd_fleet(args: argparse.Namespace) -> int:
    from badsum.fleet import runner  # ansible-runner and rich: only for this command

    project = Path(args.project).resolve()
    if not (project / "playbooks" / "audit.yml").exists():
        raise ValueError(f"--project {args.project}: not a badsum checkout (no playbooks/audit.yml)")
    inventory = Path(args.inventory or project / "inventories" / "local").resolve()
    if not inventory.exists():
        raise ValueError(f"--inventory {inventory}: no such file or directory")
    if args.limit and not LIMIT_RE.match(args.limit):
        raise ValueError(f"--limit {args.limit!r}: not a host pattern (names, groups, ',', ':', '!', '&', '*')")
    cmdline = []
    if args.check:
        if args.phase == "audit":
            raise ValueError("--check: the audit only reads; it has no check mode")
        cmdline += ["--check", "--diff"]
    if args.limit:
        cmdline += ["--limit", with_controller(args.limit)]
    return runner.run(args.phase, project, inventory, parse_extravars(args.extra), cmdline, args.json)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fleet",
        help="audit, remediate or roll back the hosts of group fleet (playbooks/audit.yml, remediate.yml...)",
        description="Exit status: 0 every host fine; 1 the audit found exposed hosts; "
        "2 a host failed, was not reached or stays exposed, or the playbook failed.",
    )
    p.add_argument("phase", choices=PHASES)
    p.add_argument("-i", "--inventory", help="inventory with a group fleet (default inventories/local)")
    p.add_argument("-l", "--limit", help="only these hosts (an Ansible host pattern)")
    p.add_argument("--check", action="store_true", help="remediate/rollback: show what would change (a diff)")
    p.add_argument(
        "-e",
        "--extra-vars",
        dest="extra",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="badsum_fleet_* settings (repeatable; a JSON object or @FILE works too)",
    )
    p.add_argument("--project", default=".", help="the badsum checkout (default .)")
    p.add_argument("--json", action="store_true", help="print the fleet summary as JSON")
    p.set_defaults(func=cmd_fleet)
