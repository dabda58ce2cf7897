"""A room of three, tried from a student's seat as a curious student would: every seat sealed off from the others.

The room is made as a trainer makes it (`badsum workshop up`, default
limits, every port on all addresses) and watched while it is made: every
file it writes is checked as it is created (strace: the mode it is created
with), so a secret readable by others for a moment fails the suite. Then
st01 tries what it should not be able to do, through the gateway with its
own key: another seat's files, keys, processes, gateway and service; a fork
bomb, a 4 GiB allocation and `kill -9 -1`, while st02 and st03 press `lab
run` and must get their verdicts. Last, the browser seat in headless
Chromium: log in with the handout's password, `lab run bare patched`, the
verdict read off the screen; a wrong password gets nothing.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from chromium import Browser

from badsum.lab import cgroups
from badsum.workshop import firewall, room
from conftest import ENV, ROOT, badsum
from residue import badsum_programs, leftovers

SEATS = 3
PORT_BASE = 45200  # far from the defaults and from test_workshop.py's
WEB = 48083
SSH_OPTS = [
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "ConnectTimeout=10",
]
# What must never be readable by anyone but root (and, for keys/<user>, that user's group), not for a moment.
SECRET = re.compile(
    r"/var/lib/badsum/workshop/(\.?room(\.json|\.\d+\.tmp)|st\d\d/\.?account\.json|st\d\d/home/\.lab-token|handouts/)"
    r"|/var/lib/badsum/labs/st\d\d/(etc/\.?shadow|keys/)"
    r"|/id_ed25519(\.\d+\.tmp)?\"|ssh_host_ed25519_key\""
    r"|/home/student/\.lab-token"
)
# -I 1: strace lets SIGINT through (with -o it would block it), to let go of the service.
# The umask and the forks too: a file's mode at creation is the mode asked for less the creator's umask.
STRACE = ["strace", "-I", "1", "-f", "-q", "-s", "512", "-e", "status=successful"]
STRACE += ["-e", "trace=open,openat,creat,umask,clone,clone3,fork,vfork"]
LINE = re.compile(r"^(\d+) +(.*)$")
CREATED = re.compile(r'^(?:openat\(AT_FDCWD, |open\(|creat\()"([^"]+)", ([^,)]+)(?:, (0\d+))?\) = \d+')
UMASK = re.compile(r"^umask\((0?\d+)\)")
FORKED = re.compile(r"^(?:(?:clone3?|v?fork)\(.*|<\.\.\. (?:clone3?|v?fork) resumed>.*)\) = (\d+)$")


def traced(trace: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """A badsum command run under strace (every file it and its children create), with the usual umask.

    strace follows every child, the service `up` leaves running too: once the
    command itself has exited, strace lets go of what is left (SIGINT detaches).
    """
    command = [str(Path(ENV["PATH"].split(":")[0]) / "python"), "-m", "badsum", *args]
    proc = subprocess.Popen(
        [*STRACE, "-o", str(trace), "sh", "-c", 'umask 022; exec "$@"', "-", *command],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline, rc = time.monotonic() + timeout, None
    while rc is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        text = trace.read_text(errors="replace") if trace.exists() else ""
        top = re.match(r"(\d+) +", text)
        if top and (ended := re.search(rf"^{top[1]} +\+\+\+ exited with (\d+) \+\+\+", text, re.M)):
            rc = int(ended[1])
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(command, -1 if rc is None else rc, out, err)


def created_secrets(trace: Path) -> list[tuple[str, int]]:
    """(path, mode it was created with) of every secret file the traced command created."""
    umask: dict[str, int] = {}  # per process, inherited at fork
    pending: dict[str, str] = {}  # a call strace split because another process's came in between
    found = []
    last = ""  # the pid of the line before: strace ends its own unfinished call on a line of no pid
    for line in trace.read_text(errors="replace").splitlines():
        parsed = LINE.match(line)
        if not parsed:
            if last in pending:  # `23334 umask(077 <unfinished ...>` then `)   = 022`
                pid, call = last, pending.pop(last) + line
            else:
                continue
        else:
            pid, call = parsed.groups()
        last = pid
        if call.endswith("<unfinished ...>"):  # another process's call came in between
            pending[pid] = call.removesuffix("<unfinished ...>").rstrip()
            continue
        if call.startswith("<... ") and "resumed>" in call and pid in pending:
            call = pending.pop(pid) + call.split("resumed>", 1)[1]
        if mask := UMASK.match(call):
            umask[pid] = int(mask[1], 8)
        elif child := FORKED.match(call):  # strace may show the child's own umask() before this line
            umask.setdefault(child[1], umask.get(pid, 0o022))
        elif (made := CREATED.match(call)) and "O_CREAT" in made[2] and SECRET.search(f'{made[1]}"'):
            found.append((made[1], int(made[3] or "0", 8) & ~umask.get(pid, 0o022)))
    return found


def test_a_killed_up_leaves_nothing_once_the_room_is_taken_down() -> None:
    """SIGKILL `workshop up` while it prepares the labs (ansible-playbook running): `down` leaves nothing."""
    from residue import machine, machine_residue

    badsum("workshop", "down", timeout=300)
    before, programs = machine(), badsum_programs()  # another lab's programs are not this room's
    room2 = ["--students", "2", "--listen", "127.0.0.1", "--port-base", str(PORT_BASE + 100), "--dashboard-port"]
    up = subprocess.Popen(
        [str(Path(ENV["PATH"].split(":")[0]) / "python"), "-m", "badsum", "workshop", "up", *room2, str(WEB + 1)],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while not cgroups.node_pids("workshop", "prepare") and up.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        preparing = up.poll() is None and bool(cgroups.node_pids("workshop", "prepare"))
        time.sleep(2)  # well into the playbook: SSH connections open, modules running on the labs
    finally:
        up.kill()
        up.wait(30)
        badsum("workshop", "down", timeout=300)
    assert preparing, "up never got to preparing the labs (in the workshop's cgroup)"
    assert [f for s in ("st01", "st02") for f in leftovers(s, programs_before=programs)] == []
    assert cgroups.leftovers("workshop") == [] and not firewall.installed() and not room.ROOT.exists()
    assert machine_residue(before) == []


@pytest.fixture(scope="module")
def room3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("room3")
    keys = {}
    for n in range(1, SEATS + 1):
        keys[n] = tmp / f"id{n}"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys[n])], check=True)
    badsum("workshop", "down", timeout=300)
    programs = badsum_programs()
    up = traced(
        tmp / "up.strace",
        "workshop",
        "up",
        "--students",
        str(SEATS),
        "--hours",
        "1",
        "--listen",
        "0.0.0.0",  # as a trainer would: only the firewall keeps a lab from the machine's ports
        "--port-base",
        str(PORT_BASE),
        "--dashboard-port",
        str(WEB),
        "--address",
        "127.0.0.1",
        *[arg for n in keys for arg in ("--key", f"st{n:02d}={keys[n]}.pub")],
    )
    plan = room.load()
    assert up.returncode == 0 and plan is not None, up.stdout + up.stderr
    info = {"room": plan, "keys": keys, "tmp": tmp, "up_trace": tmp / "up.strace"}
    yield info
    seen = {i for s in plan.students for i in _identities(s.student)} | _identities("workshop")
    badsum("workshop", "down", timeout=300)
    deadline = time.monotonic() + 15
    while badsum_programs() - programs and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [f for s in plan.students for f in leftovers(s.student, seen, programs_before=programs)] == []
    assert cgroups.leftovers("workshop") == [] and not firewall.installed() and not room.ROOT.exists()


def _identities(cgroup: str) -> set[tuple[int, int]]:
    from badsum.host.shared.common import identity

    return {i for pid in cgroups.pids(cgroup) if (i := identity(pid))}


def ssh(info: dict, n: int, command: str, key: int | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """A command as student n types it after logging in through the gateway (with key n unless told)."""
    return subprocess.run(
        ["ssh", *SSH_OPTS, "-i", str(info["keys"][key or n]), "-p", str(PORT_BASE + n), "student@127.0.0.1", command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def verdict(info: dict, n: int) -> str:
    """`lab run bare patched` as student n: the verdict it prints."""
    out = ssh(info, n, "bin/lab run bare patched", timeout=600)
    found = re.search(r"^verdict: (\S+)", out.stdout, re.M)
    assert found, f"st0{n}: {out.stdout}{out.stderr}"
    return found[1]


# -- identity and files ---------------------------------------------------------------------------


def test_each_seat_is_a_user_of_its_own_who_can_change_no_ones_keys(room3: dict) -> None:
    uids = [ssh(room3, n, "id -u").stdout.strip() for n in range(1, SEATS + 1)]
    assert all(uids) and len(set(uids)) == SEATS, uids
    # st01 adds its key to st02's keys, and to its own: neither file is its to change
    key = Path(f"{room3['keys'][1]}.pub").read_text().strip()
    for target in ("st02", "st01"):
        tried = ssh(room3, 1, f"echo '{key}' >> /var/lib/badsum/labs/{target}/keys/student")
        assert tried.returncode != 0, target
    refused = ssh(room3, 2, "id -un", key=1, timeout=30)
    assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused.stdout + refused.stderr
    assert ssh(room3, 2, "id -un").stdout.strip() == "student"  # st02's own key still opens st02's seat


def test_nothing_of_another_seat_or_of_the_trainer_is_in_sight(room3: dict) -> None:
    looked = ssh(
        room3,
        1,
        f"ls /var/lib/badsum/labs; test -e {ROOT}/reproduce.yml && echo CHECKOUT; "
        "test -e /var/lib/badsum/workshop/room.json && echo ROOM; "
        "find / -name .lab-token -not -path '/proc/*' 2>/dev/null; "
        # a directory on the machine's own disk that the student may write to: none
        "find / -xdev -type d -writable -printf '%D %p\\n' 2>/dev/null | awk -v d=$(stat -c %d /) '$1 == d {print $2}'",
        timeout=120,
    )
    lines = looked.stdout.split()
    assert lines == ["st01", "/home/student/.lab-token"], looked.stdout + looked.stderr


def test_each_node_has_its_own_scratch_directories(room3: dict) -> None:
    mark = f"st01-{time.time_ns()}"
    wrote = ssh(room3, 1, f"for d in /tmp /var/tmp /dev/shm; do echo x > $d/{mark} || echo FAILED $d; done")
    assert wrote.returncode == 0 and "FAILED" not in wrote.stdout, wrote.stdout + wrote.stderr
    assert ssh(room3, 2, f"ls /tmp/{mark} /var/tmp/{mark} /dev/shm/{mark} 2>/dev/null").stdout == ""
    assert not any(Path(d, mark).exists() for d in ("/tmp", "/var/tmp", "/dev/shm"))  # nor the machine's


# -- processes ---------------------------------------------------------------------------------------


def test_a_seat_sees_and_signals_only_its_own_processes(room3: dict) -> None:
    # st02 leaves something running on its host A, as a student does
    started = ssh(room3, 2, "nohup sleep 600 >/dev/null 2>&1 & echo started")
    assert "started" in started.stdout
    mine = ssh(room3, 1, "ps -e -o user=,comm=").stdout.split("\n")
    assert mine and not any("sleep" in line for line in mine), mine
    assert {line.split()[0] for line in mine if line.strip()} <= {"root", "student"}
    # st01 signals every process it may: it ends its own session, and nothing of another seat
    assert ssh(room3, 1, "kill -9 -1; sleep 5", timeout=60).returncode != 0
    assert "sleep 600" in ssh(room3, 2, "ps -e -o args=").stdout  # st02's process goes on
    assert re.search(r"min left", ssh(room3, 2, "bin/lab time").stdout)


# -- the network ---------------------------------------------------------------------------------------


def test_another_seats_hosts_gateway_and_service_are_out_of_reach(room3: dict) -> None:
    own, other = room3["room"].seat("st01"), room3["room"].seat("st02")

    def reach(address: str, port: int) -> bool:
        return ssh(room3, 1, f"nc -z -w 2 {address} {port}", timeout=30).returncode == 0

    assert reach(own.service_address, room.API_PORT)  # the one thing on the machine a lab may reach
    assert not reach(other.host_a, 22)
    assert not reach(other.service_address, room.API_PORT)
    for port in (other.port, WEB, 22):  # st02's gateway, the web, the machine's sshd: through st01's bridge
        assert not reach(own.service_address, port), port


def test_idle_connections_do_not_lock_a_student_out(room3: dict) -> None:
    # More sockets than a seat's sessions, never logging in: they count against nobody's seat
    idle = [socket.create_connection(("127.0.0.1", PORT_BASE + 2), timeout=5) for _ in range(12)]
    try:
        time.sleep(1)
        assert ssh(room3, 2, "id -un", timeout=60).stdout.strip() == "student"
    finally:
        for sock in idle:
            sock.close()


# -- limits ------------------------------------------------------------------------------------------------

FORK_BOMB = """
import os, sys, time
children, stopped = 0, "bound"
end = time.monotonic() + 40
while children < 3000 and time.monotonic() < end:
    try:
        pid = os.fork()
    except OSError as exc:
        stopped = exc.strerror
        break
    if pid == 0:
        time.sleep(45)
        os._exit(0)
    children += 1
