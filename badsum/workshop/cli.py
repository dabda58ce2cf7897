"""`badsum workshop up|down|reset|status|serve|check|handout`: the trainer's commands."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from badsum.lab import cgroups
from badsum.lab.spec import LabError
from badsum.lab.sysrun import require_root
from badsum.workshop import firewall, handout, labs, limits, room, runs, status

SERVICE_CGROUP = ("workshop", "service")  # /badsum/workshop/service: never a lab's name (ids have 6 characters)


def _room() -> room.Room:
    found = room.load()
    if found is None:
        raise LabError("no workshop on this machine: `badsum workshop up --students N` first")
    return found


def _keys(pairs: list[str]) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for pair in pairs:
        student, sep, path = pair.partition("=")
        if not sep or not Path(path).is_file():
            raise LabError(f"--key {pair!r}: want STUDENT=PUBLIC_KEY_FILE (e.g. st01=alice.pub), a file that exists")
        keys.setdefault(student, []).append(Path(path).read_text().strip())
    return keys


def start_service(plan: room.Room) -> int:
    """The service as a daemon, in a cgroup of its own: `down` finds it, and all it started, there."""
    procs = cgroups.create_node(*SERVICE_CGROUP)
    if plan.limits:
        cgroups.set_limits(SERVICE_CGROUP[0], limits.service(len(plan.students), cgroups.Limits(**plan.limits)))
    log = open(room.ROOT / "service.log", "ab")  # noqa: SIM115 - the daemon keeps it open

    def enter_cgroup() -> None:
        for path in procs:
            path.write_text(str(os.getpid()))

    proc = subprocess.Popen(
        [sys.executable, "-m", "badsum", "workshop", "serve"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        preexec_fn=enter_cgroup,
        cwd=labs.PROJECT,
    )
    return proc.pid


def service_running() -> bool:
    return bool(cgroups.pids(SERVICE_CGROUP[0]))


def wait_for_dashboard(port: int, timeout: float = 10) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    log = (room.ROOT / "service.log").read_text(errors="replace")[-1500:]
    raise LabError(f"the workshop service did not start; its log ends with:\n{log}")


def cmd_up(args: argparse.Namespace) -> int:
    require_root("`badsum workshop up`")
    if room.load() is not None:
        raise LabError("a workshop is up on this machine already: `badsum workshop status`, or `down` first")
    started = time.monotonic()
    seat = limits.plan(args.students, args.lab_pids, args.lab_memory, args.lab_cpu_weight)
    plan = room.plan(
        args.students,
        labs.free_slots(),
        args.listen,
        args.port_base,
        args.dashboard_port,
        args.hours,
        _keys(args.key),
        asdict(seat),
    )
    plan.save()
    try:
        labs.up_all(plan)
        # Once for the room: a run then only runs its cell. In the workshop's cgroup: `down` finds it.
        runs.prepare(plan.students, cgroup=cgroups.create_node(SERVICE_CGROUP[0], "prepare"))
        firewall.install(plan)
        start_service(plan)
        wait_for_dashboard(plan.dashboard_port)
    except BaseException:
        print("badsum workshop up: failed; taking down what was made", file=sys.stderr)
        _down(plan)
        raise
    written = handout.write(plan, args.address or _address(), room.ROOT / "handouts")
    print(
        f"{args.students} labs up in {time.monotonic() - started:.1f} s; "
        f"students log in on ports {plan.students[0].port}-{plan.students[-1].port}"
    )
    print(f"each seat's lab is held to {limits.describe(seat)}")
    print(f"dashboard: http://127.0.0.1:{plan.dashboard_port}/   handouts: {written[0]}")
    print(f"students in a browser: http://{args.address or _address()}:{plan.dashboard_port}/seat/stNN")
    return 0


def _address() -> str:
    """The machine's own address, as students will type it (the first global one)."""
    out = subprocess.run(
        ["ip", "-j", "-4", "addr", "show", "scope", "global"], capture_output=True, text=True, check=False
    ).stdout
    for link in json.loads(out or "[]"):
        if link.get("ifname", "").startswith(("st", "lab", "docker", "br-")):
            continue
        for info in link.get("addr_info", []):
            return info["local"]
    return "THIS-MACHINE"


def _down(plan: room.Room) -> None:
    cgroups.kill(SERVICE_CGROUP[0])
    cgroups.remove(SERVICE_CGROUP[0])
    firewall.remove()
    try:
        labs.down_all(plan)
    finally:
        if room.ROOT.exists():
            shutil.rmtree(room.ROOT)


