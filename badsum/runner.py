"""`badsum reproduce`: reproduce.yml through ansible-runner, with live progress.

Shows cell n of N, the current phase (task) and the elapsed time while the
playbook runs, then the outcome table. The exit status says whether the
observed table matched the incident's (0), did not (1), or the run failed (2).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from badsum.analysis import incident, results, summary

CELL_DONE_TASKS = ("Judge the cell from its measurements", "Record the cell as an error")
TOPOLOGIES = list(results.TOPOLOGIES)
CONDITIONS = list(results.CONDITIONS)


def parse_extravars(pairs: list[str]) -> dict:
    extravars: dict = {}
    for pair in pairs:
        if pair.startswith("{"):
            extravars.update(json.loads(pair))
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"-e {pair!r}: want KEY=VALUE or a JSON object")
        extravars[key] = value
    return extravars


def cell_count(extravars: dict) -> int:
    topologies = extravars.get("badsum_experiment_topologies", TOPOLOGIES)
    conditions = extravars.get("badsum_experiment_conditions", CONDITIONS)
    return len(topologies) * len(conditions)


def run(project: Path, inventory: Path, extravars: dict, as_json: bool) -> int:
    import ansible_runner  # heavy: only for this command

    console = Console(stderr=True)
    total = cell_count(extravars)
    results_dir = Path(extravars.get("badsum_results_dir", project / "results"))
    state = {"done": 0, "phase": "starting", "run_id": None}
    start = time.monotonic()
    with (
        Progress(
            TextColumn("[bold]cells"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=as_json,
        ) as progress,
        tempfile.TemporaryDirectory() as private,
    ):
        bar = progress.add_task("starting", total=total)

        def on_event(event: dict) -> bool:
            data = event.get("event_data", {})
            if event.get("event") == "playbook_on_task_start":
                state["phase"] = data.get("task", "")
            elif event.get("event") == "runner_on_ok" and data.get("task") in CELL_DONE_TASKS:
                state["done"] += 1
            progress.update(bar, completed=state["done"], description=state["phase"][:60])
            return True

        outcome = ansible_runner.run(
            private_data_dir=private,
            project_dir=str(project),
            playbook="reproduce.yml",
            inventory=str(inventory),
            extravars=extravars,
            envvars={
                "ANSIBLE_CONFIG": str(project / "ansible.cfg"),
                "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            },
            event_handler=on_event,
            quiet=True,
        )
    elapsed = time.monotonic() - start
    latest = results_dir / "latest"
    cells, problems = results.load_run(latest) if latest.exists() else ([], ["no results"])
    mismatched = incident.mismatches(cells)
    status = 2 if outcome.rc != 0 or not cells else (1 if mismatched else 0)
    if as_json:
        print(
            json.dumps(
                {
                    "run": latest.resolve().name if latest.exists() else None,
                    "ansible_rc": outcome.rc,
                    "elapsed": round(elapsed, 1),
                    "cells": [
                        {
                            k: c.get(k)
                            for k in ("topology", "condition", "condition_kind", "verdict", "corrupted_packets")
                        }
                        for c in cells
                    ],
                    "matches_incident": not mismatched,
                    "mismatches": mismatched,
                    "problems": problems,
                },
                indent=1,
            )
        )
    else:
        print(summary.table(cells))
        print(
            f"{len(cells)} cells in {elapsed:.0f} s; "
            + ("the incident's table, reproduced" if not mismatched else "differs from the incident:")
        )
        for line in mismatched:
            print(f"  {line}")
        if outcome.rc != 0:
            print(
                f"ansible-playbook failed (rc {outcome.rc}): see {private} or run it directly",
                file=sys.stderr,
            )
    return status
