"""The fleet's reports for operators' tools: node_exporter textfiles, JUnit XML, AWX's set_stats counts.

Untrusted text (host names, reasons with interface names that are bytes) runs
through all of them: each must stay valid for the tool that reads it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from badsum.fleet import records, report, stats, textfiles
from badsum.fleet import settings as fleet
from badsum.host import HostError, call
from badsum.host.shared import metrics

ROOT = Path(__file__).resolve().parents[2]
NASTY = 'n"o\\de\n\udcff\x00é'  # quote, backslash, newline, a byte that was not UTF-8, NUL, non-ASCII
CLASSES = (*metrics.RISKS, metrics.UNKNOWN)


def audit_result(risk: str = "exposed", **over) -> dict:
    """What `audit show` returns, the parts the reports read."""
    return {
        "risk": risk,
        "reason": "1 of 2 container veths receive with rx on: \udcffeth0 (docker container abc)",
        "kernel": {"release": "3.10.0-1160.el7.x86_64", "status": "unfixed", "reason": "3.10.0 < 3.10.96"},
        "probe": {"verdict": "vulnerable", "kind": "real", "reason": "delivered"},
        "vulnerable": "yes",
        "decided_by": "probe (real): delivered",
        "container_veths": 2,
        "container_veths_rx_on": 1,
        "runtimes": {"docker": 1},
        "guard": {"running": False, "mode": None},
        "remediation": {"recorded": False, "at": None},
        "seconds": 0.123,
        **over,
    }


MITIGATED = audit_result(
    "mitigated",
    container_veths_rx_on=0,
    guard={"running": True},
    remediation={"recorded": True},
    reason="all off",
    vxlan={"risk": "mitigated", "devices": [{"ifname": "flannel.1", "affected": True, "tx_csum_generic": "off"}]},
)


# -- the text format --------------------------------------------------------------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'  # the only escapes the format has: \\ \" \n
SAMPLE = re.compile(
    rf"^({NAME})(?:\{{([a-zA-Z_][a-zA-Z0-9_]*={LABEL_VALUE}(?:,[a-zA-Z_][a-zA-Z0-9_]*={LABEL_VALUE})*)\}})? (\S+)$"
)
NUMBER = re.compile(r"^(?:[+-]?\d+(?:\.\d+)?(?:e[+-]?\d+)?|NaN|[+-]Inf)$")


def strict_families(text: str) -> dict[str, list[tuple[str, str]]]:
    """A strict reading of the text format as node_exporter's textfile collector wants it.

    Each family: one HELP, one TYPE (gauge), then its samples together; label
    values with only the format's escapes; a number and no timestamp (the
    collector refuses files with timestamps); the file ends with a newline.
    """
    assert text.endswith("\n") and not text.endswith("\n\n")
    text.encode("utf-8")  # valid UTF-8: no lone surrogate
    families: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert re.fullmatch(NAME, name) and name not in families, line
            families[name], current = [], name
            continue
        if line.startswith("# TYPE "):
            assert line == f"# TYPE {current} gauge", line
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        assert match.group(1) == current, f"{match.group(1)} outside its family {current}"
        assert NUMBER.match(match.group(3)), line
        families[current].append((match.group(2) or "", match.group(3)))
    return families


def parsed(text: str) -> dict:
    """The Prometheus client's own parser: name -> (type, documentation, {labels: value})."""
    return {
        f.name: (f.type, f.documentation, {tuple(sorted(s.labels.items())): s.value for s in f.samples})
        for f in text_string_to_metric_families(text)
    }


