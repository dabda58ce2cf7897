"""`badsum fleet audit|remediate|rollback`: the fleet playbooks through ansible-runner, with live progress.

Shows hosts done / hosts targeted (counted from the run's own host records),
the batch the rollout is in and the hosts that failed, while the playbook
runs; then the fleet table. The report is written even when the rollout
stopped half way (Ansible runs no later play then). Exit status
(badsum.exitcodes): 0 when every host is fine, 1 when an audit found exposed
hosts, 2 when a host failed, was not reached, or stays exposed after
remediation, or the playbook failed, 64 when the settings or the inventory
were refused before any host was touched.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

from rich.console import Console

from badsum import ansible, paths
from badsum.exitcodes import Exit
from badsum.fleet import PHASES, report
from badsum.runner import progress_bar
from badsum.version import version

PLAYBOOKS = {phase: f"playbooks/{phase}.yml" for phase in PHASES}
LIMIT_RE = re.compile(r"^[A-Za-z0-9_.:,!&*\[\]~-]+$")
BATCH_PLAYS = ("Remediate the fleet, batch by batch", "Roll the fleet back, batch by batch")


def with_controller(limit: str) -> str:
    """The limit, and localhost: the plan and the report run there, and without the plan no host is touched.

    Ansible splits a pattern on its commas when it has any, else on its colons: join the same way.
    """
    return f"localhost{',' if ',' in limit else ':'}{limit}"


class Watch:
    """What the event stream and the run's files say about the run so far."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir, self.batch, self.failed, self.read = run_dir, 0, set(), 0.0
        self.done, self.total = 0, 0

    def on_event(self, event: dict) -> None:
        kind, data = event.get("event", ""), event.get("event_data", {})
        if kind == "playbook_on_play_start" and data.get("play") in BATCH_PLAYS:
            self.batch += 1  # Ansible starts the play again for every batch
        elif kind in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
            self.failed.add(data.get("host", "?"))
        if time.monotonic() - self.read > 0.25:  # the files, a few times a second at most
            self.read = time.monotonic()
            plan = self.run_dir / "plan.json"
            if plan.exists() and not self.total:
                self.total = len(json.loads(plan.read_text())["hosts"])
            hosts = self.run_dir / "hosts"
            self.done = sum(1 for _ in hosts.glob("*.json")) if hosts.is_dir() else 0

    def line(self) -> str:
        return f"batch {self.batch or '-'} · failed {len(self.failed)}"


def run(phase: str, inventory: Path, extravars: dict, options: list[str], as_json: bool) -> Exit:
    console = Console(stderr=True)
    results = Path(extravars.get("badsum_fleet_results_dir") or paths.FLEET_RESULTS).resolve()
    extravars["badsum_fleet_results_dir"] = str(results)
    # Named here, so that progress can be read from the run's own files.
    run_id = extravars.setdefault("badsum_fleet_run_id", f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{phase}")
    run_dir = results / str(run_id)
    watch = Watch(run_dir)
    start = time.monotonic()
    with progress_bar(phase, console, transient=as_json) as bar:
        task = bar.add_task("planning", total=None)

        def on_event(event: dict) -> None:
            watch.on_event(event)
            bar.update(task, completed=watch.done, total=watch.total or None, description=watch.line())

        outcome = ansible.watched(PLAYBOOKS[phase], inventory, extravars, on_event, options)
    elapsed = time.monotonic() - start
    if not (run_dir / "plan.json").exists():
        failure = ansible.first_failure(outcome, PLAYBOOKS[phase])
        refused = ansible.refused(outcome)
        status = Exit.USAGE if refused else Exit.FAILURE
        if as_json:
            said = {"run_dir": str(run_dir), "ansible_rc": outcome.rc, "failure": failure, "exit_status": int(status)}
            print(json.dumps({**said, "badsum_version": version()}, indent=1))
        print(f"badsum fleet {phase}: the run did not start: {failure}", file=sys.stderr)
        return status
    written = report.write(run_dir)  # again: a stopped rollout never reached the playbook's report
    summary = json.loads((run_dir / "fleet.json").read_text())
    exposed = summary["risk"].get("exposed", 0) if phase == "audit" else 0
    status = Exit.FAILURE if outcome.rc != 0 or written["problems"] else Exit.FINDING if exposed else Exit.OK
    if as_json:
        # exit_status: the command's own exit status (fleet.json's "status" counts hosts by status)
        summary.update(ansible_rc=outcome.rc, elapsed=round(elapsed, 1), run_dir=str(run_dir), exit_status=int(status))
        print(json.dumps(summary, indent=1))
        return status
    print(written["table"])
    print(f"{phase} of {summary['hosts']} hosts in {elapsed:.0f} s; report: {run_dir / 'report.html'}")
    for problem in written["problems"]:
        print(f"  {problem}")
    if outcome.rc != 0 and not written["problems"]:
        failure = ansible.first_failure(outcome, PLAYBOOKS[phase])
        print(f"ansible-playbook failed (rc {outcome.rc}): {failure}", file=sys.stderr)
    return status
