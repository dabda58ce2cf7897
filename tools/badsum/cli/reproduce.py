"""`badsum reproduce` (reproduce.yml with live progress) and `badsum reproduce-real` (the table on real kernels)."""

from __future__ import annotations

import argparse
from pathlib import Path

from badsum import ansible, paths
from badsum.cli.common import add_extra_vars, add_inventory, add_results, command, directory, extra_vars_with_results
from badsum.exitcodes import Exit, UsageError
from badsum.lab.sysrun import require_root
from badsum.vm import kernel, real

TABLE_EXITS = {
    Exit.OK: "the incident's table came out",
    Exit.FINDING: "every cell was judged, and the table differs from the incident's",
    Exit.FAILURE: "the run failed: the playbook, a cell (in error or inconclusive), or no cell at all",
    Exit.USAGE: "a bad option, or a setting or an inventory that the playbook's checks refused before anything changed",
}


def cmd_reproduce(args: argparse.Namespace) -> Exit:
    if args.kernels == "real":
        if args.inventory != paths.LOCAL_INVENTORY:
            raise UsageError("-i: --kernels real brings up VM labs of its own and writes their inventories")
        results = args.results or paths.RESULTS
        compare = results / "latest" if (results / "latest" / "run.json").exists() else None
        return _real(args, results, compare, list(real.TOPOLOGIES), None)
    from badsum import runner  # ansible-runner and rich: only here

    extra = extra_vars_with_results(args, "badsum_experiment_results_dir")
    return runner.run(args.inventory, extra, args.json)


def _real(args: argparse.Namespace, results: Path, compare: Path | None, topologies, backend) -> Exit:
    extra = ansible.parse_extra_vars(args.extra_vars)  # refused before anything starts
    require_root("`badsum reproduce-real`")
    for variant in kernel.VARIANTS:
        if kernel.record(variant) is None:
            raise UsageError(f"the {variant} kernel is not built: `make kernels` first (13-19 min once on 2 cores)")
    return real.reproduce_real(results, topologies, backend, compare, extra, args.json)


def cmd_reproduce_real(args: argparse.Namespace) -> Exit:
    compare = None
    if not args.no_compare:
        compare = Path(args.compare) if "/" in args.compare else args.results / args.compare
        if not (compare / "run.json").exists():
            raise UsageError(f"--compare {args.compare}: no run at {compare} (run reproduce.yml, or --no-compare)")
        compare = compare.resolve()
    return _real(args, args.results, compare, args.topologies, args.backend)


def register(sub: argparse._SubParsersAction) -> None:
    p = command(
        sub,
        "reproduce",
        cmd_reproduce,
        help="run reproduce.yml with live progress, then print the outcome table",
        exits=TABLE_EXITS,
        reports=True,
    )
    add_inventory(p, "the inventory to read (default inventories/local: the embedded lab)")
    add_extra_vars(p, "settings for the playbook (badsum_experiment_*, badsum_lab_*...)")
    p.add_argument(
        "--results",
        type=directory,
        metavar="DIR",
        help=f"where the run goes (default {paths.RESULTS}; the same as -e badsum_experiment_results_dir=DIR)",
    )
    p.add_argument(
        "--kernels",
        choices=["emulated", "real"],
        default="emulated",
        help="emulated (default): the embedded lab, the bug emulated on this kernel; "
        "real: as `badsum reproduce-real` with its defaults (VM labs booting kernels without and with the fix)",
    )

    r = command(
        sub,
        "reproduce-real",
        cmd_reproduce_real,
        help="both incidents' table (6 rows x 3) on real kernels (two VM labs), beside an emulated run",
        exits={
            Exit.OK: "every cell measured on a real kernel, and the table is the incident's",
            Exit.FINDING: "every cell measured for real, and a cell differs from the incident's table",
            Exit.FAILURE: "a cell is missing or was not measured on a real kernel (a lab or a run failed)",
            Exit.USAGE: "a bad option, a kernel not built, or no run to compare with; nothing was started",
        },
        reports=True,
    )
    against = r.add_mutually_exclusive_group()
    against.add_argument(
        "--compare",
        default="latest",
        metavar="RUN",
        help="the emulated run to compare with, cell by cell (default: the latest run; a path or an id)",
    )
    against.add_argument("--no-compare", action="store_true", help="no comparison")
    r.add_argument(
        "--topologies", nargs="+", default=real.TOPOLOGIES, choices=real.TOPOLOGIES, help="which (default all)"
    )
    r.add_argument("--backend", choices=["ebpf", "netem"], help="the injector (default: the experiment's, ebpf)")
    add_extra_vars(r, "settings for both runs of reproduce.yml")
    add_results(r, paths.RESULTS, "where the run goes, and where --compare RUN is looked for")