def cmd_down(args: argparse.Namespace) -> int:
    require_root("`badsum workshop down`")
    plan = room.load()
    if plan is None:
        # a half-made workshop: still take down whatever of it exists
        cgroups.kill(SERVICE_CGROUP[0])
        cgroups.remove(SERVICE_CGROUP[0])
        removed = firewall.remove()
        print("no workshop was up" + (" (its firewall chains were, and are gone)" if removed else ""))
        return 0
    _down(plan)
    print(f"workshop down: {len(plan.students)} labs, the service, the firewall chains and every file are gone")
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    require_root("`badsum workshop reset`")
    plan = _room()
    seat = plan.seat(args.student)
    started = time.monotonic()
    labs.reset(seat, cgroups.Limits(**plan.limits) if plan.limits else None)
    runs.prepare([seat], cgroup=cgroups.create_node(SERVICE_CGROUP[0], "prepare"))
    print(f"{seat.student}: a fresh lab in {time.monotonic() - started:.1f} s (same login, same password)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    plan = _room()
    if args.json:
        print(json.dumps({**status.table(plan), "service": service_running()}, indent=1))
        return 0
    print(status.text(plan))
    print(
        f"service: {'running' if service_running() else 'NOT RUNNING'}; "
        f"dashboard http://127.0.0.1:{plan.dashboard_port}/"
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from badsum.workshop import service  # the http servers: only for this command

    service.serve(_room())
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from badsum.workshop import checks  # pytest and testinfra: only for this command

    plan = _room()
    seats = [plan.seat(args.student)] if args.student else plan.students
    failed = 0
    for seat in seats:
        found = checks.run_checks(plan, seat, [args.exercise] if args.exercise else None)
        for exercise, result in found.items():
            failed += result["state"] == "fail"
            hint = f" - {result['hint']}" if result["state"] == "fail" else ""
            print(f"{seat.student} {exercise}: {result['state']}{hint}")
    return 1 if failed else 0


def cmd_publish(args: argparse.Namespace) -> int:
    """Show the room a run made on the unfixed kernel (a VM lab): exercise 09 is checked against it."""
    from badsum.analysis import results

    require_root("`badsum workshop publish`")
    _room()
    run_dir = Path(args.run)
    cells, _problems = results.load_run(run_dir) if (run_dir / "run.json").exists() else ([], [])
    real = [
        c
        for c in cells
        if c.get("condition_kind") == "real"
        and c.get("condition") == "vulnerable"
        and str(c.get("kernel", "")).endswith("-badsum-unfixed")
    ]
    if not any(c["topology"] == "mesos" for c in real):
        raise LabError(
            f"{run_dir}: not a run with a mesos / vulnerable cell on the real unfixed kernel "
            "(a VM lab: `badsum lab up --provider qemu --kernel unfixed`, then reproduce.yml)"
        )
    shown = room.ROOT / "real"
    if shown.exists():
        shutil.rmtree(shown)
    shown.mkdir()
    for cell in real:
        (shown / f"{cell['topology']}-{cell['condition']}.json").write_text(json.dumps(cell))
    print(
        f"published {len(real)} real-kernel cells of {run_dir} ({real[0]['kernel']}): exercise 09 checks against them"
    )
    return 0


def cmd_handout(args: argparse.Namespace) -> int:
    plan = _room()
    written = handout.write(plan, args.address or _address(), Path(args.out))
    print(f"handouts: {written[0]} and {len(written) - 1} Markdown pages in {args.out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("workshop", help="a room of students, a lab each, exercises with checks, a dashboard")
    w = p.add_subparsers(dest="workshop_action", required=True)
    up = w.add_parser("up", help="a lab per student, the SSH gateway, the service and its dashboard")
    up.add_argument("--students", type=int, required=True, help=f"how many (1-{room.MAX_STUDENTS})")
    up.add_argument("--hours", type=float, default=3.0, help="the time limit (default 3)")
    up.add_argument("--listen", default="0.0.0.0", help="where the students' SSH ports listen (default all)")
    up.add_argument("--port-base", type=int, default=2200, help="student N logs in on port BASE+N (default 2200)")
    up.add_argument(
        "--dashboard-port",
        type=int,
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
    up.set_defaults(func=cmd_up)
    w.add_parser("down", help="everything of the workshop gone: labs, service, firewall, files").set_defaults(
        func=cmd_down
    )
    r = w.add_parser("reset", help="one student's lab back to the start; the others untouched")
    r.add_argument("student")
    r.set_defaults(func=cmd_reset)
    s = w.add_parser("status", help="students x exercises, last activity, time left")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)
    w.add_parser("serve", help="the service in the foreground (up starts it as a daemon)").set_defaults(func=cmd_serve)
    c = w.add_parser("check", help="run the exercises' checks; exit 1 when one fails")
    c.add_argument("student", nargs="?")
    c.add_argument("exercise", nargs="?")
    c.set_defaults(func=cmd_check)
    pub = w.add_parser("publish", help="a run on the real unfixed kernel (a VM lab) for exercise 09")
    pub.add_argument("run", help="the run's results directory (it holds run.json)")
    pub.set_defaults(func=cmd_publish)
    h = w.add_parser("handout", help="one page per student (handouts.html to print, and Markdown)")
    h.add_argument("--address", help="this machine's address as students type it")
    h.add_argument("--out", default=str(room.ROOT / "handouts"))
    h.set_defaults(func=cmd_handout)
