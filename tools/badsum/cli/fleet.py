"""`badsum fleet audit|remediate|rollback`: the fleet playbooks with live progress, then the fleet table."""

from __future__ import annotations

import argparse

from badsum import paths
from badsum.cli.common import add_extra_vars, add_inventory, command, directory, extra_vars_with_results, group
from badsum.exitcodes import Exit, UsageError

EXITS = {
    Exit.OK: "every host is fine",
    Exit.FINDING: "audit: exposed hosts were found",
    Exit.FAILURE: "a host failed, was not reached or stays exposed, or the playbook failed",
    Exit.USAGE: "a bad option, or settings or an inventory the plan refused before any host was touched",
}
HELP = {
    "audit": "read-only: each host's exposure (kernel, runtimes, veths, offload), nothing changed",
    "remediate": "the workaround, canary first then in batches that stop on failure; --check shows the diff",
    "rollback": "undo a remediation exactly, from the records it left on each host; --check shows the diff",
}


def cmd_fleet(args: argparse.Namespace) -> Exit:
    from badsum.fleet import runner  # ansible-runner and rich: only for this command

    phase = args.fleet_action
    if args.limit and not runner.LIMIT_RE.match(args.limit):
        raise UsageError(f"--limit {args.limit!r}: not a host pattern (names, groups, ',', ':', '!', '&', '*')")
    extra = extra_vars_with_results(args, "badsum_fleet_results_dir")
    options = ["--check", "--diff"] if getattr(args, "check", False) else []
    if args.limit:
        options += ["--limit", runner.with_controller(args.limit)]
    return runner.run(phase, args.inventory, extra, options, args.json)


def register(sub: argparse._SubParsersAction) -> None:
    from badsum.fleet import PHASES

    fleet = group(sub, "fleet", help="audit, remediate or roll back the hosts of group fleet")
    for phase in PHASES:
        # Only the audit reports exposed hosts as a finding: after a rollout, one still exposed is a failure.
        exits = EXITS if phase == "audit" else {k: v for k, v in EXITS.items() if k != Exit.FINDING}
        p = command(fleet, phase, cmd_fleet, help=HELP[phase], exits=exits, reports=True)
        add_inventory(p, "the inventory to read, with a group fleet (default inventories/local)")
        p.add_argument("-l", "--limit", help="only these hosts (an Ansible host pattern)")
        if phase != "audit":  # the audit only reads: it has no check mode
            p.add_argument("--check", action="store_true", help="show what would change (a diff); change nothing")
        add_extra_vars(p, "badsum_fleet_* settings")
        p.add_argument(
            "--results",
            type=directory,
            metavar="DIR",
            help=f"where the run goes (default {paths.FLEET_RESULTS}; the same as -e badsum_fleet_results_dir=DIR)",
        )
