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
    spec = importlib.util.spec_from_file_location("student_lab", ROOT / "badsum/workshop/student_lab.py")
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
        "text": "topology 'mesos; reboot': choose one of bare, mesos, kubernetes, docker-ipv6, docker-nat",
    }
    logged = [json.loads(line) for line in (tmp_path / "st01" / "activity.jsonl").read_text().splitlines()]
    assert [entry["ok"] for entry in logged] == [False]  # the refused run is on record; an unknown action is not
    r.deadline = time.time() - 1
    assert actions.carry_out(r, seat, {"action": "results"}) == {"ok": False, "text": "the workshop has ended"}


def test_every_exercise_says_what_it_checks_and_how_to_get_unstuck() -> None:
    found = status.exercises()
    assert [e["id"] for e in found] == [f"{n:02d}" for n in range(1, 10)]
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
    assert r.students[1].password in (tmp_path / "st02.md").read_text()
    assert r.students[0].password not in (tmp_path / "st02.md").read_text()
    assert oct(written[0].stat().st_mode & 0o777) == "0o600"