def test_a_host_text_is_valid_exposition_with_conventional_names() -> None:
    text = metrics.render("remediate", MITIGATED, True, 3, 1765000000.25)
    families = strict_families(text)
    assert list(families) == [name for name, _ in metrics.FAMILIES]  # every family, in order, when the audit has it
    back = parsed(text)
    assert set(back) == set(families)
    for name, (kind, doc, samples) in back.items():
        assert kind == "gauge" and doc == metrics.HELP[name] and samples
        assert name.startswith("badsum_") and not name.endswith("_total")  # counters only end in _total
        assert not re.search(r"_(ms|milliseconds|minutes|hours|timestamp)$", name)  # base units: seconds
    assert back["badsum_host_risk"][2][(("class", "mitigated"),)] == 1
    assert back["badsum_kernel_vulnerable"][2][(("state", "yes"),)] == 1
    assert back["badsum_kernel_info"][2] == {(("evidence", "probe-real"), ("release", "3.10.0-1160.el7.x86_64")): 1}
    assert back["badsum_container_veths"][2] == {(): 2} and back["badsum_container_veths_rx_on"][2] == {(): 0}
    assert back["badsum_guard_up"][2] == {(): 1} and back["badsum_remediation_recorded"][2] == {(): 1}
    assert back["badsum_audit_duration_seconds"][2] == {(): 0.123}
    run = (("phase", "remediate"),)
    assert back["badsum_last_run_timestamp_seconds"][2] == {run: 1765000000.25}
    assert back["badsum_last_run_success"][2] == {run: 1} and back["badsum_last_run_changes"][2] == {run: 3}
    assert back["badsum_last_run_check_mode"][2] == {run: 0}


@pytest.mark.parametrize("risk", [*CLASSES, "", None, "a-class-from-a-newer-kit"])
def test_the_risk_gauge_is_one_hot_over_every_class(risk) -> None:
    audit = audit_result(risk) if risk is not None else None
    samples = parsed(metrics.render("audit", audit, True, 0, 1.0))["badsum_host_risk"][2]
    assert sorted(samples) == sorted((("class", c),) for c in CLASSES)  # every class, always
    ones = [labels[0][1] for labels, value in samples.items() if value == 1]
    assert ones == [risk if risk in metrics.RISKS else metrics.UNKNOWN]
    assert sum(samples.values()) == 1


@pytest.mark.parametrize("vulnerable", metrics.VULNERABLE)
def test_the_kernel_state_is_one_hot(vulnerable) -> None:
    samples = parsed(metrics.render("audit", audit_result(vulnerable=vulnerable), True, 0, 1.0))
    gauge = samples["badsum_kernel_vulnerable"][2]
    assert {labels[0][1]: value for labels, value in gauge.items()} == {
        v: int(v == vulnerable) for v in ("yes", "no", "unknown")
    }


def test_a_host_the_run_could_not_read_has_no_made_up_state() -> None:
    back = parsed(metrics.render("remediate", None, False, 0, 5.0))
    own = {"badsum_host_risk", "badsum_host_vxlan_risk"}
    assert set(back) == {*own, *(n for n, _ in metrics.FAMILIES if n.startswith("badsum_last_run_"))}
    assert back["badsum_host_risk"][2][(("class", "unknown"),)] == 1
    assert back["badsum_host_vxlan_risk"][2][(("class", "unknown"),)] == 1
    assert back["badsum_last_run_success"][2] == {(("phase", "remediate"),): 0}


def test_untrusted_text_in_labels_is_escaped_and_reads_back_as_shown() -> None:
    audit = audit_result(kernel={"release": NASTY, "status": "unknown", "reason": "?"})
    samples = [(n, (("host", NASTY), *labels), v) for n, labels, v in metrics.series("audit", audit, True, 0, 1.0)]
    text = metrics.exposition(samples)
    families = strict_families(text)  # one line per sample: the newline did not break out
    assert len(families["badsum_host_risk"]) == len(CLASSES)
    shown = metrics.printable(NASTY)
    assert "\\x00" in shown and "\\xff" in shown and "\x00" not in shown
    back = parsed(text)
    assert {dict(k)["host"] for k in back["badsum_host_risk"][2]} == {shown}  # the escapes undo exactly
    assert dict(next(iter(back["badsum_kernel_info"][2])))["release"] == shown


