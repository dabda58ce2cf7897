"""The workshop as a room uses it: two students side by side, logging in through the gateway with their own key.

Student st01 does every exercise through the `lab` command on host A, as the
handout says: each check first fails with its hint (a wrong answer), then
passes once the work is done. st02 proves the isolation (nothing of st01's
lab, nothing of the machine, only its own service), the dashboard (headless
Chromium) shows a check change, and a reset of st02 leaves st01 untouched.
Exercise 09 is checked against a recorded run of the real unfixed kernel
(tests/data/real-unfixed-run), published as a trainer would.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from badsum.host.shared.common import identity
from badsum.lab import cgroups
from badsum.workshop import firewall, room, status
from conftest import ROOT, badsum
from residue import badsum_programs, leftovers

PORT_BASE = 42200  # far from the defaults, so a trainer's own workshop ports are not these
DASHBOARD = 48081
REAL_RUN = ROOT / "tests" / "data" / "real-unfixed-run"
SSH_OPTS = [
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "ConnectTimeout=10",
]


@pytest.fixture(scope="module")
def workshop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    keys = tmp_path_factory.mktemp("keys")
    for n in (1, 2):  # a key each: a login with the other's key must be refused
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / f"id{n}")], check=True)
    badsum("workshop", "down", timeout=300)  # one an earlier, killed run left
    programs = badsum_programs()
    up = badsum(
        "workshop",
        "up",
        "--students",
        "2",
        "--hours",
        "1",
        "--listen",
        "127.0.0.1",
        "--port-base",
        str(PORT_BASE),
        "--dashboard-port",
        str(DASHBOARD),
        "--address",
        "127.0.0.1",
        "--key",
        f"st01={keys}/id1.pub",
        "--key",
        f"st02={keys}/id2.pub",
        timeout=300,
    )
    plan = room.load()
    assert plan is not None and len(plan.students) == 2, up.stdout
    info = {"room": plan, "keys": {1: keys / "id1", 2: keys / "id2"}, "up": up.stdout}
    yield info
    seen = processes("st01") | processes("st02") | processes("workshop")
    badsum("workshop", "down", timeout=300)
    deadline = time.monotonic() + 15  # the labs' BPF programs go with their namespaces, freed in the background
    while badsum_programs() - programs and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [f for s in ("st01", "st02") for f in leftovers(s, seen, programs_before=programs)] == []
    assert cgroups.leftovers("workshop") == [] and not firewall.installed() and not room.ROOT.exists()


def processes(cgroup: str) -> set[tuple[int, int]]:
    """Every process in a lab's (or the service's) cgroup, by identity (pid, start time)."""
    return {i for pid in cgroups.pids(cgroup) if (i := identity(pid))}


def student(
    info: dict, n: int, command: str, timeout: int = 600, check: bool = False, stdin: str = "", key: int | None = None
) -> subprocess.CompletedProcess:
    """A command as student n types it after `ssh -p PORT student@machine` (their key, through the gateway)."""
    proc = subprocess.run(
        [
            "ssh",
            *SSH_OPTS,
            "-o",
            "IdentitiesOnly=yes",
            "-i",
            str(info["keys"][key or n]),
            "-p",
            str(PORT_BASE + n),
            "student@127.0.0.1",
            command,
        ],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert not check or proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def lab(info: dict, n: int, args: str, timeout: int = 600) -> str:
    proc = student(info, n, f"bin/lab {args}", timeout=timeout)
    assert proc.returncode == 0, f"lab {args}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def run_cell(info: dict, args: str) -> dict:
    """`lab run ...` as st01, and the cell it made (read where the service keeps it)."""
    out = lab(info, 1, f"run {args}")
    run_id = re.search(r"^run (r\d{3}-\S+):", out, re.M)
    assert run_id, out
    cells = [p for p in (room.ROOT / "st01" / "results" / run_id[1]).glob("*-*.json") if p.name != "run.json"]
    assert len(cells) == 1, out
    return json.loads(cells[0].read_text())


def answer(info: dict, exercise: str, *lines: object) -> None:
    text = "\\n".join(str(line) for line in lines)
    student(info, 1, f"printf '{text}\\n' > answers/{exercise}.txt", check=True)


def checks(student_id: str) -> dict[str, dict]:
    """What `badsum workshop check` found, as the dashboard reads it."""
    proc = badsum("workshop", "check", student_id, check=False, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr
    return {row["student"]: row for row in json.loads(badsum("workshop", "status", "--json").stdout)["students"]}[
        student_id
    ]["exercises"]


def test_a_student_lands_on_host_a_of_their_own_lab_without_privileges(workshop: dict) -> None:
    seat = workshop["room"].seat("st01")
    out = student(workshop, 1, "id -un; ip -4 -o addr show; sudo -n true && echo ROOT || echo no-sudo", check=True)
    assert out.stdout.splitlines()[0] == "student"
    assert f"inet {seat.host_a}/" in out.stdout
    assert out.stdout.strip().endswith("no-sudo")
    assert re.search(r"^\d+ h \d+ min left$", lab(workshop, 1, "time"), re.M)


FORGED = """
import urllib.error, urllib.request
request = urllib.request.Request("{url}", data=b'{{"action": "time"}}', headers={{"X-Lab-Token": "{token}"}})
try:
    print(urllib.request.urlopen(request, timeout=5).status)
