"""Workshop mode's parts that need no lab: the room's plan, the student's command line, the firewall's rules,
the handouts, the status table, the exercises' front matter, and how a check's outcome is read."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest

from badsum.lab.spec import LabError
from badsum.workshop import actions, checks, firewall, handout, room, status

ROOT = Path(__file__).resolve().parents[2]


def make_room(n: int = 3, hours: float = 2) -> room.Room:
    return room.plan(n, list(range(5, 5 + n)), "0.0.0.0", 2200, 8080, hours)


def test_a_room_gives_each_student_a_lab_a_port_a_password_and_a_token() -> None:
    r = make_room(3)
    assert [s.student for s in r.students] == ["st01", "st02", "st03"]
    assert [s.port for s in r.students] == [2201, 2202, 2203]
    assert [s.slot for s in r.students] == [5, 6, 7]
    assert len({s.password for s in r.students}) == 3 and len({s.token for s in r.students}) == 3
    assert all(len(s.password) == 14 and not set(s.password) & set("01lio") for s in r.students)
    assert r.students[0].host_a == "198.18.5.11" and r.students[0].service_address == "198.18.5.1"
    assert 2 * 3600 - 5 < r.seconds_left() <= 2 * 3600


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"students": 0}, "--students must be between 1 and 30"),
        ({"students": 31}, "--students must be between 1 and 30"),
        ({"slots": [1]}, "2 students need 2 free lab slots; this machine has 1 free"),
        ({"port_base": 80}, "--port-base must leave room"),
        ({"hours": 0}, "--hours must be above 0"),
    ],
)
def test_a_room_that_cannot_be_is_refused_before_anything_is_made(args: dict, message: str) -> None:
    call = {
        "students": 2,
        "slots": [1, 2],
        "listen": "0.0.0.0",
        "port_base": 2200,
        "dashboard_port": 8080,
        "hours": 1,
    } | args
    with pytest.raises(LabError, match=message):
        room.plan(**call)


def test_the_firewall_lets_a_lab_reach_only_the_service_and_forwards_nothing() -> None:
    r = make_room(2)
    v4 = firewall.rules(r, "iptables")
    lab1 = [rule for rule in v4["BADSUM-WS-IN"] if rule[1] == "st01-mgmt"]
    assert lab1 == [
        ["-i", "st01-mgmt", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
        ["-i", "st01-mgmt", "-p", "tcp", "-d", "198.18.5.1", "--dport", "8765", "-j", "ACCEPT"],
        ["-i", "st01-mgmt", "-j", "DROP"],  # last: nothing else new from the lab reaches the machine
    ]
    fwd = v4["BADSUM-WS-FWD"]
    assert fwd.index(["-i", "st02-mgmt", "-o", "st02-mgmt", "-j", "ACCEPT"]) < fwd.index(
        ["-o", "st02-mgmt", "-j", "DROP"]
    )
    v6 = firewall.rules(r, "ip6tables")["BADSUM-WS-IN"]
    assert ["-i", "st01-mgmt", "-p", "tcp", "-d", "fd00:b5:5::1", "--dport", "8765", "-j", "ACCEPT"] in v6


def load_student_lab():
    spec = importlib.util.spec_from_file_location("student_lab", ROOT / "tools/badsum/workshop/student_lab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["run", "mesos", "vulnerable", "--capture"],
            {"action": "run", "args": {"topology": "mesos", "condition": "vulnerable", "capture": True}},
        ),
        (
            ["run", "bare", "patched", "--preset", "article"],
            {"action": "run", "args": {"topology": "bare", "condition": "patched", "preset": "article"}},
        ),
        (
            ["run", "docker-nat", "vulnerable", "--conntrack-checksum", "0"],
            {"action": "run", "args": {"topology": "docker-nat", "condition": "vulnerable", "conntrack_checksum": "0"}},
        ),
        (["ethtool", "rx", "off"], {"action": "ethtool", "args": {"rx": "off"}}),
        (["ethtool"], {"action": "ethtool", "args": {}}),
        (["container", "mesos", "up"], {"action": "container", "args": {"topology": "mesos", "state": "up"}}),
        (["check", "04"], {"action": "check", "args": {"exercise": "04"}}),
        (["fleet", "remediate-check"], {"action": "fleet", "args": {"step": "remediate-check"}}),
    ],
)
def test_the_lab_command_turns_words_into_requests(argv: list[str], expected: dict) -> None:
    assert load_student_lab().parse(argv) == expected


def test_a_request_outside_the_list_is_refused_with_the_choices(tmp_path: Path, monkeypatch) -> None:
    r = make_room(1)
    seat = r.students[0]
    monkeypatch.setattr(room, "ROOT", tmp_path)
    answer = actions.carry_out(r, seat, {"action": "rm", "args": {}})
    assert answer["ok"] is False and "no action 'rm'" in answer["text"]
    answer = actions.carry_out(r, seat, {"action": "run", "args": {"topology": "mesos; reboot", "condition": "x"}})
    assert answer == {
        "ok": False,
        "text": "topology 'mesos; reboot': choose one of bare, mesos, kubernetes, docker-ipv6, docker-nat, vxlan-nat",
    }
    logged = [json.loads(line) for line in (tmp_path / "st01" / "activity.jsonl").read_text().splitlines()]
    assert [entry["ok"] for entry in logged] == [False]  # the refused run is on record; an unknown action is not
    r.deadline = time.time() - 1
    assert actions.carry_out(r, seat, {"action": "results"}) == {"ok": False, "text": "the workshop has ended"}


def test_every_exercise_says_what_it_checks_and_how_to_get_unstuck() -> None:
    found = status.exercises()
    assert [e["id"] for e in found] == [f"{n:02d}" for n in range(1, 11)]
    for e in found:
        assert e["title"] and e["check"] and e["hint"] and e["answer"] == f"answers/{e['id']}.txt", e["id"]
    tests = (ROOT / "exercises/checks/test_exercises.py").read_text()
    assert all(f"def test_exercise_{e['id']}(" in tests for e in found)


def test_the_status_table_shows_every_student_and_exercise(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(room, "ROOT", tmp_path)
    r = make_room(2)
    status.save_checks(r.students[1], {"01": {"state": "pass", "hint": ""}, "02": {"state": "fail", "hint": "h"}})
    data = status.table(r)
    assert [row["student"] for row in data["students"]] == ["st01", "st02"]
    assert data["students"][0]["exercises"]["01"] == {"state": "not-tried"}
    assert data["students"][1]["exercises"]["02"]["state"] == "fail"
    lines = status.text(r).splitlines()
    assert lines[2].startswith("st02") and " ok " in lines[2] and "  x " in lines[2]


def test_a_checks_outcome_is_pass_fail_with_the_hint_or_not_tried(tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    report.write_text(
        '<testsuites><testsuite><testcase name="test_exercise_01"/>'
        '<testcase name="test_exercise_02"><failure message="line 1 is not a verdict word&#10;detail"/></testcase>'
        '<testcase name="test_exercise_03"><skipped message="not tried yet"/></testcase></testsuite></testsuites>'
    )
    found = checks._outcomes(report, {"02": {"hint": "write the prediction first"}})
    assert found == {
        "01": {"state": "pass", "hint": ""},
        "02": {"state": "fail", "hint": "write the prediction first", "detail": "line 1 is not a verdict word"},
        "03": {"state": "not-tried", "hint": ""},
    }


def test_handouts_carry_each_students_own_login(tmp_path: Path) -> None:
    r = make_room(2)
    written = handout.write(r, "203.0.113.5", tmp_path)
    html = written[0].read_text()
    assert html.count("<section") == 2 and "ssh -p 2201 student@203.0.113.5" in html
    assert "http://203.0.113.5:8080/seat/st01" in html  # the browser seat: the same port as the dashboard
    assert "http://203.0.113.5:8080/seat/st02" in (tmp_path / "st02.md").read_text()
    assert r.students[1].password in (tmp_path / "st02.md").read_text()
    assert r.students[0].password not in (tmp_path / "st02.md").read_text()
    assert oct(written[0].stat().st_mode & 0o777) == "0o600"


# -- limits ---------------------------------------------------------------------------------

GIB = 2**30


def test_each_seat_gets_an_equal_part_of_the_machine_unless_told() -> None:
    from badsum.workshop import limits

    machine = {"total_memory": 24 * GIB, "total_tasks": 32768, "available": {"pids", "memory", "cpu"}}
    three = limits.plan(3, **machine)
    assert (three.pids, three.memory, three.cpu_weight) == (1024, 2 * GIB, 100)  # the caps: plenty each
    twenty = limits.plan(20, **machine)
    assert twenty.memory == int(24 * GIB * 0.75 / 20) and twenty.pids == int(32768 * 0.25 / 20)
    given = limits.plan(3, pids="200", memory="1G", cpu_weight="50", **machine)
    assert (given.pids, given.memory, given.cpu_weight) == (200, GIB, 50)
    assert limits.service(3, given).cpu_weight == 150  # the service weighs what every seat does, together


@pytest.mark.parametrize(
    ("students", "options", "message"),
    [
        (3, {"memory": "30G"}, r"--lab-memory 30G: allowed: 256 MiB to 6144 MiB per seat"),
        (3, {"memory": "lots"}, r"--lab-memory lots: 'lots' is not a size"),
        (3, {"memory": "100M"}, r"--lab-memory 100M: allowed: 256 MiB"),
        (3, {"pids": "10"}, r"--lab-pids 10: allowed: a whole number from 64 to 2730"),
        (3, {"pids": "-5"}, r"--lab-pids -5: allowed"),
        (3, {"cpu_weight": "0"}, r"--lab-cpu-weight 0: allowed: a whole number from 1 to 10000"),
        (30, {}, None),
        (30, {"memory": "1G"}, r"--lab-memory 1G: allowed: 256 MiB to 614 MiB per seat"),
    ],
)
def test_limits_that_cannot_be_kept_are_refused_naming_the_option(students, options, message) -> None:
    from badsum.workshop import limits

    machine = {"total_memory": 24 * GIB, "total_tasks": 32768, "available": {"pids", "memory", "cpu"}}
    if message is None:
        assert limits.plan(students, **options, **machine).memory >= 256 * 2**20
        return
    with pytest.raises(LabError, match=message):
        limits.plan(students, **options, **machine)


def test_a_machine_too_small_or_without_the_controllers_is_refused() -> None:
    from badsum.workshop import limits

    with pytest.raises(LabError, match=r"--students 30: each seat would have 154 MiB of memory"):
        limits.plan(30, total_memory=6 * GIB, total_tasks=32768, available={"pids", "memory", "cpu"})
    with pytest.raises(LabError, match="no cpu, pids controller"):
        limits.plan(3, total_memory=24 * GIB, total_tasks=32768, available={"memory"})


def test_a_labs_limits_go_to_each_hierarchys_own_files() -> None:
    from badsum.lab import cgroups

    limits = cgroups.Limits(pids=300, memory=GIB, cpu_weight=50)
    v1 = cgroups.Hierarchy(Path("/sys/fs/cgroup/memory"), 1, ("memory",))
    assert limits.files(v1) == {"memory.limit_in_bytes": str(GIB), "memory.memsw.limit_in_bytes": str(GIB)}
    assert limits.files(cgroups.Hierarchy(Path("/x"), 1, ("cpu",))) == {"cpu.shares": "512"}
    assert limits.files(cgroups.Hierarchy(Path("/x"), 1, ("freezer",))) == {}
    v2 = limits.files(cgroups.Hierarchy(Path("/x"), 2, ()))
    assert v2 == {"pids.max": "300", "memory.max": str(GIB), "memory.swap.max": "0", "cpu.weight": "50"}
    assert [cgroups.parse_size(t) for t in ("512M", "2G", "1.5g", "1024", "64KiB")] == [
        512 * 2**20,
        2 * GIB,
        int(1.5 * GIB),
        1024,
        64 * 1024,
    ]


# -- secrets ----------------------------------------------------------------------------------


def test_a_secret_is_private_from_its_first_byte_whatever_the_umask(tmp_path: Path, monkeypatch) -> None:
    import os

    from badsum import files

    seen = []
    real_open = os.open

    def watch(path, flags, mode=0o777, *args, **kwargs):  # the mode the file is created with
        fd = real_open(path, flags, mode, *args, **kwargs)
        seen.append((str(path), os.fstat(fd).st_mode & 0o777))
        return fd

    monkeypatch.setattr(os, "open", watch)
    old = os.umask(0)
    try:
        files.write_private(tmp_path / "room.json", "{}")
        files.write_private(tmp_path / "shadow", "x", 0o640)
    finally:
        os.umask(old)
    assert seen and all(mode & 0o077 in (0, 0o040) for _, mode in seen), seen
    assert oct((tmp_path / "room.json").stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "shadow").stat().st_mode & 0o777) == "0o640"
    # a file planted where the temporary one goes is not written through
    planted = tmp_path / f".room.json.{os.getpid()}.tmp"
    planted.symlink_to(tmp_path / "elsewhere")
    files.write_private(tmp_path / "room.json", "{}")
    assert not (tmp_path / "elsewhere").exists()


# -- the room's runs ------------------------------------------------------------------------------


def test_runs_are_shared_fairly_one_per_seat_in_flight() -> None:
    import threading

    from badsum.workshop import runs

    r = make_room(3)
    started: list[list[str]] = []
    release = threading.Event()

    def execute(batch):
        started.append([f"{q.seat.student}:{q.extra['n']}" for q in batch])
        release.wait(5)

    queue = runs.Runs(execute, gather=0.2, gather_max=1, at_once=2)
    a, b, c = r.students
    asked = [queue.submit(a, {"n": n}) for n in range(3)] + [queue.submit(b, {"n": 0})]
    deadline = time.monotonic() + 5
    while len(started) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    # one of st01's three, and st02's: st01's others wait, though a second batch could start
    assert started == [["st01:0", "st02:0"]]
    late = queue.submit(c, {"n": 0})
    while len(started) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started[1] == ["st03:0"]  # a late student does not wait for the whole batch before
    release.set()
    for request in [*asked, late]:
        assert request.done.wait(5)
    assert sorted(s for batch in started for s in batch if s.startswith("st01")) == ["st01:0", "st01:1", "st01:2"]
    assert all(sum(s.startswith("st01") for s in batch) <= 1 for batch in started)


def test_a_seats_run_is_planned_as_validate_plans_it(tmp_path: Path, monkeypatch) -> None:
    from badsum.workshop import runs

    monkeypatch.setattr(room, "ROOT", tmp_path)
    seat = make_room(2).students[1]  # its inventory as `badsum lab up` writes it: no lab needed
    extra = {
        "badsum_experiment_topologies": ["mesos"],
        "badsum_experiment_conditions": ["vulnerable"],
        "badsum_experiment_results_dir": str(tmp_path / "st02" / "results"),
        "badsum_experiment_run_id": "r001-mesos-vulnerable",
        "badsum_experiment_capture": True,
    }
    plan = runs.plan_seat(seat, extra)
    assert plan["servers"] == {
        "st02-host2": {
            "client": "st02-host1",
            "corruptor": "st02-switch",
            "corruption_iface": "p2",
            "corruption_hook": "egress",
            "cells": [
                {"topology": "mesos", "condition": "vulnerable", "name": "mesos-vulnerable", "server": "st02-host2"}
            ],
        }
    }
    assert plan["run_dir"] == str(tmp_path / "st02" / "results" / "r001-mesos-vulnerable")
    assert plan["settings"]["badsum_experiment_capture"] is True
    with pytest.raises(runs.RunRefused, match="badsum_experiment_rate=500: "):
        runs.plan_seat(seat, {**extra, "badsum_experiment_rate": 500})


# -- the service's bounds ---------------------------------------------------------------------------


@pytest.fixture
def api_server(monkeypatch):
    """start(carry_out) -> (room, port): one seat's API on 127.0.0.1, in a loop of its own, stopped after the test."""
    import asyncio
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from badsum.workshop import service

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    pool = ThreadPoolExecutor(4)
    servers = []

    def start(carry_out):
        r = make_room(1)
        monkeypatch.setattr(actions, "carry_out", carry_out)
        api = service.Api(r, pool)
        coro = asyncio.start_server(api._handler(r.students[0]), "127.0.0.1", 0, limit=service.MAX_HEAD)
        servers.append(loop.run_until_complete(coro))
        thread.start()
        return r, servers[0].sockets[0].getsockname()[1]

    yield start

    async def shutdown() -> None:  # every connection's handler ended, not left to the garbage collector
        for server in servers:
            server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    if thread.is_alive():
        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    loop.close()
    pool.shutdown(wait=True)