def test_help_texts_need_no_escaping() -> None:
    for name, text in metrics.FAMILIES:
        assert "\\" not in text and "\n" not in text and re.fullmatch(r"badsum_[a-z_]+", name)


def test_the_host_kit_metrics_module_runs_on_python_36() -> None:
    """Fleet hosts of the RHEL 7 era have Python 3.6: vermin reads the module for anything newer."""
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "vermin"),
            "--target=3.6-",
            "--violations",
            "--eval-annotations",
            "--no-tips",
            "-vv",
            str(ROOT / "tools/badsum/host/shared/metrics.py"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr  # it names each construct and the version it needs


# -- the textfile on the host -----------------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the textfile directory must be root's: run as root")


@pytest.fixture
def textfile_dir(tmp_path: Path) -> Path:
    os.chmod(tmp_path, 0o755)  # pytest's tmp_path parents are root's alone, 0700
    (tmp_path / "textfile").mkdir(mode=0o755)
    return tmp_path / "textfile"


@needs_root
def test_the_textfile_is_written_whole_with_a_name_node_exporter_ignores_meanwhile(textfile_dir: Path) -> None:
    stale, fresh = textfile_dir / ".badsum.prom.1.tmp", textfile_dir / ".badsum.prom.2.tmp"
    stale.write_text("half")
    os.utime(stale, (time.time() - 3600,) * 2)  # a writer killed an hour ago
    fresh.write_text("half")  # another writer, now
    old = os.umask(0o077)
    try:
        path = metrics.write(str(textfile_dir), "badsum_guard_up 1\n")
    finally:
        os.umask(old)
    assert path == str(textfile_dir / "badsum.prom")
    assert (textfile_dir / "badsum.prom").read_text() == "badsum_guard_up 1\n"
    assert (textfile_dir / "badsum.prom").stat().st_mode & 0o777 == 0o644  # node_exporter runs as its own user
    assert sorted(p.name for p in textfile_dir.iterdir()) == [".badsum.prom.2.tmp", "badsum.prom"]


@needs_root
def test_a_write_that_fails_leaves_the_last_textfile_and_no_temporary_one(
    textfile_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics.write(str(textfile_dir), "badsum_guard_up 1\n")

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(metrics.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        metrics.write(str(textfile_dir), "badsum_guard_up 0\n")
    assert [p.name for p in textfile_dir.iterdir()] == ["badsum.prom"]
    assert (textfile_dir / "badsum.prom").read_text() == "badsum_guard_up 1\n"


@needs_root
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: os.chown(d, 65534, 0), "owned by uid 65534, not root"),
        (lambda d: os.chmod(d, 0o777), "writable by every user (mode 0777)"),
        (lambda d: os.chmod(d, 0o1777), "writable by every user (mode 1777)"),  # sticky: still not root's alone
        (lambda d: (os.chown(d, 0, 65534), os.chmod(d, 0o775)), "writable by group 65534"),
        (lambda d: os.chmod(d.parent, 0o777), "(a parent) is writable by every user"),
        (lambda d: os.chown(d.parent, 65534, 0), "(a parent) is owned by uid 65534"),
        (lambda d: (d.rmdir(), d.write_text("")), "is not a directory"),
        (lambda d: d.rmdir(), "No such file or directory; create it where node_exporter's"),
    ],
)
def test_a_textfile_directory_that_is_not_roots_alone_is_refused(textfile_dir: Path, make, message: str) -> None:
    make(textfile_dir)
    with pytest.raises(metrics.TextfileError, match=re.escape(message)):
        metrics.write(str(textfile_dir), "x 1\n")
    assert not (textfile_dir.is_dir() and any(textfile_dir.iterdir()))


