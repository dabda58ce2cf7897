"""One check per exercise (the exercise's own file says what it checks, and gives the hint on failure)."""

from __future__ import annotations

from conftest import not_tried_unless


def test_exercise_01(answer, cells) -> None:
    runs = [c for c in cells if c.is_("bare", "patched", "clean")]
    got = answer("01")
    not_tried_unless(got, runs)
    assert runs, "no bare patched run came out clean"
    assert got and got.word(1) == "tcpincsumerrors", "line 1 is not the counter that rose"
    rises = {c["csum_errors"]["host"]["TcpInCsumErrors"] for c in runs}
    assert got.number(2) in rises, f"line 2 is not how much it rose in a bare patched run ({sorted(rises)})"


def test_exercise_02(answer, cells) -> None:
    runs = [c for c in cells if c.is_("mesos", "vulnerable", "corrupt-delivered")]
    got = answer("02")
    not_tried_unless(got, runs)
    assert got and got.word(1) in ("clean", "corrupt-delivered"), "line 1 is not a verdict word"
    assert runs, "no mesos vulnerable run came out corrupt-delivered yet"
    assert any(got.mtime < c.started for c in runs), "the prediction was written after the run"


def test_exercise_03(answer, cells) -> None:
    runs = [c for c in cells if c.is_("mesos", "vulnerable") and c["capture"]]
    got = answer("03")
    not_tried_unless(got, runs)
    assert runs, "no mesos vulnerable run with --capture"
    counts = {
        (
            c["capture"]["incorrect_by_point"].get("host-b-eth0"),
            c["capture"]["incorrect_by_point"].get("container-eth0"),
        )
        for c in runs
    }
    assert got and (got.number(1), got.number(2)) in counts, f"the two counts are not a run's ({sorted(counts)})"


def test_exercise_04(answer, cells) -> None:
    runs = [
        c
        for c in cells
        if c.is_("mesos", "vulnerable", "clean")
        and (c["emulator"] or {}).get("packets_seen", 0) > 0
        and (c["emulator"] or {}).get("packets_marked_verified") == 0
    ]
    got = answer("04")
    not_tried_unless(got, runs)
    assert runs, "no clean mesos vulnerable run with rx off on the standing container"
    assert got and got.word(1) == "container", "line 1: which end is rcv for a packet into the container?"


def test_exercise_05(answer, cells) -> None:
    safe = [
        c for c in cells if c.is_("docker-nat", "vulnerable", "clean") and c["conntrack_checksum"] in ("", None, "1")
    ]
    broken = [
        c
        for c in cells
        if c.is_("docker-nat", "vulnerable", "corrupt-delivered") and str(c["conntrack_checksum"]) == "0"
    ]
    got = answer("05")
    not_tried_unless(got, safe, broken)
    assert safe, "no clean docker-nat vulnerable run"
    assert broken, "no corrupt-delivered docker-nat vulnerable run with --conntrack-checksum 0"
    assert got and got.word(1) in ("conntrack", "nf_conntrack"), "line 1 is not the subsystem"
    where = {ns for c in safe for ns, counters in c["csum_errors"].items() if counters.get("TcpInCsumErrors")}
    assert got.word(2) in where, f"line 2 is not where the clean run counted them ({sorted(where)})"


def test_exercise_06(answer, cells) -> None:
    bare = [c for c in cells if c.is_("bare", "patched") and c.article]
    mesos = [c for c in cells if c.is_("mesos", "vulnerable", "corrupt-delivered") and c.article]
    got = answer("06")
    not_tried_unless(got, bare, mesos)
    assert bare and mesos, "both article runs are needed: bare patched and mesos vulnerable, with --preset article"
    assert got and got.number(1) in {c["held_messages"]["count"] for c in bare}, "line 1 is not a held count"
    assert got.number(2) in {c["messages"]["corrupt"] for c in mesos}, "line 2 is not a corrupt count"


def test_exercise_07(answer, cells) -> None:
    from badsum.analysis.signature import bit_offsets_mod32

    runs = [c for c in cells if c.is_("mesos", "vulnerable", "corrupt-delivered") and c["pattern"] == "stuck-bit"]
    got = answer("07")
    not_tried_unless(got, runs)
    assert runs, "no mesos vulnerable --pattern stuck-bit run came out corrupt-delivered"
    shared = {next(iter(o)) for c in runs if len(o := bit_offsets_mod32(c.data)) == 1}
    assert got and got.number(1) in shared, f"line 1 is not the offset a run's damaged bytes share ({sorted(shared)})"


def test_exercise_08(answer, activity) -> None:
    steps = [(a["args"].get("step"), a["data"]) for a in activity if a["action"] == "fleet" and a["ok"]]
    got = answer("08")
    not_tried_unless(got, steps)
    order = ["audit", "remediate-check", "remediate", "audit", "rollback"]
    done, first_audit = 0, None
    for step, data in steps:
        if done < len(order) and step == order[done]:
            rows = {r["host"]: r for r in data.get("summary", {}).get("rows", [])}
            if done == 0:
                first_audit = rows.get("host2", {}).get("risk")
            if done == 3 and rows.get("host2", {}).get("risk") != "mitigated":
                continue  # that audit did not find host B mitigated: not this step yet
            done += 1
    assert done == len(order), f"done in order: {', '.join(order[:done]) or 'nothing'}; next: {order[done]}"
    assert got and got.word(1) == (first_audit or "?"), "line 1 is not host B's class in the first audit"


def test_exercise_09(answer, real_cells) -> None:
    real = [c for c in real_cells if c["topology"] == "mesos" and c["condition"] == "vulnerable"]
    got = answer("09")
    not_tried_unless(got)
    assert real, "your trainer has not shown a run on the real unfixed kernel yet"
    assert got.word(1) in ("yes", "no"), "line 1 is yes or no"
    truth = "yes" if real[0]["verdict"] == "corrupt-delivered" else "no"
    assert got.word(1) == truth, "look again at the mesos / vulnerable cell of the real (unfixed) table"


def test_exercise_10(answer, cells) -> None:
    def overlay(c) -> dict:
        return c["overlay"] or {}

    dropped = [
        c
        for c in cells
        if c.is_("vxlan-nat", "vulnerable", "valid-dropped")
        and overlay(c).get("udp_csum_errors") == overlay(c).get("bad_outer") >= 1
    ]
    # clean proves the fix only where host A's NAT rewrote the outer packets all the same
    fixed = [c for c in cells if c.is_("vxlan-nat", "workaround", "clean") and overlay(c).get("natted_flows", 0) >= 1]
    got = answer("10")
    not_tried_unless(got, dropped, fixed)
    assert dropped, "no vxlan-nat vulnerable run came out valid-dropped yet"
    assert fixed, "no vxlan-nat workaround run came out clean (with its outer flows NATed) yet"
    written = {value for c in dropped for value in (overlay(c).get("written") or {})}
    assert got and got.word(1) in written, "line 1 is not a value host A wrote into a dropped outer checksum"
    assert got.word(2) == "ip_summed", "line 2: the mark let NAT see the outer packet; what made it touch a 0?"
