"""The room: who the students are, which lab each has, how each logs in, and until when.

One workshop per machine. Its record is /var/lib/badsum/workshop/room.json;
each student has a directory beside it (their lab's inventory, their runs,
their activity). Students are st01, st02...: each one's lab has the same id
(a lab id is at most 6 characters), host A is where the student logs in.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from badsum.files import private_dir, write_private
from badsum.lab.spec import LabError, LabSpec

ROOT = Path("/var/lib/badsum/workshop")
ROOM = ROOT / "room.json"
MAX_STUDENTS = 30
LAB_HOSTS = 2  # host A (the student's), host B (the server and its containers); plus the switch
API_PORT = 8765  # the service, on each lab's management bridge: what the `lab` command talks to
STUDENT = "student"  # the account a student logs in as, on host A of their own lab
PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read from paper


def student_id(n: int) -> str:
    return f"st{n:02d}"


@dataclass
class Seat:
    """One student's place in the room."""

    student: str  # st01...
    slot: int  # the lab's address slot
    port: int  # the gateway port that leads to host A's sshd
    password: str
    token: str  # the `lab` command's credential, in the student's home
    keys: list[str] = field(default_factory=list)  # their own public keys, if they gave one

    @property
    def dir(self) -> Path:
        return ROOT / self.student

    @property
    def inventory(self) -> Path:
        return self.dir / "inventory"

    @property
    def results(self) -> Path:
        return self.dir / "results"

    def spec(self) -> LabSpec:
        return LabSpec(self.student, LAB_HOSTS, self.slot)

    @property
    def host_a(self) -> str:
        return self.spec().host(1).mgmt_v4

    @property
    def service_address(self) -> str:
        return self.spec().gateway_v4


@dataclass
class Room:
    students: list[Seat]
    listen: str  # where the gateway listens for the students' SSH
    port_base: int
    dashboard_port: int
    started: float
    deadline: float  # epoch seconds; the service refuses work after it
    limits: dict = field(default_factory=dict)  # each seat's lab: pids, memory, cpu_weight (badsum.workshop.limits)

    def seat(self, student: str) -> Seat:
        for seat in self.students:
            if seat.student == student:
                return seat
        known = ", ".join(s.student for s in self.students)
        raise LabError(f"no student {student!r} in this workshop (students: {known})")

    def seconds_left(self) -> float:
        return max(0.0, self.deadline - time.time())

    def save(self) -> None:
        private_dir(ROOT)  # root's alone: every seat's files live below it
        write_private(ROOM, json.dumps(asdict(self), indent=1))  # passwords and tokens


def load() -> Room | None:
    if not ROOM.exists():
        return None
    data = json.loads(ROOM.read_text())
    data["students"] = [Seat(**s) for s in data["students"]]
    return Room(**data)


def password() -> str:
    return "-".join("".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(4)) for _ in range(3))


def plan(
    students: int,
    slots: list[int],
    listen: str,
    port_base: int,
    dashboard_port: int,
    hours: float,
    keys: dict[str, list[str]] | None = None,
    limits: dict | None = None,
) -> Room:
    if not 1 <= students <= MAX_STUDENTS:
        raise LabError(f"--students must be between 1 and {MAX_STUDENTS}, got {students}")
    if len(slots) < students:
        raise LabError(f"{students} students need {students} free lab slots; this machine has {len(slots)} free")
    if not 1024 <= port_base <= 65535 - students:
        raise LabError(f"--port-base must leave room for {students} ports below 65536 (got {port_base})")
    if not 0 < hours <= 24:
        raise LabError(f"--hours must be above 0 and at most 24 (got {hours})")
    seats = [
        Seat(
            student_id(n),
            slots[n - 1],
            port_base + n,
            password(),
            secrets.token_urlsafe(24),
            (keys or {}).get(student_id(n), []),
        )
        for n in range(1, students + 1)
    ]
    now = time.time()
    return Room(seats, listen, port_base, dashboard_port, now, now + hours * 3600, dict(limits or {}))
