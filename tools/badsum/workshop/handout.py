"""One page per student: how to log in to their lab, their password, the first command. Markdown and printable HTML."""

from __future__ import annotations

import time
from pathlib import Path

import jinja2

from badsum.files import write_private
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
    common = {"address": address, "until": until, "web_port": room.dashboard_port}
    out.mkdir(mode=0o700, parents=True, exist_ok=True)  # a directory the trainer named keeps its mode
    written = [out / "handouts.html"]
    # Every page carries a password: private from the first byte.
    write_private(
        written[0],
        env.get_template("handout.html.j2").render(seats=room.students, **common),
    )
    for seat in room.students:
        path = out / f"{seat.student}.md"
        write_private(
            path,
            env.get_template("handout.md.j2").render(seat=seat, **common),
        )
        written.append(path)
    return written