@needs_root
def test_a_sticky_parent_like_tmp_is_fine_and_a_relative_path_is_not(textfile_dir: Path) -> None:
    os.chmod(textfile_dir.parent, 0o1777)
    assert metrics.check_dir(str(textfile_dir)) == str(textfile_dir)
    with pytest.raises(metrics.TextfileError, match="not an absolute path"):
        metrics.check_dir("var/lib/node_exporter")


# Every option the fleet passes but the textfile's: the call must stop at that one.
CNI = ["--cni-conf-dir", "/nonexistent/net.d", "--cni-bin-dir", "/nonexistent/bin"]


@needs_root
@pytest.mark.parametrize(
    ("tool", "argv"),
    [
        ("audit", ["show", "--no-probe", *CNI]),
        (
            "remediate",
            ["rollout", "--no-probe", "--guard", "none", "--interval", "60", "--vxlan", "never", "--wait", "2", *CNI],
        ),
        ("remediate", ["rollback", *CNI]),
    ],
)
def test_a_bad_textfile_directory_stops_the_call_before_it_does_anything(tool: str, argv: list[str]) -> None:
    with pytest.raises(
        HostError, match=r"argument --textfile-dir: /nonexistent/x: No such file .*badsum_fleet_textfile_dir"
    ):
        call(tool, [*argv, "--textfile-dir", "/nonexistent/x"])


def host_results(phase: str) -> dict:
    """What each fleet call returns on a host (the parts the textfile and the record read)."""
    if phase == "audit":
        return audit_result()
    if phase == "remediate":
        apply = {"changes": ["rx-checksumming on -> off: eth0 in docker container abc", "start the guard (daemon)"]}
        return {"changed": True, "before": audit_result(), "apply": apply, "verify": {"ok": True}, "after": MITIGATED}
    return {
        "changed": True,
        "changes": ["rx-checksumming off -> on: eth0 in docker container abc"],
        "after": audit_result(),
    }


@needs_root
@pytest.mark.parametrize("phase", ["audit", "remediate", "rollback"])
def test_the_hosts_textfile_is_the_text_the_controller_writes_for_it(textfile_dir: Path, phase: str) -> None:
    args = argparse.Namespace(textfile_dir=str(textfile_dir), check=False)
    result = metrics.publish(args, phase, host_results(phase))
    assert not result.get("failed") and result["textfile"]["path"] == str(textfile_dir / "badsum.prom")
    on_host = (textfile_dir / "badsum.prom").read_text()
    # The same result, travelled through Ansible (JSON) into the controller's record.
    rec = records.record("h1", phase, json.loads(json.dumps(result)))
    plan = {"playbook": phase, "run_id": "r", "hosts": ["h1"], "check_mode": False}
    assert metrics.exposition(textfiles.series(plan, rec, now=0.0)) == on_host
    risk = parsed(on_host)["badsum_host_risk"][2]
    assert risk[(("class", "mitigated" if phase == "remediate" else "exposed"),)] == 1
    assert parsed(on_host)["badsum_last_run_changes"][2] == {(("phase", phase),): len(rec.get("changes") or [])}


@needs_root
@pytest.mark.parametrize("phase", ["remediate", "rollback"])
def test_check_mode_writes_no_textfile(textfile_dir: Path, phase: str) -> None:
    result = metrics.publish(argparse.Namespace(textfile_dir=str(textfile_dir), check=True), phase, host_results(phase))
    assert "textfile" not in result and list(textfile_dir.iterdir()) == []
    off = metrics.publish(argparse.Namespace(textfile_dir="", check=False), phase, host_results(phase))
    assert "textfile" not in off and list(textfile_dir.iterdir()) == []


@needs_root
def test_a_textfile_that_cannot_be_written_fails_the_call_and_keeps_what_it_found(textfile_dir: Path) -> None:
    args = argparse.Namespace(textfile_dir=str(textfile_dir), check=False)
    os.chmod(textfile_dir, 0o777)  # after the options were read: changed under the call's feet
    result = metrics.publish(args, "remediate", host_results("remediate"))
    assert result["failed"] and "writable by every user" in result["msg"] and "--textfile-dir" in result["msg"]
    assert result["after"] == MITIGATED and result["apply"]["changes"]  # the remediation's record is not lost
    assert list(textfile_dir.iterdir()) == []


