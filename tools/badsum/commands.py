"""Sub-commands over result files: analyze a cell, record a failed cell, print the table."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from badsum import hostkit, results, summary


def resolve_run(run: str | None, results_dir: Path) -> Path:
    """A run given as a path, a run id under results/, or the latest run."""
    if run and Path(run).is_dir():
        return Path(run)
    path = results_dir / (run or "latest")
    if not path.is_dir():
        raise FileNotFoundError(
            f"no run {run or 'latest'} under {results_dir}: run `ansible-playbook reproduce.yml` first"
        )
    return path.resolve()


# What Ansible gathers for a cell arrives as one JSON document on stdin; each
# part is kept as its own file in the raw directory, next to sent.bin and
# recv.bin, so a cell can be judged again from its files alone.
RAW_PARTS = (
    "meta", "client", "recv", "corruption", "counters_before", "counters_after", "topology",
    "condition", "capture",
)  # fmt: skip


def store_measurements(raw: Path, measurements: dict) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    for part in RAW_PARTS:
        if measurements.get(part) is not None:
            (raw / f"{part}.json").write_text(json.dumps(measurements[part], indent=1))


def cmd_analyze(args: argparse.Namespace) -> int:
    raw = Path(args.raw)
    if args.measurements:
        text = sys.stdin.read() if args.measurements == "-" else Path(args.measurements).read_text()
        store_measurements(raw, json.loads(text))
    result = results.build_cell_result(raw, args.min_corrupted)
    path = results.write_result(result, Path(args.run_dir))
    print(
        json.dumps(
            {
                "result": str(path),
                "verdict": result["verdict"],
                "reason": result["verdict_reason"],
                "corrupted_packets": result["corrupted_packets"],
                "messages": result["messages"],
            }
        )
    )
    return 0


def cmd_error_cell(args: argparse.Namespace) -> int:
    meta = json.loads(args.meta_json)
    path = results.write_result(results.error_result(meta, args.reason), Path(args.run_dir))
    print(json.dumps({"result": str(path), "verdict": "error"}))
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    run_dir = resolve_run(args.run, Path(args.results))
    cells, problems = results.load_run(run_dir)
    if args.json:
        print(
            json.dumps(
                {
                    "run": run_dir.name,
                    "cells": [
                        {
                            k: c.get(k)
                            for k in (
                                "topology",
                                "condition",
                                "condition_kind",
                                "verdict",
                                "verdict_reason",
                                "corrupted_packets",
                                "csum_errors_total",
                                "messages",
                            )
                        }
                        for c in cells
                    ],
                    "problems": problems,
                },
                indent=1,
            )
        )
    else:
        print(f"run {run_dir.name}")
        print(summary.table(cells))
        for c in cells:
            print(f"  {c['topology']}/{c['condition']}: {c['verdict']} - {c['verdict_reason']}")
        for p in problems:
            print(f"  unusable result file: {p}")
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


def cmd_reproduce(args: argparse.Namespace) -> int:
    from badsum import runner

    project = Path(args.project).resolve()
    if not (project / "reproduce.yml").exists():
        raise FileNotFoundError(
            f"{project} has no reproduce.yml: run from the badsum checkout or pass --project"
        )
    extravars = runner.parse_extravars(args.extra)
    inventory = Path(args.inventory) if args.inventory else project / "inventories" / "local"
    return runner.run(project, inventory, extravars, args.json)


def cmd_report(args: argparse.Namespace) -> int:
    from badsum import report  # matplotlib is slow to import: only here

    run_dir = resolve_run(args.run, Path(args.results))
    compare = resolve_run(args.compare, Path(args.results)) if args.compare else None
    built = report.build(run_dir, compare)
    print(f"report: {built['html']}")
    print(f"        {built['md']}")
    for problem in built["problems"]:
        print(f"unusable result file: {problem}", file=sys.stderr)
    return 1 if built["problems"] else 0


def cmd_run_info(args: argparse.Namespace) -> int:
    info = json.loads(sys.stdin.read())
    info["hosts"] = dict(zip(info.pop("host_names", []), info.pop("host_info", []), strict=True))
    info["command_line"] = controller_command_line()
    info["started"] = time.time()
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(json.dumps(info, indent=1))
    print(json.dumps({"run_info": str(run_dir / "run.json")}))
    return 0


def cmd_hostkit(args: argparse.Namespace) -> int:
    changed = hostkit.write(Path(args.out))
    print(json.dumps({"path": args.out, "changed": changed}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reproduce", help="run reproduce.yml with live progress; exit 0 if the incident's table came out"
    )
    p.add_argument("-e", "--extra-vars", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                   help="passed to the playbook (repeatable; a JSON object works too)")  # fmt: skip
    p.add_argument("-i", "--inventory", help="inventory (default inventories/local: the embedded lab)")
    p.add_argument("--project", default=".", help="the badsum checkout (default .)")
    p.add_argument(
        "--json", action="store_true", help="print a machine-readable summary instead of the table"
    )
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("report", help="write report.html and report.md of a run from its result files")
    p.add_argument("run", nargs="?", help="run id or directory (default: latest)")
    p.add_argument("--compare", metavar="OTHER", help="another run to compare with")
    p.add_argument("--results", default="results", help="results directory (default ./results)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("run-info", help="record a run's environment (JSON on stdin) as <run>/run.json")
    p.add_argument("run_dir")
    p.set_defaults(func=cmd_run_info)

    p = sub.add_parser("hostkit", help="build the host kit (the scripts Ansible copies to each host)")
    p.add_argument("out", help="where to write badsum-host.pyz")
    p.set_defaults(func=cmd_hostkit)

    p = sub.add_parser("analyze", help="judge one cell from its raw measurements and write its result JSON")
    p.add_argument("raw", help="the cell's raw directory (results/<run>/raw/<cell>)")
    p.add_argument("--run-dir", required=True, help="where the cell's result JSON goes")
    p.add_argument("--measurements", help="JSON file (or - for stdin): the cell's measurements, stored first")
    p.add_argument(
        "--min-corrupted",
        type=int,
        default=3,
        help="fewer packets corrupted on the wire than this makes a clean cell inconclusive",
    )
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("error-cell", help="record a cell whose set-up or run failed")
    p.add_argument("--meta-json", required=True, help="the cell's description, as JSON")
    p.add_argument("--reason", required=True)
    p.add_argument("--run-dir", required=True)
    p.set_defaults(func=cmd_error_cell)

    p = sub.add_parser("summary", help="print the outcome table of a run")
    p.add_argument("run", nargs="?", help="run id or directory (default: latest)")
    p.add_argument("--results", default="results", help="results directory (default ./results)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_summary)
