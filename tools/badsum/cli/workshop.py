"""`badsum workshop up|down|reset|status|serve|check|publish|handout`: the trainer's commands."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from badsum.cli.common import command, group, whole_number
from badsum.exitcodes import Exit, UsageError
from badsum.lab.spec import LabError
from badsum.lab.sysrun import require_root
from badsum.workshop import handout, limits, room, trainer
from badsum.workshop import status as room_status


def _seat(plan: room.Room, student: str) -> room.Seat:
    try:
        return plan.seat(student)
    except LabError as exc:
        raise UsageError(f"STUDENT {student}: {exc}") from None


def cmd_up(args: argparse.Namespace) -> Exit:
    started = time.monotonic()
    try:  # only checks: nothing is made before the plan is whole
        plan, seat = trainer.plan_room(
            args.students,
            (args.lab_pids, args.lab_memory, args.lab_cpu_weight),
            args.listen,
            args.port_base,
            args.dashboard_port,
            args.hours,
            args.key,
        )
    except LabError as exc:
        raise UsageError(str(exc)) from None
    require_root("`badsum workshop up`")
    shown = args.address or trainer.address()
    written = trainer.up(plan, seat, shown)
    print(
        f"{args.students} labs up in {time.monotonic() - started:.1f} s; "
        f"students log in on ports {plan.students[0].port}-{plan.students[-1].port}"
    )
    print(f"each seat's lab is held to {limits.describe(seat)}")
    print(f"dashboard: http://127.0.0.1:{plan.dashboard_port}/   handouts: {written[0]}")
    print(f"students in a browser: http://{shown}:{plan.dashboard_port}/seat/stNN")
    return Exit.OK


def cmd_down(args: argparse.Namespace) -> Exit:
    require_root("`badsum workshop down`")
    print(trainer.down())
    return Exit.OK


def cmd_reset(args: argparse.Namespace) -> Exit:
    require_root("`badsum workshop reset`")
    _seat(trainer.current(), args.student)
    print(trainer.reset(args.student))
    return Exit.OK


def cmd_status(args: argparse.Namespace) -> Exit:
    plan = trainer.current()
    running = trainer.service_running()
    if args.json:
        print(json.dumps({**room_status.table(plan), "service": running}, indent=1))
    else:
        print(room_status.text(plan))
        print(f"service: {'running' if running else 'NOT RUNNING'}; dashboard http://127.0.0.1:{plan.dashboard_port}/")
    return Exit.OK if running else Exit.FINDING


def cmd_serve(args: argparse.Namespace) -> Exit:
    from badsum.workshop import service  # the http servers: only for this command

    service.serve(trainer.current())
    return Exit.OK


def cmd_check(args: argparse.Namespace) -> Exit:
    from badsum.workshop import checks  # pytest and testinfra: only for this command

    plan = trainer.current()
    seats = [_seat(plan, args.student)] if args.student else plan.students
    found = {}
    for seat in seats:
        try:
            found[seat.student] = checks.run_checks(plan, seat, [args.exercise] if args.exercise else None)
        except ValueError as exc:  # no such exercise
            raise UsageError(f"EXERCISE {args.exercise}: {exc}") from None
    failed = sum(r["state"] == "fail" for by_exercise in found.values() for r in by_exercise.values())
    if args.json:
        print(json.dumps({"seats": found, "failed": failed}, indent=1))
    else:
        for student, by_exercise in found.items():
            for exercise, result in by_exercise.items():
                hint = f" - {result['hint']}" if result["state"] == "fail" else ""
                print(f"{student} {exercise}: {result['state']}{hint}")
    return Exit.FINDING if failed else Exit.OK


def cmd_publish(args: argparse.Namespace) -> Exit:
    require_root("`badsum workshop publish`")
    print(trainer.publish(args.run))
    return Exit.OK


def cmd_handout(args: argparse.Namespace) -> Exit:
    plan = trainer.current()
    written = handout.write(plan, args.address or trainer.address(), args.out)
    print(f"handouts: {written[0]} and {len(written) - 1} Markdown pages in {args.out}")
    return Exit.OK


def register(sub: argparse._SubParsersAction) -> None:
    w = group(sub, "workshop", help="a room of students, a lab each, exercises with checks, a dashboard")
    done = {Exit.OK: "done", Exit.FAILURE: "it could not be done (the message says why)"}
    up = command(w, "up", cmd_up, help="a lab per student, the SSH gateway, the service and its dashboard", exits=done)
    up.add_argument(
        "--students", type=whole_number(1, room.MAX_STUDENTS), required=True, help=f"how many (1-{room.MAX_STUDENTS})"
    )
    up.add_argument("--hours", type=float, default=3.0, help="the time limit (default 3)")
    up.add_argument("--listen", default="0.0.0.0", help="where the students' SSH ports listen (default all)")
    up.add_argument(
        "--port-base", type=whole_number(1, 65000), default=2200, help="student N logs in on port BASE+N (default 2200)"
    )
    up.add_argument(
        "--dashboard-port",
        type=whole_number(1, 65535),
        default=8080,
        help="the web port, on --listen: each student's seat in a browser, the dashboard from here (default 8080)",
    )
    up.add_argument("--address", help="this machine's address as students type it (for the handouts)")
    up.add_argument("--lab-pids", metavar="N", help="tasks per seat's lab at once (default: from this machine)")
    up.add_argument("--lab-memory", metavar="SIZE", help="memory per seat's lab, e.g. 1G (default: from this machine)")
    up.add_argument("--lab-cpu-weight", metavar="W", help="each seat's share of the CPU, 1-10000 (default 100: equal)")
    up.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="STUDENT=FILE",
        help="a student's own public key, beside the password (repeatable)",
    )
    command(w, "down", cmd_down, help="everything of the workshop gone: labs, service, firewall, files", exits=done)
    r = command(w, "reset", cmd_reset, help="one student's lab back to the start; the others untouched", exits=done)
    r.add_argument("student", metavar="STUDENT")
    command(
        w,
        "status",
        cmd_status,
        help="students x exercises, last activity, time left",
        exits={Exit.OK: "the room is up and its service runs", Exit.FINDING: "the service is not running"},
        reports=True,
    )
    command(w, "serve", cmd_serve, help="the service in the foreground (up starts it as a daemon)", exits=done)
    c = command(
        w,
        "check",
        cmd_check,
        help="run the exercises' checks (of one student, or all)",
        exits={Exit.OK: "every check ran passes (or was not tried yet)", Exit.FINDING: "a check fails"},
        reports=True,
    )
    c.add_argument("student", nargs="?", metavar="STUDENT")
    c.add_argument("exercise", nargs="?", metavar="EXERCISE")
    pub = command(
        w, "publish", cmd_publish, help="a run on the real unfixed kernel (a VM lab), for exercise 09", exits=done
    )
    pub.add_argument("run", type=Path, metavar="RUN_DIR", help="the run's results directory (it holds run.json)")
    h = command(
        w, "handout", cmd_handout, help="one page per student (handouts.html to print, and Markdown)", exits=done
    )
    h.add_argument("--address", help="this machine's address as students type it")
    h.add_argument("--out", type=Path, default=room.ROOT / "handouts", help=f"where (default {room.ROOT / 'handouts'})")