# -- the run's files on the controller: metrics, JUnit, the counts ----------------------------------


# A host name as odd as a file name may be (no NUL, no slash): a quote, a backslash, a newline, a byte that
# was not UTF-8, a control character.
ODD_HOST = 'n"o\\de\n\udcff\x07é'


def fleet_run(tmp_path: Path, phase: str, check_mode: bool = False) -> tuple[Path, dict]:
    """A run of 8 hosts, one of each outcome: the hosts' records as badsum.kit.run makes them."""
    hosts = ["ok-exposed", "fixed", "failed", "down", ODD_HOST, "never", "broken", "retired"]
    plan = {
        "playbook": phase,
        "run_id": f"r-{phase}",
        "hosts": hosts,
        "run_dir": str(tmp_path),
        "check_mode": check_mode,
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))

    def result(before: dict, after: dict) -> dict:
        if phase == "audit":
            return before
        if phase == "remediate":
            return {
                "changed": True,
                "before": before,
                "after": None if check_mode else after,
                "apply": {"changes": ["x"]},
            }
        return {"changed": True, "changes": ["y"], "after": None if check_mode else before}

    still = audit_result(reason="still: \udcffeth0 has rx on")
    outcomes = {
        "ok-exposed": (result(audit_result(), MITIGATED), "", 1.5),
        "fixed": (result(audit_result("patched"), audit_result("patched")), "", 0.0),
        "failed": ({"failed": True, "msg": "boom"}, "Remediate: boom \x07", 0.0),
        "down": ({"unreachable": True, "msg": "ssh: timed out"}, "", 0.0),
        ODD_HOST: (result(still, still), "", 0.0),
        "retired": (result(audit_result("obsolete-workaround"), audit_result("patched")), "", 0.0),
    }
    recs = {h: records.record(h, phase, r, error, check_mode, seconds) for h, (r, error, seconds) in outcomes.items()}
    records.save(tmp_path, recs)
    (tmp_path / "hosts" / "broken.json").write_text("{not json")
    return tmp_path, plan


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("web-01.example.com", "web-01.example.com.prom"),
        ("../../etc/cron.d/x", "%2E%2E%2F%2E%2E%2Fetc%2Fcron%2Ed%2Fx.prom"),
        (".hidden", "%2Ehidden.prom"),  # node_exporter would still read it; ls would not show it
        (ODD_HOST, "n%22o%5Cde%0A%FF%07%C3%A9.prom"),
    ],
)
def test_a_host_name_becomes_a_plain_file_name_in_metrics(tmp_path: Path, host: str, name: str) -> None:
    assert textfiles.file_name(host) == name
    plan = {"playbook": "audit", "run_id": "r", "hosts": [host], "run_dir": str(tmp_path)}
    textfiles.write(tmp_path, plan, {}, now=1.0)
    assert [p.name for p in (tmp_path / "metrics").iterdir()] == [name]


