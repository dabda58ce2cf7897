"""Each exercise's automatic check, run with pytest and testinfra on a student's lab, and kept for the dashboard.

The checks live in exercises/checks/ (one test per exercise, named
test_exercise_NN). A check that passes is `pass`; one that fails is `fail`,
shown with the exercise's hint; one that finds nothing of the exercise done
yet (no run, no answer) skips itself: `not-tried`.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from badsum import ansible, paths
from badsum.workshop import status
from badsum.workshop.room import Room, Seat

SUITE = paths.EXERCISES / "checks"


def run_checks(room: Room, seat: Seat, exercises: list[str] | None = None) -> dict[str, dict]:
    known = {e["id"]: e for e in status.exercises()}
    wanted = exercises or list(known)
    unknown = [e for e in wanted if e not in known]
    if unknown:
        raise ValueError(f"no exercise {', '.join(unknown)} (exercises: {', '.join(known)})")
    with tempfile.TemporaryDirectory(prefix="badsum-checks-") as tmp:
        report = Path(tmp) / "junit.xml"
        selector = " or ".join(f"test_exercise_{e}" for e in wanted)
        # pytest here, not Ansible; but testinfra's ansible backend runs Ansible's libraries: its environment.
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                str(SUITE),
                "-k",
                selector,
                f"--junitxml={report}",
                f"--ansible-inventory={seat.inventory}",
                f"--badsum-seat={seat.dir}",
            ],
            cwd=paths.PROJECT,
            env=ansible.environment(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        found = _outcomes(report, known) if report.exists() else {}
    now = time.time()
    results = {
        e: {**found.get(e, {"state": "fail", "hint": "the check itself did not run"}), "time": now} for e in wanted
    }
    status.save_checks(seat, results)
    return results


def _outcomes(report: Path, known: dict[str, dict]) -> dict[str, dict]:
    found = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        exercise = case.get("name", "").removeprefix("test_exercise_")[:2]
        if case.find("skipped") is not None:
            found[exercise] = {"state": "not-tried", "hint": ""}
        elif case.find("failure") is not None or case.find("error") is not None:
            element = case.find("failure") if case.find("failure") is not None else case.find("error")
            detail = (element.get("message") or "").split("\n")[0]
            found[exercise] = {"state": "fail", "hint": known.get(exercise, {}).get("hint", ""), "detail": detail}
        else:
            found[exercise] = {"state": "pass", "hint": ""}
    return found


def check_one(room: Room, seat: Seat, exercise: str | None) -> dict:
    """The `lab check [NN]` answer: pass, or the hint."""
    try:
        results = run_checks(room, seat, [exercise] if exercise else None)
    except ValueError as exc:
        return {"ok": False, "text": str(exc)}
    lines = []
    for e, r in results.items():
        lines.append(f"{e}: {r['state']}" + (f" - {r['hint']}" if r["state"] == "fail" else ""))
    ok = all(r["state"] == "pass" for r in results.values())
    return {"ok": ok, "text": "\n".join(lines), "data": results}