print(children, stopped, flush=True)
time.sleep(30)
"""
HOG = "b = b'x' * (4 << 30)\nprint('allocated 4 GiB', flush=True)"  # written: every page is really used


def test_a_fork_bomb_a_memory_hog_and_kill_all_in_one_seat_leave_the_others_working(room3: dict) -> None:
    pids = (getattr(room3["room"], "limits", None) or {}).get("pids")
    command = ["ssh", *SSH_OPTS, "-i", str(room3["keys"][1]), "-p", str(PORT_BASE + 1), "student@127.0.0.1"]
    bomb = subprocess.Popen([*command, f"python3 -c {shlex.quote(FORK_BOMB)}"], stdout=subprocess.PIPE, text=True)
    hog = subprocess.Popen([*command, f"python3 -c {shlex.quote(HOG)}"], stdout=subprocess.PIPE, text=True)
    try:
        forked = bomb.stdout.readline().split()
        assert forked, "the fork bomb said nothing"
        # held at the seat's limit, not at the bomb's own bound
        assert pids and int(forked[0]) < pids and forked[1] != "bound", f"forked {forked}, the seat's limit {pids}"
        with ThreadPoolExecutor(2) as pool:
            verdicts = list(pool.map(lambda n: verdict(room3, n), (2, 3)))
        assert verdicts == ["clean", "clean"]
        with urllib.request.urlopen(f"http://127.0.0.1:{WEB}/status.json", timeout=5) as answer:
            assert len(json.loads(answer.read())["students"]) == SEATS  # and the dashboard answers
        hog_out, _ = hog.communicate(timeout=120)
        assert "allocated" not in hog_out and hog.returncode != 0, (hog_out, hog.returncode)
    finally:
        for proc in (bomb, hog):
            proc.kill()
            proc.wait(30)
    # every process st01 may signal, at once: the other seats go on
    ssh(room3, 1, "kill -9 -1", timeout=60)
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(lambda n: verdict(room3, n), (2, 3))) == ["clean", "clean"]
    assert verdict(room3, 1) == "clean"  # and st01's own seat recovers: nothing of it was broken


# -- secrets ------------------------------------------------------------------------------------------------


def test_every_secret_is_private_from_its_first_byte(room3: dict) -> None:
    reset = traced(room3["tmp"] / "reset.strace", "workshop", "reset", "st03")
    assert reset.returncode == 0, reset.stdout + reset.stderr
    for trace in (room3["up_trace"], room3["tmp"] / "reset.strace"):
        made = created_secrets(trace)
        kinds = {
            name: sum(name in path for path, _ in made) for name in ("workshop/.room.", "account.json", ".lab-token")
        }
        kinds |= {name: sum(name in path for path, _ in made) for name in ("shadow", "keys/", "id_ed25519")}
        if trace.name == "up.strace":
            kinds["handouts"] = sum("handouts/" in path for path, _ in made)
            assert all(kinds.values()), kinds  # the trace saw every kind of secret being written
        exposed = [(path, oct(mode)) for path, mode in made if mode & 0o037]
        assert exposed == [], f"created readable by others ({trace.name}): {exposed}"
    # and now, where they rest
    for path in [room.ROOM, *room.ROOT.glob("st*/account.json"), *room.ROOT.glob("handouts/*")]:
        assert path.stat().st_mode & 0o077 == 0, path
    assert room.ROOT.stat().st_mode & 0o077 == 0


# -- the browser seat ---------------------------------------------------------------------------------------


def test_a_student_works_from_a_browser_and_a_wrong_password_gets_nothing(room3: dict, tmp_path: Path) -> None:
    seat, other = room3["room"].seat("st02"), room3["room"].seat("st03")
    browser = Browser(tmp_path / "profile")
    try:
        page = browser.page(f"http://127.0.0.1:{WEB}/seat/{seat.student}")
        page.wait_for(r"password: $", 30)
        page.type(seat.password)
        page.wait_for(r"student@host1:~\$", 30)
        page.type("lab run bare patched")
        shown = page.wait_for(r"^verdict: \S+", 300)
        assert re.search(r"^verdict: clean - ", shown, re.M), shown
        page.close()

        wrong = browser.page(f"http://127.0.0.1:{WEB}/seat/{other.student}")
        wrong.wait_for(r"password: $", 30)
        wrong.type(seat.password)  # another student's password
        shown = wrong.wait_for(r"Permission denied", 60)
        wrong.wait_for(r"the session is closed", 10)
        assert "student@host1" not in shown
        wrong.close()
    finally:
        browser.close()
    # no session of st03's account was ever opened on its host A
    sessions = ssh(room3, 3, "ps -e -o args=").stdout
    assert sessions.count("sshd: student@") == 1, sessions  # this very command's


def test_the_dashboard_is_the_trainers_and_the_seats_are_the_students(room3: dict) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{WEB}/seat/st01", timeout=5) as page:
        assert b"/static/xterm.js" in page.read()
    with urllib.request.urlopen(f"http://127.0.0.1:{WEB}/static/xterm.js", timeout=5) as script:
        assert b"Terminal" in script.read()
    with urllib.request.urlopen(f"http://127.0.0.1:{WEB}/status.json", timeout=5) as answer:
        assert len(json.loads(answer.read())["students"]) == SEATS
    # asked from another address than loopback (a lab bridge's, on this machine), the dashboard is refused
    own = room3["room"].seat("st01").service_address
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://{own}:{WEB}/status.json", timeout=5)
    assert refused.value.code == 403
    with urllib.request.urlopen(f"http://{own}:{WEB}/seat/st01", timeout=5) as page:
        assert page.status == 200