@pytest.mark.parametrize("phase", ["audit", "remediate", "rollback"])
def test_every_host_of_the_plan_gets_a_textfile_and_a_line_in_fleet_prom(tmp_path: Path, phase: str) -> None:
    run_dir, plan = fleet_run(tmp_path, phase)
    out = report.write(run_dir)
    files = sorted(p.name for p in (run_dir / "metrics").iterdir())
    assert len(files) == len(plan["hosts"]) and all(f.endswith(".prom") and "/" not in f for f in files)
    assert textfiles.file_name(ODD_HOST) in files and not textfiles.file_name(ODD_HOST).startswith(".")
    fleet_text = (run_dir / "fleet.prom").read_text()
    strict_families(fleet_text)
    risk = parsed(fleet_text)["badsum_host_risk"][2]
    per_host: dict[str, int] = {}
    for labels, value in risk.items():
        per_host[dict(labels)["host"]] = per_host.get(dict(labels)["host"], 0) + value
    assert per_host == {metrics.printable(h): 1 for h in plan["hosts"]}  # one-hot for each host
    never = parsed((run_dir / "metrics" / "never.prom").read_text())
    assert never["badsum_host_risk"][2][(("class", "unknown"),)] == 1
    assert never["badsum_last_run_success"][2] == {(("phase", phase),): 0}
    assert out["files"]["junit"] == str(run_dir / "junit.xml")


# What the CI systems that read JUnit accept (the Ant/Jenkins shape): elements and their attributes.
JUNIT_SHAPE = {
    "testsuites": {"name", "tests", "failures", "errors", "skipped", "time"},
    "testsuite": {"name", "tests", "failures", "errors", "skipped", "time", "timestamp", "hostname"},
    "properties": set(),
    "property": {"name", "value"},
    "testcase": {"name", "classname", "time"},
    "failure": {"message", "type"},
    "error": {"message", "type"},
    "system-out": set(),
}


def read_junit(run_dir: Path) -> ET.Element:
    data = (run_dir / "junit.xml").read_bytes()
    assert data.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    root = ET.fromstring(data)  # expat: any character XML 1.0 forbids would fail here
    for element in root.iter():
        assert element.tag in JUNIT_SHAPE and set(element.attrib) <= JUNIT_SHAPE[element.tag], element.tag
    return root


@pytest.mark.parametrize(
    ("phase", "check_mode"), [("audit", False), ("remediate", False), ("remediate", True), ("rollback", False)]
)
def test_junit_has_one_test_case_per_planned_host_failing_where_the_run_fails(
    tmp_path: Path, phase, check_mode
) -> None:
    run_dir, plan = fleet_run(tmp_path, phase, check_mode)
    out = report.write(run_dir)
    root = read_junit(run_dir)
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [metrics.printable(h) for h in plan["hosts"]]
    verdicts = {c.get("name"): next((e for e in c if e.tag in ("failure", "error")), None) for c in cases}
    failures = {h: e.get("type") for h, e in verdicts.items() if e is not None and e.tag == "failure"}
    errors = {h: e.get("type") for h, e in verdicts.items() if e is not None and e.tag == "error"}
    for element in (root, suite):
        assert element.get("tests") == str(len(plan["hosts"])) and element.get("skipped") == "0"
        assert (int(element.get("failures")), int(element.get("errors"))) == (len(failures), len(errors))
        assert float(element.get("time")) == pytest.approx(1.5)
    assert errors == {"down": "unreachable", "never": "not-reached", "broken": "unusable-record"}
    expected = {"failed": "failed"}
    if phase == "audit":
        expected |= {"ok-exposed": "exposed", metrics.printable(ODD_HOST): "exposed"}
    elif phase == "remediate" and not check_mode:
        expected[metrics.printable(ODD_HOST)] = "still-exposed"  # remediated, and still exposed
    assert failures == expected
    # Exactly the hosts that make `badsum fleet` exit non-zero: the run's problems, and an audit's exposed hosts.
    failing = {p.split(": ")[0] for p in out["problems"]} | (
        {"ok-exposed", metrics.printable(ODD_HOST)} if phase == "audit" else set()
    )
    assert set(failures) | set(errors) == failing
    nasty = verdicts.get(metrics.printable(ODD_HOST))
    if nasty is not None:
        assert "\\xffeth0" in nasty.get("message") and nasty.text == nasty.get("message")
    assert all(float(c.get("time")) >= 0 for c in cases) and cases[0].get("time") == "1.500"
    assert "change: " in (cases[0].find("system-out").text or "") or phase == "audit"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", suite.get("timestamp"))
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props == {
        "run_id": f"r-{phase}",
        "phase": phase,
        "check_mode": str(check_mode).lower(),
        "run_dir": str(run_dir),
    }
    marked = ("--check" in suite.get("name"), all(c.get("classname").endswith(".check") for c in cases))
    assert marked == (check_mode, check_mode)


