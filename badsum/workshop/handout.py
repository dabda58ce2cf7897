"""One page per student: how to log in to their lab, their password, the first command. Markdown and printable HTML."""

from __future__ import annotations

import time
from pathlib import Path

import jinja2

from badsum.files import atomic_write
from badsum.workshop.room import Room

TEMPLATES = Path(__file__).parent / "templates"


def write(room: Room, address: str, out: Path) -> list[Path]:
    """handouts.html (every student, a page each, for printing) and one <student>.md each."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html.j2"]),
        undefined=jinja2.StrictUndefined,
    )
    until = time.strftime("%H:%M", time.localtime(room.deadline))
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "handouts.html"]
    atomic_write(
        written[0], env.get_template("handout.html.j2").render(seats=room.students, address=address, until=until)
    )
    for seat in room.students:
        path = out / f"{seat.student}.md"
        atomic_write(path, env.get_template("handout.md.j2").render(seat=seat, address=address, until=until))
        path.chmod(0o600)
        written.append(path)
    written[0].chmod(0o600)  # passwords
    return written
