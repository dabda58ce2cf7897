"""The room's status: students x exercises (pass, fail, not tried), last activity: dashboard and terminal."""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from badsum import paths
from badsum.workshop.room import Room, Seat

EXERCISES = paths.EXERCISES


def exercises() -> list[dict]:
    """The exercises' front matter (id, title, minutes, answer, check, hint), in order."""
    found = []
    for path in sorted(EXERCISES.glob("[0-9][0-9]-*.md")):
        text = path.read_text()
        if text.startswith("---"):
            meta = yaml.safe_load(text.split("---", 2)[1])
            found.append({**meta, "id": str(meta["id"]), "file": path.name})
    return found


def checks_file(seat: Seat) -> Path:
    return seat.dir / "checks.json"


def load_checks(seat: Seat) -> dict[str, dict]:
    path = checks_file(seat)
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        return {}


def save_checks(seat: Seat, found: dict[str, dict]) -> None:
    merged = {**load_checks(seat), **found}
    seat.dir.mkdir(parents=True, exist_ok=True)
    tmp = checks_file(seat).with_suffix(".tmp")
    tmp.write_text(json.dumps(merged, indent=1))
    tmp.rename(checks_file(seat))


def last_activity(seat: Seat) -> float | None:
    path = seat.dir / "activity.jsonl"
    if not path.exists() or path.stat().st_size == 0:
        return None
    return path.stat().st_mtime


def table(room: Room) -> dict:
    """What the dashboard shows, as one JSON document."""
    ex = exercises()
    rows = []
    for seat in room.students:
        found = load_checks(seat)
        rows.append(
            {
                "student": seat.student,
                "port": seat.port,
                "last_activity": last_activity(seat),
                "exercises": {e["id"]: found.get(e["id"], {"state": "not-tried"}) for e in ex},
            }
        )
    return {
        "now": time.time(),
        "deadline": room.deadline,
        "seconds_left": room.seconds_left(),
        "exercises": [{"id": e["id"], "title": e["title"]} for e in ex],
        "students": rows,
    }


def text(room: Room) -> str:
    """The same table for a terminal: one student per line."""
    data = table(room)
    ids = [e["id"] for e in data["exercises"]]
    mark = {"pass": "ok", "fail": "x", "not-tried": "."}
    lines = ["student  port   " + " ".join(f"{i:>3}" for i in ids) + "  last activity"]
    for row in data["students"]:
        cells = " ".join(f"{mark.get(row['exercises'][i]['state'], '?'):>3}" for i in ids)
        ago = f"{(data['now'] - row['last_activity']) / 60:.0f} min ago" if row["last_activity"] else "never"
        lines.append(f"{row['student']:8} {row['port']:<6} {cells}  {ago}")
    left = data["seconds_left"]
    lines.append(f"{int(left // 3600)} h {int(left % 3600 // 60)} min left; ok = passed, x = failed, . = not tried")
    return "\n".join(lines)
