"""`badsum reproduce`: reproduce.yml through ansible-runner, with live progress.

Shows cells judged / cells planned (counted from the run's own files: its
record and its result files), the current step and the elapsed time while
the playbook runs, then the outcome table. The exit status (badsum.exitcodes)
says whether the observed table matched the incident's (0), did not (1), the
run failed (2), or its settings or inventory were refused before anything
changed (64).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from badsum import ansible, paths
from badsum.analysis import incident, results, summary
from badsum.exitcodes import Exit
from badsum.version import version


def progress(run_dir: Path) -> tuple[int, int]:
    """(cells judged, cells planned) of a run, from its files alone."""
    planned = results.planned_cells(run_dir)
    done = sum(1 for t, c in planned if (run_dir / f"{t}-{c}.json").exists())
    return done, len(planned)


def run(inventory: Path, extravars: dict, as_json: bool) -> Exit:
    console = Console(stderr=True)
    results_dir = Path(extravars.get("badsum_experiment_results_dir") or paths.RESULTS).resolve()
    # Named here, so that progress can be read from the run's own files.
    run_id = extravars.setdefault("badsum_experiment_run_id", time.strftime("%Y%m%d-%H%M%S", time.gmtime()))
    run_dir = results_dir / str(run_id)
    state = {"step": "starting", "read": 0.0}
    start = time.monotonic()
    with progress_bar("cells", console, transient=as_json) as bar:
        task = bar.add_task("starting", total=None)

        def on_event(event: dict) -> None:
            if event.get("event") == "playbook_on_task_start":
                state["step"] = event.get("event_data", {}).get("task", "")
            if time.monotonic() - state["read"] > 0.25:  # the files, a few times a second at most
                state["read"] = time.monotonic()
                done, planned = progress(run_dir)
                bar.update(task, completed=done, total=planned or None)
                if not console.is_terminal and done != state.get("done"):  # a log, not a live bar
                    console.print(f"cells judged: {done}/{planned}  ({time.monotonic() - start:.0f} s)")
                    state["done"] = done
            bar.update(task, description=state["step"][:60])

        outcome = ansible.watched("reproduce.yml", inventory, extravars, on_event)
        failure = ansible.first_failure(outcome, "reproduce.yml") if outcome.rc != 0 else ""
    elapsed = time.monotonic() - start
    cells, problems = results.load_run(run_dir) if run_dir.is_dir() else ([], [f"no run directory {run_dir}"])
    mismatched = incident.mismatches(cells)
    if outcome.rc != 0 and ansible.refused(outcome):
        status = Exit.USAGE
    elif outcome.rc != 0 or not cells:
        status = Exit.FAILURE
    else:
        status = Exit.FINDING if mismatched else Exit.OK
    # An inconclusive cell is a measurement that is missing: say which, and what to change.
    undecided = [(c["topology"], c["condition"], c["verdict_reason"]) for c in cells if c["verdict"] == "inconclusive"]
    if as_json:
        keys = ("topology", "condition", "condition_kind", "verdict", "verdict_reason", "corrupted_packets")
        print(
            json.dumps(
                {
                    "run": run_id,
                    "run_dir": str(run_dir),
                    "ansible_rc": outcome.rc,
                    "failure": failure,
                    "elapsed": round(elapsed, 1),
                    "cells": [{k: c.get(k) for k in keys} for c in cells],
                    "matches_incident": bool(cells) and not mismatched,
                    "mismatches": mismatched,
                    "inconclusive": [f"{t}/{c}: {r}" for t, c, r in undecided],
                    "problems": problems,
                    "exit_status": int(status),
                    "badsum_version": version(),
                },
                indent=1,
            )
        )
    else:
        print(summary.table(cells, results.planned_cells(run_dir)))
        print(
            f"{len(cells)} cells in {elapsed:.0f} s; "
            + ("the incident's table, reproduced" if not mismatched else "differs from the incident:")
        )
        for line in mismatched:
            print(f"  {line}")
        for topology, condition, reason in undecided:
            print(f"  {topology}/{condition} is inconclusive: {reason}")
        if failure:
            print(f"ansible-playbook failed (rc {outcome.rc}): {failure}", file=sys.stderr)
    return status


def progress_bar(label: str, console: Console, transient: bool) -> Progress:
    """The progress display of both front ends (reproduce, fleet): label, bar, n/N, current step, time."""
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
    )