def _talk(port: int, data: bytes, slow: float = 0) -> bytes:
    """What the service answers to these bytes; b"" when it closed the connection unanswered (or reset it)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        chunks = []
        try:
            for piece in [bytes([b]) for b in data] if slow else [data]:
                sock.sendall(piece)
                time.sleep(slow)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it stopped listening: what did it say?
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        return b"".join(chunks)


def test_the_students_api_reads_a_bounded_request_in_bounded_time(api_server, monkeypatch) -> None:
    from badsum.workshop import service

    monkeypatch.setattr(service, "READ_TIMEOUT", 1.0)
    asked = []

    def carry_out(room_, seat, body):
        asked.append(body)
        return {"ok": True, "text": body.get("action")}

    r, port = api_server(carry_out)
    token = r.students[0].token

    def post(body: bytes, headers: str = "") -> bytes:
        head = f"POST /api HTTP/1.1\r\nX-Lab-Token: {token}\r\nContent-Length: {len(body)}\r\n{headers}\r\n"
        return _talk(port, head.encode() + body)

    assert b'"text": "time"' in post(b'{"action": "time"}')
    assert b" 403 " in _talk(port, b"POST /api HTTP/1.1\r\nX-Lab-Token: nope\r\nContent-Length: 2\r\n\r\n{}")
    assert b" 400 " in post(b"x" * (service.MAX_BODY + 1))
    answer = post(b"{}", "X-Junk: " + "a" * service.MAX_HEAD + "\r\n")
    assert b" 431 " in answer or answer == b""  # refused as it came (the reply may be lost in the reset)
    started = time.monotonic()
    slow = _talk(port, b"POST /api HTTP/1.1\r\nX-Lab-Token: " + token.encode(), slow=0.2)  # a slowloris
    assert b" 408 " in slow and time.monotonic() - started < 1.0 + 0.2 * 60
    assert [a.get("action") for a in asked] == ["time"]  # nothing but the one whole request was carried out


def test_a_seat_holds_a_bounded_number_of_connections_and_requests(api_server) -> None:
    import socket
    import threading

    from badsum.workshop import service

    gate = threading.Event()

    def slow_action(room_, seat, body):
        gate.wait(10)
        return {"ok": True, "text": "done"}

    r, port = api_server(slow_action)
    body = b'{"action": "run"}'
    request = (
        f"POST /api HTTP/1.1\r\nX-Lab-Token: {r.students[0].token}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    held = []
    for _ in range(service.REQUESTS_PER_SEAT):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(request)
        held.append(sock)
    time.sleep(0.3)
    assert b" 429 " in _talk(port, request)  # a third request while two are in progress
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
    time.sleep(0.3)
    assert _talk(port, request) == b""  # over API_CONNECTIONS: closed at once, unanswered
    gate.set()
    try:
        assert all(b'"text": "done"' in sock.recv(65536) for sock in held)
    finally:
        for sock in held + idle:
            sock.close()


def test_sessions_count_only_logins_against_a_seat_and_pending_ones_per_source() -> None:
    from badsum.workshop import gateway

    r = make_room(2)
    sessions = gateway.Sessions(r)
    st01, st02 = r.students
    for _ in range(gateway.UNAUTHENTICATED_PER_SOURCE):  # idle sockets: they never log in
        assert sessions.refuse_new(st01, "192.0.2.7") is None
        sessions.begin("192.0.2.7")
    assert "are not logged in yet" in sessions.refuse_new(st01, "192.0.2.7")
    assert sessions.refuse_new(st01, "192.0.2.8") is None  # the student, from elsewhere, still gets in
    for _ in range(gateway.MAX_SESSIONS):
        sessions.begin("192.0.2.8")
        assert sessions.logged_in(st01, "192.0.2.8")
    assert "sessions open already" in sessions.refuse_new(st01, "192.0.2.8")
    assert sessions.refuse_new(st02, "192.0.2.8") is None  # another seat is not affected
    sessions.end(st01, "192.0.2.8", authenticated=True)
    assert sessions.refuse_new(st01, "192.0.2.8") is None
    r.deadline = time.time() - 1
    assert sessions.refuse_new(st02, "192.0.2.8") == "the workshop has ended"
