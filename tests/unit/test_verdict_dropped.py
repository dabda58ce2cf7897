"""The 2020 verdict (valid-dropped) from planted evidence: each measurement that decides it, and only those.

A vxlan-nat cell's raw directory is planted as the experiment leaves it - the
counters host B's recorder read before and after, the client's record with
its connect time, the outer capture at host B decoded by capture.py, and
host A's NAT of the outer flows (condition stats) - and judged by the same
code as a real cell (results.build_cell_result). Each case changes one
measurement of the vulnerable or the patched cell and shows where it moves
the verdict; the expected table is never consulted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from badsum.analysis import incident, results, verdict
from synthetic import make_raw

# Measured on the embedded lab (prototype and kit): an emulated vulnerable cell and a patched one.
VULNERABLE = {"connect_s": 1.021, "udp_csum": 1, "bad_outer": 1, "natted": 1}
PATCHED = {"connect_s": 0.004, "udp_csum": 0, "bad_outer": 0, "natted": 1}


def plant(tmp: Path, condition: str, m: dict, *, flip: bool = False, missing: str = "") -> Path:
    raw = make_raw(tmp / "run", "vxlan-nat", condition, flip=flip, csum=0)
    for name in ("serve.json", "recv.json"):
        data = json.loads((raw / name).read_text())
        for ns, counters in data["counters"].items():
            counters["UdpInCsumErrors"] = 10 + (m["udp_csum"] if name == "recv.json" and ns == "host" else 0)
        if missing == "counter":
            for counters in data["counters"].values():
                counters.pop("UdpInCsumErrors")
        if name == "recv.json" and missing != "capture":
            bad = [f"198.19.0.11.4242 > 198.19.0.12.8472: [bad udp cksum 0xffff -> 0x5ac9!] OTV {i}"
                   for i in range(m["bad_outer"])]  # fmt: skip
            data["captures"] = {
                "tunnel-outer": {
                    "file": "tunnel-outer.pcap",
                    "incorrect": 0,
                    "samples": [],
                    "tunnel": {
                        "packets": 9,
                        "bad_udp_cksum": m["bad_outer"],
                        "no_cksum": 9 - m["bad_outer"],
                        "written": {"0xffff": m["bad_outer"]} if m["bad_outer"] else {},
                        "samples": bad,
                    },
                }
            }
        (raw / name).write_text(json.dumps(data))
    client = json.loads((raw / "client.json").read_text())
    if missing != "connect":
        client["connect_s"] = m["connect_s"]
    (raw / "client.json").write_text(json.dumps(client))
    if missing != "nat":
        (raw / "emulator.json").write_text(
            json.dumps(
                {
                    "bug": "vxlan-nat",
                    "outer_flows": 2,
                    "outer_flows_natted": m["natted"],
                    "counts": {"partial": 3, "natted": m["natted"], "rewritten": m["bad_outer"]},
                }
            )
        )
    return raw


def judge(tmp: Path, condition: str, m: dict, **kw) -> dict:
    return results.build_cell_result(plant(tmp, condition, m, **kw))


def test_a_vulnerable_cell_as_measured_is_valid_dropped(tmp_path: Path) -> None:
    cell = judge(tmp_path, "vulnerable", VULNERABLE)
    assert cell["verdict"] == verdict.DROPPED, cell["verdict_reason"]
    assert (cell["bug"], cell["incident"]) == ("vxlan-nat", "2020")
    assert cell["overlay"]["udp_csum_errors"] == 1 and cell["overlay"]["written"] == {"0xffff": 1}
    assert cell["connect_s"] == 1.021
    assert incident.expected("vxlan-nat", "vulnerable") == verdict.DROPPED


def test_a_patched_cell_as_measured_is_clean(tmp_path: Path) -> None:
    cell = judge(tmp_path, "patched", PATCHED)
    assert cell["verdict"] == verdict.CLEAN, cell["verdict_reason"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"udp_csum": 0}, "more bad outer checksums than host B counted"),  # the counter never moved
        ({"udp_csum": 2}, "the capture and the counter disagree"),  # dropped more than the capture saw
        ({"natted": 0}, "NAT rewrote no outer flow: not this bug"),
        ({"connect_s": 0.05}, "checksum drops without a stalled connection"),
        ({"bad_outer": 2}, "more bad outer checksums than host B counted"),
    ],
)
def test_each_measurement_of_a_dropped_cell_decides(tmp_path: Path, change: dict, reason: str) -> None:
    cell = judge(tmp_path, "vulnerable", {**VULNERABLE, **change})
    assert cell["verdict"] == verdict.INCONCLUSIVE
    assert reason in cell["verdict_reason"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"natted": 0}, "the hazard was not exercised"),  # kube-proxy after #92035: nothing proved
        ({"connect_s": 0.5}, "a slow connect without checksum drops"),
        ({"connect_s": 1.02}, "a slow connect without checksum drops"),
    ],
)
def test_each_measurement_of_a_clean_cell_decides(tmp_path: Path, change: dict, reason: str) -> None:
    cell = judge(tmp_path, "patched", {**PATCHED, **change})
    assert cell["verdict"] == verdict.INCONCLUSIVE
    assert reason in cell["verdict_reason"]


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ("connect", "the connect time"),
        ("counter", "UdpInCsumErrors"),
        ("capture", "the outer capture"),
        ("nat", "host A's NAT"),
    ],
)
def test_a_measurement_never_taken_is_never_a_zero(tmp_path: Path, missing: str, named: str) -> None:
    for condition, m in (("vulnerable", VULNERABLE), ("patched", PATCHED)):
        cell = judge(tmp_path / condition, condition, m, missing=missing)
        assert cell["verdict"] == verdict.INCONCLUSIVE
        assert named in cell["verdict_reason"]


def test_corrupt_data_is_corrupt_whatever_else(tmp_path: Path) -> None:
    assert judge(tmp_path, "vulnerable", VULNERABLE, flip=True)["verdict"] == verdict.CORRUPT


def test_a_2016_cell_is_still_judged_by_the_2016_rule(tmp_path: Path) -> None:
    """UdpInCsumErrors and a slow connect are no 2016 evidence: mesos keeps its own verdict."""
    cell = results.build_cell_result(make_raw(tmp_path, "mesos", "patched"))
    assert cell["bug"] == "veth" and cell["verdict"] == verdict.CLEAN and cell["overlay"] is None


def test_the_report_shows_the_2020_incidents_table_and_the_connection_times(tmp_path: Path) -> None:
    from badsum import report
    from synthetic import run_record

    run = tmp_path / "run"
    for condition, m in (("vulnerable", VULNERABLE), ("patched", PATCHED)):
        results.write_result(results.build_cell_result(plant(tmp_path, condition, m)), run)
    (run / "run.json").write_text(json.dumps(run_record(run, [("vxlan-nat", "vulnerable"), ("vxlan-nat", "patched")])))
    built = report.build(run)
    md = built["md"].read_text()
    assert "kubernetes#88986" in md and "Pandurangan" not in md and "2016 incident" not in md
    assert "every cell matches" in md
    assert "## Connection times" in md and "| vxlan-nat/vulnerable | 1.021 |" in md
    assert "host B counted UdpInCsumErrors +1" in md and "rewritten 1" in md and "bad udp cksum 0xffff" in md
    assert (run / "report-plots" / "connect-times.png").read_bytes().startswith(b"\x89PNG")
    assert "The 2020 incident" in built["html"].read_text()


def test_a_2016_report_keeps_the_2016_incident_and_has_no_connection_times(tmp_path: Path) -> None:
    from badsum import report
    from synthetic import make_run

    md = report.build(make_run(tmp_path))["md"].read_text()
    assert "corrupt TCP/IP data to Mesos" in md and "kubernetes#88986" not in md
    assert "## Connection times" not in md