except urllib.error.HTTPError as exc:
    print(exc.code)
"""


def test_a_lab_reaches_its_own_hosts_and_service_and_nothing_else(workshop: dict) -> None:
    own, other = workshop["room"].seat("st01"), workshop["room"].seat("st02")
    own_b = own.spec().host(2).mgmt_v4

    def reach(address: str, port: int) -> bool:
        return student(workshop, 1, f"nc -z -w 2 {address} {port}", timeout=30).returncode == 0

    # Each student's key opens their own seat only.
    assert student(workshop, 2, "id -un", key=2).stdout.strip() == "student"
    refused = student(workshop, 2, "id -un", key=1, timeout=30)
    assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused.stderr
    assert reach(own_b, 22)  # host B of the same lab
    assert reach(own.service_address, room.API_PORT)  # the student's own service
    assert not reach(other.host_a, 22)  # another student's lab
    assert not reach(other.service_address, room.API_PORT)  # another student's service
    for port in (DASHBOARD, PORT_BASE + 2, 22):  # the machine's own ports, through the lab's bridge
        assert not reach(own.service_address, port), port
    # the token is a second proof: st02's token on st01's service is refused
    forged = student(
        workshop,
        1,
        "python3 -",
        timeout=30,
        stdin=FORGED.format(url=f"http://{own.service_address}:{room.API_PORT}/api", token=other.token),
    )
    assert forged.stdout.strip() == "403", forged.stderr


def test_every_exercise_check_fails_with_its_hint_then_passes_when_done(workshop: dict) -> None:
    hints = {e["id"]: e["hint"] for e in status.exercises()}
    assert list(hints) == [f"{n:02d}" for n in range(1, 11)]
    assert {e: r["state"] for e, r in checks("st01").items()} == dict.fromkeys(hints, "not-tried")

    for exercise in hints:  # a wrong answer, and none of the work
        answer(workshop, exercise, "maybe", "-1")
    found = checks("st01")
    assert {e: (r["state"], r["hint"]) for e, r in found.items()} == {e: ("fail", h) for e, h in hints.items()}

    answer(workshop, "02", "corrupt-delivered")  # a prediction: before the run
    time.sleep(1.1)  # the run must begin after it, by the clock's second
    bare = run_cell(workshop, "bare patched")
    answer(workshop, "01", "TcpInCsumErrors", bare["csum_errors"]["host"]["TcpInCsumErrors"])

    mesos = run_cell(workshop, "mesos vulnerable --capture")
    assert mesos["verdict"] == "corrupt-delivered"
    points = mesos["capture"]["incorrect_by_point"]
    answer(workshop, "03", points["host-b-eth0"], points["container-eth0"])

    lab(workshop, 1, "container mesos up")
    assert "rx-checksumming off" in lab(workshop, 1, "ethtool rx off")
    by_hand = run_cell(workshop, "mesos vulnerable")
    assert by_hand["verdict"] == "clean" and by_hand["emulator"]["packets_marked_verified"] == 0
    answer(workshop, "04", "container")

    nat = run_cell(workshop, "docker-nat vulnerable")
    assert nat["verdict"] == "clean"
    assert run_cell(workshop, "docker-nat vulnerable --conntrack-checksum 0")["verdict"] == "corrupt-delivered"
    where = next(ns for ns, counters in nat["csum_errors"].items() if counters.get("TcpInCsumErrors"))
    answer(workshop, "05", "conntrack", where)

    held = run_cell(workshop, "bare patched --preset article")["held_messages"]["count"]
    corrupt = run_cell(workshop, "mesos vulnerable --preset article")["messages"]["corrupt"]
    answer(workshop, "06", held, corrupt)

    stuck = run_cell(workshop, "mesos vulnerable --pattern stuck-bit")
    from badsum.analysis.signature import bit_offsets_mod32

    offsets = bit_offsets_mod32(stuck)
    assert len(offsets) == 1, offsets  # a stuck bit damages one place in every 32-bit word
    answer(workshop, "07", next(iter(offsets)))

    lab(workshop, 1, "container kubernetes up")  # the exercise's step 1: something on host B to protect
    first = lab(workshop, 1, "fleet audit")
    assert "rx-checksumming on" in lab(workshop, 1, "ethtool")
    lab(workshop, 1, "fleet remediate-check")
    assert "rx-checksumming on" in lab(workshop, 1, "ethtool")  # the dry run changed nothing
    lab(workshop, 1, "fleet remediate")
    assert re.search(r"^host2\s+ok\s+risk mitigated", lab(workshop, 1, "fleet audit"), re.M)
    assert "rx-checksumming off" in lab(workshop, 1, "ethtool")
    lab(workshop, 1, "fleet rollback")
    assert "rx-checksumming on" in lab(workshop, 1, "ethtool")  # put back as it was
    risk = re.search(r"^host2\s+ok\s+risk (\S+)", first, re.M)
    assert risk, first
    answer(workshop, "08", risk[1])

    badsum("workshop", "publish", str(REAL_RUN))
    answer(workshop, "09", "yes")

    dropped = run_cell(workshop, "vxlan-nat vulnerable")  # the 2020 bug: valid data dropped
    assert dropped["verdict"] == "valid-dropped", dropped["verdict_reason"]
    assert dropped["overlay"]["udp_csum_errors"] == dropped["overlay"]["bad_outer"] >= 1, dropped["overlay"]
    fixed = run_cell(workshop, "vxlan-nat workaround")
    assert fixed["verdict"] == "clean" and fixed["overlay"]["natted_flows"] >= 1, fixed["overlay"]
    answer(workshop, "10", next(iter(dropped["overlay"]["written"])), "ip_summed")

    found = checks("st01")
    assert {e: r["state"] for e, r in found.items()} == dict.fromkeys(hints, "pass"), found
    assert "01: pass" in lab(workshop, 1, "check 01")  # and the student's own `lab check` says so too


def dashboard(tmp_path: Path, name: str) -> str:
    browser = shutil.which("chromium")
    assert browser, "chromium is not installed: `make deps` installs Debian's chromium"
    proc = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / name}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            f"http://127.0.0.1:{DASHBOARD}/",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc.stdout


def states(dom: str, student_id: str) -> dict[str, str]:
    row = re.search(rf'<tr id="row-{student_id}">(.*?)</tr>', dom, re.S)
    assert row, dom[-2000:]
    return dict(re.findall(r'data-exercise="(\d\d)" data-state="([a-z-]+)"', row[1]))


def test_the_dashboard_shows_each_students_checks_as_they_change(workshop: dict, tmp_path: Path) -> None:
    before = dashboard(tmp_path, "before")
    assert states(before, "st02")["01"] == "not-tried"
    assert set(states(before, "st01").values()) <= {"pass", "fail", "not-tried"}
    student(workshop, 2, "echo nonsense > answers/01.txt", check=True)
    assert checks("st02")["01"]["state"] == "fail"
    after = dashboard(tmp_path, "after")
    assert states(after, "st02")["01"] == "fail"
    assert states(after, "st01") == states(before, "st01")  # nobody else's row moved


def test_a_reset_starts_one_student_over_and_leaves_the_others_untouched(workshop: dict) -> None:
    st01_processes = processes("st01")
    st01_checks = status.load_checks(workshop["room"].seat("st01"))
    st01_answers = student(workshop, 1, "ls answers", check=True).stdout
    badsum("workshop", "reset", "st02", timeout=300)
    assert processes("st01") == st01_processes
    assert status.load_checks(workshop["room"].seat("st01")) == st01_checks
    assert student(workshop, 1, "ls answers", check=True).stdout == st01_answers
    # st02 starts over: same login, an empty answers directory, nothing checked
    assert student(workshop, 2, "ls answers", check=True).stdout == ""
    assert {r["state"] for r in checks("st02").values()} == {"not-tried"}
