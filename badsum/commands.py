"""Sub-commands over runs and their files: record, judge again, summarize, report, reproduce."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from badsum import hostkit
from badsum.analysis import results, summary


def resolve_run(run: str | None, results_dir: Path) -> Path:
    """A run given as a path, a run id under results/, or the latest run."""
    if run and Path(run).is_dir():
        return Path(run).resolve()
    path = results_dir / (run or "latest")
    if not path.is_dir():
        raise FileNotFoundError(
            f"no run {run or 'latest'} under {results_dir}: run `ansible-playbook reproduce.yml` first"
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


def cmd_analyze(args: argparse.Namespace) -> int:
    raw = Path(args.raw)
    result = results.build_cell_result(raw)
    path = results.write_result(result, Path(args.run_dir) if args.run_dir else raw.parent.parent)
    print(json.dumps({"result": str(path), "verdict": result["verdict"], "reason": result["verdict_reason"]}))
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    run_dir = resolve_run(args.run, Path(args.results))
    cells, _ = results.load_run(run_dir)
    problems = run_problems(run_dir)
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
                {"run": run_dir.name, "cells": [{k: c.get(k) for k in keys} for c in cells], "problems": problems},
                indent=1,
            )
        )
    else:
        print(f"run {run_dir.name}")
        print(summary.table(cells, results.planned_cells(run_dir)))
        for line in summary.reasons(cells):
            print(f"  {line}")
        for p in problems:
            print(f"  PROBLEM: {p}", file=sys.stderr)
    return 1 if problems else 0


def controller_command_line() -> list[str]:
    """The ansible-playbook (or badsum) command that started this run: the nearest such ancestor."""
    pid = os.getppid()
    while pid > 1:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        words = [w.decode(errors="replace") for w in argv if w]
        if any(Path(w).name in ("ansible-playbook", "badsum") for w in words[:2]):
            return words
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return []


def host_record(facts: dict | None, groups: list[str]) -> dict:
    facts = facts or {}
    state = facts.get("state") or {}
    versions = facts.get("versions", {})
    return {
        "groups": groups,
        "kernel": facts.get("kernel", "unknown"),
        "distribution": facts.get("distribution", "unknown"),
        "versions": [f"{k}: {v}" for k, v in versions.items()],
        "service_manager": facts.get("service_manager"),
        "state_before": state,
    }


def cmd_run_info(args: argparse.Namespace) -> int:
    info = json.loads(sys.stdin.read())
    names = info.pop("host_names", [])
    records = zip(info.pop("host_facts", []), info.pop("host_groups", []), strict=True)
    info["hosts"] = {name: host_record(*rec) for name, rec in zip(names, records, strict=True)}
    info["command_line"] = controller_command_line()
    info["started"] = time.time()
    run_dir = Path(args.run_dir)
    results.atomic_write(run_dir / "run.json", json.dumps(info, indent=1))
    (run_dir / "raw").mkdir(exist_ok=True)
    results.point_latest(run_dir)
    print(json.dumps({"run_info": str(run_dir / "run.json")}))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from badsum import report  # matplotlib is slow to import: only here

    run_dir = resolve_run(args.run, Path(args.results))
    compare = resolve_run(args.compare, Path(args.results)) if args.compare else None
    built = report.build(run_dir, compare)
    if args.table:
        cells, _ = results.load_run(run_dir)
        print(summary.table(cells, results.planned_cells(run_dir)))
    print(f"report: {built['html']}")
    print(f"        {built['md']}")
    problems = run_problems(run_dir)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from badsum import runner  # ansible-runner: only here

    project = Path(args.project).resolve()
    if not (project / "reproduce.yml").exists():
        raise FileNotFoundError(f"{project} has no reproduce.yml: run from the badsum checkout or pass --project")
    if args.kernels == "real":
        # The same table on real kernels: `badsum reproduce-real` with its own defaults, compared with the
        # latest emulated run when there is one.
        from badsum.cli import build_parser

        if args.inventory or args.json:
            raise ValueError("--kernels real brings up VM labs of its own: no --inventory or --json with it")
        results = project / "results"
        argv = ["reproduce-real", "--results-dir", str(results), *(f"--extra-vars={e}" for e in args.extra)]
        if not (results / "latest" / "run.json").exists():
            argv.append("--no-compare")
        real = build_parser().parse_args(argv)
        return real.func(real)
    extravars = runner.parse_extravars(args.extra)
    inventory = Path(args.inventory) if args.inventory else project / "inventories" / "local"
    return runner.run(project, inventory, extravars, args.json)


def cmd_hostkit(args: argparse.Namespace) -> int:
    changed = hostkit.write(Path(args.out))
    print(json.dumps({"path": args.out, "changed": changed}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reproduce", help="run reproduce.yml with live progress; exit 0 if the incident's table came out"
    )
    p.add_argument(
        "-e",
        "--extra-vars",
        dest="extra",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="passed to the playbook (repeatable; a JSON object or @FILE works too)",
    )
    p.add_argument("-i", "--inventory", help="inventory (default inventories/local: the embedded lab)")
    p.add_argument("--project", default=".", help="the badsum checkout (default .)")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary instead of the table")
    p.add_argument(
        "--kernels",
        choices=["emulated", "real"],
        default="emulated",
        help="emulated (default): the embedded lab, the bug emulated on this kernel; "
        "real: `badsum reproduce-real` (VM labs booting kernels without and with the fix)",
    )
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("report", help="write report.html and report.md of a run from its result files")
    p.add_argument("run", nargs="?", help="run id or directory (default: latest)")
    p.add_argument("--compare", metavar="OTHER", help="another run to compare with")
    p.add_argument("--results", default="results", help="results directory (default ./results)")
    p.add_argument("--table", action="store_true", help="print the outcome table too")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("summary", help="print the outcome table of a run; exit 1 when a cell errored or is missing")
    p.add_argument("run", nargs="?", help="run id or directory (default: latest)")
    p.add_argument("--results", default="results", help="results directory (default ./results)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("analyze", help="judge one cell again from its raw directory")
    p.add_argument("raw", help="the cell's raw directory (results/<run>/raw/<cell>)")
    p.add_argument("--run-dir", help="where the result goes (default: the run the raw directory is in)")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("run-info", help="record a run (JSON on stdin) as <run>/run.json; used by experiment.yml")
    p.add_argument("run_dir")
    p.set_defaults(func=cmd_run_info)

    p = sub.add_parser("hostkit", help="build the host kit (badsum-host.pyz) into a file")
    p.add_argument("out", help="where to write badsum-host.pyz")
    p.set_defaults(func=cmd_hostkit)
