"""What the trainer's commands do (`badsum workshop up|down|reset|status|check|publish|handout`).

The room comes up in order - a lab per seat, the seats prepared once, the
firewall, the service (a daemon in a cgroup of its own, where `down` finds
it and all it started) - and whatever fails on the way takes down what was
made. badsum.cli.workshop reads the command line and calls these.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from badsum import paths
from badsum.lab import cgroups
from badsum.lab.spec import LabError
from badsum.workshop import firewall, handout, labs, limits, room, runs

SERVICE_CGROUP = ("workshop", "service")  # /badsum/workshop/service: never a lab's name (ids have 6 characters)


def current() -> room.Room:
    found = room.load()
    if found is None:
        raise LabError("no workshop on this machine: `badsum workshop up --students N` first")
    return found


def keys(pairs: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for pair in pairs:
        student, sep, path = pair.partition("=")
        if not sep or not Path(path).is_file():
            raise LabError(f"--key {pair!r}: want STUDENT=PUBLIC_KEY_FILE (e.g. st01=alice.pub), a file that exists")
        found.setdefault(student, []).append(Path(path).read_text().strip())
    return found


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
        cwd=paths.PROJECT,
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


def address() -> str:
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


def up(plan: room.Room, seat_limits: limits.Limits, shown_address: str) -> list[str]:
    """The room as planned: labs, prepared seats, firewall, service; the handouts written."""
    if room.load() is not None:
        raise LabError("a workshop is up on this machine already: `badsum workshop status`, or `down` first")
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
        take_down(plan)
        raise
    return handout.write(plan, shown_address, room.ROOT / "handouts")


def plan_room(
    students: int,
    seat_limits: tuple[str | None, str | None, str | None],
    listen: str,
    port_base: int,
    dashboard_port: int,
    hours: float,
    key_pairs: list[str],
) -> tuple[room.Room, limits.Limits]:
    """The room's plan and each seat's limits (pids, memory, CPU weight), every value checked; nothing made yet."""
    seat = limits.plan(students, *seat_limits)
    plan = room.plan(
        students, labs.free_slots(), listen, port_base, dashboard_port, hours, keys(key_pairs), asdict(seat)
    )
    return plan, seat


def take_down(plan: room.Room) -> None:
    cgroups.kill(SERVICE_CGROUP[0])
    cgroups.remove(SERVICE_CGROUP[0])
    firewall.remove()
    try:
        labs.down_all(plan)
    finally:
        if room.ROOT.exists():
            shutil.rmtree(room.ROOT)


def down() -> str:
    plan = room.load()
    if plan is None:
        # a half-made workshop: still take down whatever of it exists
        cgroups.kill(SERVICE_CGROUP[0])
        cgroups.remove(SERVICE_CGROUP[0])
        removed = firewall.remove()
        return "no workshop was up" + (" (its firewall chains were, and are gone)" if removed else "")
    take_down(plan)
    return f"workshop down: {len(plan.students)} labs, the service, the firewall chains and every file are gone"


def reset(student: str) -> str:
    plan = current()
    seat = plan.seat(student)
    started = time.monotonic()
    labs.reset(seat, cgroups.Limits(**plan.limits) if plan.limits else None)
    runs.prepare([seat], cgroup=cgroups.create_node(SERVICE_CGROUP[0], "prepare"))
    return f"{seat.student}: a fresh lab in {time.monotonic() - started:.1f} s (same login, same password)"


def publish(run_dir: Path) -> str:
    """Show the room a run made on the unfixed kernel (a VM lab): exercise 09 is checked against it."""
    from badsum.analysis import results

    current()
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
    return (
        f"published {len(real)} real-kernel cells of {run_dir} ({real[0]['kernel']}): exercise 09 checks against them"
    )
