"""`badsum reproduce`: reproduce.yml through ansible-runner, with live progress.

Shows cells judged / cells planned (counted from the run's own files: its
record and its result files), the current step and the elapsed time while
the playbook runs, then the outcome table. The exit status says whether the
observed table matched the incident's (0), did not (1), or the run failed (2).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from badsum.analysis import incident, results, summary
from badsum.host.shared.common import alive


def parse_extravars(pairs: list[str]) -> dict:
    """-e values as ansible-playbook takes them: KEY=VALUE, a JSON object, or @FILE (YAML or JSON)."""
    extravars: dict = {}
    for pair in pairs:
        if pair.startswith("@"):
            try:
                extravars.update(yaml.safe_load(Path(pair[1:]).read_text()) or {})
            except (OSError, yaml.YAMLError) as exc:
                raise ValueError(f"-e {pair}: cannot read it ({exc})") from None
            continue
        if pair.startswith("{"):
            try:
                extravars.update(json.loads(pair))
            except json.JSONDecodeError as exc:
                raise ValueError(f"-e {pair!r}: not a JSON object ({exc})") from None
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"-e {pair!r}: want KEY=VALUE, a JSON object or @FILE")
        extravars[key] = value
    return extravars


RUNNER_PREFIX = "badsum-runner-"
ANSIBLE_LOCAL_TMP = Path("~/.ansible/tmp/badsum").expanduser()  # ansible.cfg's local_tmp


def stale_controller_files() -> list[Path]:
    """Scratch directories that killed runs left on the controller: their owner's PID is gone.

    ansible-runner's private directory (badsum-runner-<pid>-*) and Ansible's
    own local scratch directory (ansible-local-<pid><8 random characters>).
    """
    found = []
    for path in Path(tempfile.gettempdir()).glob(f"{RUNNER_PREFIX}*-*"):
        pid = path.name.removeprefix(RUNNER_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not alive(int(pid)):
            found.append(path)
    for path in ANSIBLE_LOCAL_TMP.glob("ansible-local-*"):
        pid = path.name.removeprefix("ansible-local-")[:-8]
        if pid.isdigit() and not alive(int(pid)):
            found.append(path)
    return found


def clean_stale_controller_files() -> list[str]:
    removed = []
    for path in stale_controller_files():
        shutil.rmtree(path, ignore_errors=True)
        removed.append(str(path))
    return removed


def progress(run_dir: Path) -> tuple[int, int]:
    """(cells judged, cells planned) of a run, from its files alone."""
    planned = results.planned_cells(run_dir)
    done = sum(1 for t, c in planned if (run_dir / f"{t}-{c}.json").exists())
    return done, len(planned)


def run(project: Path, inventory: Path, extravars: dict, as_json: bool) -> int:
    import ansible_runner  # heavy: only for this command

    console = Console(stderr=True)
    clean_stale_controller_files()
    results_dir = Path(extravars.get("badsum_experiment_results_dir", project / "results")).resolve()
    # Named here, so that progress can be read from the run's own files.
    run_id = extravars.setdefault("badsum_experiment_run_id", time.strftime("%Y%m%d-%H%M%S", time.gmtime()))
    run_dir = results_dir / str(run_id)
    state = {"step": "starting", "read": 0.0}
    start = time.monotonic()
    with (
        progress_bar("cells", console, transient=as_json) as bar,
        tempfile.TemporaryDirectory(prefix=f"{RUNNER_PREFIX}{os.getpid()}-") as private,
    ):
        task = bar.add_task("starting", total=None)

        def on_event(event: dict) -> bool:
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
        failure = first_failure(outcome, "reproduce.yml") if outcome.rc != 0 else ""
    elapsed = time.monotonic() - start
    cells, problems = results.load_run(run_dir) if run_dir.is_dir() else ([], [f"no run directory {run_dir}"])
    mismatched = incident.mismatches(cells)
    status = 2 if outcome.rc != 0 or not cells else (1 if mismatched else 0)
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


def first_failure(outcome, playbook: str) -> str:
    """The first failed task's own message, for the summary."""
    for event in outcome.events:
        if event.get("event") == "runner_on_failed":
            data = event["event_data"]
            return f"{data.get('task', '?')}: {data.get('res', {}).get('msg', '')}".strip()
    return f"see the playbook's output (ansible-playbook {playbook})"
