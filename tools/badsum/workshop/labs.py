"""The students' labs: all up side by side, all down, one reset; and the home each student starts from.

Each lab is an ordinary embedded lab (2 hosts + switch) made by `badsum lab
up` in a process of its own (several at once), with a student account: no
sudo, a password (and their own keys, if they gave any), and a home on host
A made from a template - the `lab` command, its token, the exercises, an
empty answers/ directory. A reset takes one lab down and brings it up again
from the same template: that student starts over, nobody else notices.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from badsum import paths, topologies
from badsum.files import private_dir, write_private
from badsum.lab import state
from badsum.lab.cgroups import Limits
from badsum.lab.spec import MAX_SLOT, LabError
from badsum.workshop import limits as seat_limits
from badsum.workshop.room import API_PORT, STUDENT, Room, Seat

UP_AT_ONCE = 8  # lab up is mostly waiting (sshd start, netlink): more than the cores


def free_slots() -> list[int]:
    used = {state["slot"] for state in state.EMBEDDED.all().values()}
    return [slot for slot in range(MAX_SLOT + 1) if slot not in used]


def password_hash(password: str) -> str:
    proc = subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"], input=password, capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


def make_home(seat: Seat) -> Path:
    """What host A's /home/student holds when the lab comes up."""
    home = private_dir(seat.dir) / "home"
    if home.exists():
        shutil.rmtree(home)
    (home / "bin").mkdir(parents=True)
    (home / "answers").mkdir()
    shutil.copy(Path(__file__).with_name("student_lab.py"), home / "bin" / "lab")
    (home / "bin" / "lab").chmod(0o755)
    write_private(home / ".lab-token", seat.token + "\n")  # the node gives it to the student, still 0600
    (home / ".lab-service").write_text(f"{seat.service_address}:{API_PORT}\n")
    (home / ".lab-topologies").write_text(" ".join(topologies.names()) + "\n")  # what `lab help` lists
    shutil.copytree(paths.EXERCISES, home / "exercises", ignore=shutil.ignore_patterns("checks", "__pycache__"))
    (home / ".profile").write_text('PATH="$HOME/bin:$PATH"\ncat "$HOME/WELCOME" 2>/dev/null\n')
    (home / "WELCOME").write_text(
        f"badsum workshop, {seat.student}: this is host A of your own lab. `lab help` says what you can do;\n"
        "the exercises are in ~/exercises (start with README.md); answers go into ~/answers/NN.txt.\n"
    )
    return home


def account(seat: Seat) -> Path:
    """The account file `badsum lab up --student` reads: name, password hash, keys, home template."""
    path = seat.dir / "account.json"
    data = {
        "name": STUDENT,
        "password_hash": password_hash(seat.password),
        "keys": seat.keys,
        "home": str(make_home(seat)),
    }
    write_private(path, json.dumps(data))  # the password's hash
    return path


def _lab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "badsum", "lab", *args],
        cwd=paths.PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def up_one(seat: Seat, limits: Limits | None = None) -> str:
    seat.inventory.mkdir(parents=True, exist_ok=True)
    group_vars = seat.inventory / "group_vars"
    group_vars.mkdir(exist_ok=True)
    shutil.copy(paths.LAB_SETTINGS, group_vars / "all.yml")
    proc = _lab(
        "up",
        "--lab",
        seat.student,
        "--hosts",
        "2",
        "--slot",
        str(seat.slot),
        "--write-inventory",
        str(seat.inventory),
        "--student",
        str(account(seat)),
        *(seat_limits.lab_up_args(limits) if limits else []),
    )
    if proc.returncode != 0:
        raise LabError(f"{seat.student}: {proc.stderr.strip() or proc.stdout.strip()}")
    return seat.student


def down_one(seat: Seat) -> None:
    proc = _lab("down", "--lab", seat.student)
    if proc.returncode != 0:
        raise LabError(f"{seat.student}: {proc.stderr.strip()}")


def up_all(room: Room) -> None:
    limits = Limits(**room.limits) if room.limits else None
    with ThreadPoolExecutor(UP_AT_ONCE) as pool:
        failures = [
            str(e) for e in pool.map(_try(lambda s: up_one(s, limits)), room.students) if isinstance(e, Exception)
        ]
    if failures:
        raise LabError("some labs did not come up:\n" + "\n".join(failures))


def down_all(room: Room) -> None:
    with ThreadPoolExecutor(UP_AT_ONCE) as pool:
        failures = [str(e) for e in pool.map(_try(down_one), room.students) if isinstance(e, Exception)]
    if failures:
        raise LabError("some labs did not go down:\n" + "\n".join(failures))


def reset(seat: Seat, limits: Limits | None = None) -> None:
    """That student's lab as at the start: a new lab, a new home, their runs and checks forgotten."""
    down_one(seat)
    for name in ("results", "fleet", "activity.jsonl", "checks.json", "standing.json", "container.json"):
        path = seat.dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    up_one(seat, limits)


def _try(work):
    def run(seat: Seat):
        try:
            return work(seat)
        except (LabError, subprocess.TimeoutExpired, OSError) as exc:
            return exc

    return run
