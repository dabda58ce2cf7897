"""`badsum summary|report|analyze`: a run's table, its report, one cell judged again - from its files alone."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from badsum import paths
from badsum.analysis import incident, results, summary
from badsum.cli.common import add_results, command
from badsum.exitcodes import Exit, UsageError
from badsum.version import version

TABLE_EXITS = {
    Exit.OK: "every planned cell was judged, and the table is the incident's",
    Exit.FINDING: "every planned cell was judged, and the table differs from the incident's",
    Exit.FAILURE: "the run failed: a cell in error or inconclusive, a planned cell with no result, an unusable file",
    Exit.USAGE: "no such run (or another bad option); nothing was written",
}


def resolve_run(run: str | None, results_dir: Path, option: str = "RUN") -> Path:
    """A run given as a path, a run id under the results directory, or the latest run."""
    if run and Path(run).is_dir():
        return Path(run).resolve()
    path = results_dir / (run or "latest")
    if not path.is_dir():
        raise UsageError(
            f"{option} {run or 'latest'}: no such run under {results_dir} (runs there: "
            f"{', '.join(sorted(p.name for p in results_dir.iterdir() if p.is_dir())[-5:]) or 'none'}; "
            "`ansible-playbook reproduce.yml` makes one)"
            if results_dir.is_dir()
            else f"{option} {run or 'latest'}: no run under {results_dir}: run `ansible-playbook reproduce.yml` first"
        )
    return path.resolve()


def run_problems(run_dir: Path) -> list[str]:
    """Why a run is not a success: cells in error or inconclusive, cells planned but never judged, unusable files."""
    cells, problems = results.load_run(run_dir)
    found = {(c["topology"], c["condition"]) for c in cells}
    missing = [
        f"{t}/{c}: planned, but no result (the run stopped before it)"
        for t, c in results.planned_cells(run_dir)
        if (t, c) not in found
    ]
    # An inconclusive cell answers nothing: its reason names the missing measurement and what to change.
    undecided = [
        f"{c['topology']}/{c['condition']}: {c['verdict']} - {c.get('verdict_reason', '')}"
        for c in cells
        if c["verdict"] in ("error", "inconclusive")
    ]
    return undecided + missing + [f"unusable result file: {p}" for p in problems]


def outcome(run_dir: Path) -> tuple[Exit, list[dict], list[str], list[str]]:
    """The run's exit status (TABLE_EXITS), its cells, its problems, the cells off the incident's table."""
    cells, _ = results.load_run(run_dir)
    problems = run_problems(run_dir)
    differs = incident.mismatches([c for c in cells if c["verdict"] not in ("error", "inconclusive")])
    status = Exit.FAILURE if problems else Exit.FINDING if differs else Exit.OK
    return status, cells, problems, differs


def cmd_summary(args: argparse.Namespace) -> Exit:
    run_dir = resolve_run(args.run, args.results)
    status, cells, problems, differs = outcome(run_dir)
    if args.json:
        keys = (
            "topology",
            "condition",
            "condition_kind",
            "verdict",
            "verdict_reason",
            "corrupted_packets",
            "csum_errors_total",
            "messages",
        )
        print(
            json.dumps(
                {
                    "run": run_dir.name,
                    "run_dir": str(run_dir),
                    "cells": [{k: c.get(k) for k in keys} for c in cells],
                    "problems": problems,
                    "mismatches": differs,
                    "exit_status": int(status),
                    "badsum_version": version(),
                },
                indent=1,
            )
        )
        return status
    print(f"run {run_dir.name}")
    print(summary.table(cells, results.planned_cells(run_dir)))
    for line in summary.reasons(cells):
        print(f"  {line}")
    for line in differs:
        print(f"  DIFFERS from the incident: {line}")
    for p in problems:
        print(f"  PROBLEM: {p}", file=sys.stderr)
    return status


def cmd_report(args: argparse.Namespace) -> Exit:
    from badsum import report  # matplotlib is slow to import: only here

    run_dir = resolve_run(args.run, args.results)
    compare = resolve_run(args.compare, args.results, "--compare") if args.compare else None
    built = report.build(run_dir, compare)
    status, cells, problems, differs = outcome(run_dir)
    if args.json:
        said = {"run_dir": str(run_dir), "html": str(built["html"]), "md": str(built["md"])}
        said |= {"problems": problems, "mismatches": differs, "exit_status": int(status)}
        print(json.dumps({**said, "badsum_version": version()}, indent=1))
        return status
    if args.table:
        print(summary.table(cells, results.planned_cells(run_dir)))
    print(f"report: {built['html']}")
    print(f"        {built['md']}")
    for problem in problems:
        print(problem, file=sys.stderr)
    return status


def cmd_analyze(args: argparse.Namespace) -> Exit:
    raw = args.raw.resolve()
    if not (raw / "cell.json").is_file():
        raise UsageError(f"RAW {args.raw}: {raw / 'cell.json'}: missing (want a cell's raw directory, RUN/raw/CELL)")
    run_dir = raw.parent.parent
    result = results.build_cell_result(raw)
    target = run_dir / f"{result['topology']}-{result['condition']}.json"
    before = json.loads(target.read_text()).get("verdict") if target.is_file() else None
    path = results.write_result(result, run_dir)
    said = {"result": str(path), "verdict": result["verdict"], "reason": result["verdict_reason"], "was": before}
    if args.json:
        print(json.dumps(said))
    else:
        print(f"{path}: {result['verdict']} - {result['verdict_reason']}")
        print(f"  (rewritten; it said {before})" if before else "  (written)")
    return Exit.OK


def register(sub: argparse._SubParsersAction) -> None:
    p = command(
        sub,
        "summary",
        cmd_summary,
        help="print the outcome table of a run",
        exits=TABLE_EXITS,
        reports=True,
    )
    p.add_argument("run", nargs="?", metavar="RUN", help="run id or directory (default: the latest run)")
    add_results(p, paths.RESULTS, "where the runs are")

    p = command(
        sub,
        "report",
        cmd_report,
        help="write report.html and report.md of a run from its result files",
        exits=TABLE_EXITS,
        reports=True,
    )
    p.add_argument("run", nargs="?", metavar="RUN", help="run id or directory (default: the latest run)")
    p.add_argument("--compare", metavar="OTHER", help="another run to compare with, cell by cell (id or directory)")
    add_results(p, paths.RESULTS, "where the runs are")
    p.add_argument("--table", action="store_true", help="print the outcome table too")

    p = command(
        sub,
        "analyze",
        cmd_analyze,
        help="judge one cell again from its raw directory; rewrites that cell's result file in its run",
        exits={Exit.OK: "judged, and the run's result file for the cell rewritten"},
        reports=True,
    )
    p.add_argument("raw", type=Path, metavar="RAW", help="the cell's raw directory (results/<run>/raw/<cell>)")