def test_the_counts_for_awx_add_up_and_pass_through_a_workflow_as_extra_variables(tmp_path: Path) -> None:
    from ansible.utils.vars import validate_variable_name

    run_dir, _ = fleet_run(tmp_path, "remediate")
    data = report.write(run_dir)["stats"]
    assert tuple(data) == stats.KEYS
    counts = {k.removeprefix("badsum_fleet_"): v for k, v in data.items() if k != stats.RUN}
    assert all(type(v) is int for v in counts.values())  # set_stats adds numbers of one type only
    assert {k: counts[k] for k in stats.COUNTS} == {
        "hosts": 8,
        "ok": 4,  # ok-exposed, fixed, nasty, retired
        "failed": 3,  # failed, down (unreachable), broken (an unreadable record)
        "unreachable": 1,
        "not_reached": 1,
        "changed": 4,
    }
    assert counts["ok"] + counts["failed"] + counts["not_reached"] == counts["hosts"]
    risk = {k.removeprefix("risk_"): v for k, v in counts.items() if k.startswith("risk_")}
    assert risk == {
        "exposed": 1,  # ODD_HOST: remediated and still exposed
        "obsolete_workaround": 0,
        "mitigated": 1,
        "patched": 2,  # fixed; and retired, whose workaround this run took away
        "not_applicable": 0,
        "unknown": 4,  # failed, down, broken, never
    }
    assert data[stats.RUN] == {
        "run_id": "r-remediate",
        "phase": "remediate",
        "check_mode": False,
        "run_dir": str(run_dir),
    }
    assert json.loads((run_dir / "fleet.json").read_text())["stats"] == data  # `badsum fleet --json` has them too
    for name in data:
        validate_variable_name(name)
    # A workflow's next job gets them as extra variables: the plan takes them for outputs, not misspelt settings.
    defaults = yaml.safe_load((ROOT / "roles/badsum_fleet/defaults/main.yml").read_text())
    checked = fleet.fleet_settings({**defaults, "badsum_fleet_results_dir": str(tmp_path), **data})
    assert checked.problems == []
    assert not set(data) & {fleet.P + n for n in fleet.CHECKS}  # and none of them overrides a setting


def test_the_report_task_hands_the_counts_to_set_stats_once_for_the_run() -> None:
    tasks = yaml.safe_load((ROOT / "roles/badsum_fleet/tasks/report.yml").read_text())
    names = [t["name"] for t in tasks]
    (task,) = [t for t in tasks if "ansible.builtin.set_stats" in t]
    assert task["ansible.builtin.set_stats"] == {
        "data": "{{ __badsum_fleet_report.stats }}",
        "per_host": False,
        "aggregate": False,
    }
    assert names.index(task["name"]) < names.index("Fail the run if a host failed, was not reached or stays exposed")


@pytest.mark.parametrize(
    ("phase", "record", "risk"),
    [
        ("remediate", {"phase": "remediate", "check_mode": True, "audit": {"risk": "exposed"}, "after": {}}, "exposed"),
        ("remediate", {"phase": "remediate", "check_mode": False, "audit": {"risk": "exposed"}, "after": {}}, None),
        ("rollback", {"phase": "rollback", "check_mode": True, "after": {}}, None),
        ("audit", {"phase": "audit", "audit": {"risk": "patched"}}, "patched"),
    ],
)
def test_the_state_a_run_left_is_never_guessed(phase, record, risk) -> None:
    """A check run changed nothing (its audit before holds); a call that failed half way left the host unknown."""
    assert (records.state(record) or {}).get("risk") == risk
