"""The experiment for real: the whole table, the controls, the knob, captures, progress."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from conftest import ENV, LAB, ROOT, VENV_BIN, cells, one_cell, only_cell, playbook


def test_reproduce_measures_the_incidents_table_and_verifies_it(lab: Path, tmp_path: Path) -> None:
    run = playbook(lab, "reproduce.yml", tmp_path, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:]
    found = cells(tmp_path)
    assert len(found) == 15
    corrupt = {k for k, c in found.items() if c["verdict"] == "corrupt-delivered"}
    assert corrupt == {("mesos", "vulnerable"), ("kubernetes", "vulnerable"), ("docker-ipv6", "vulnerable")}
    assert all(c["verdict"] == "clean" for k, c in found.items() if k not in corrupt)
    # The testinfra suites ran at the end, against the lab's hosts, and passed.
    assert re.search(r"testinfra: \d+ passed", run.stdout) and not re.search(r"\d+ failed", run.stdout)
    # The table, one row per line (not folded by the callback).
    assert re.search(r"^ +\| docker-nat +\| clean: \d+ pkts", run.stdout, re.M), run.stdout[-3000:]


def test_a_control_run_without_corruption_is_spotless(lab: Path, tmp_path: Path) -> None:
    run = playbook(
        lab,
        "playbooks/experiment.yml",
        tmp_path,
        *one_cell("bare", "patched"),
        "-e",
        "badsum_experiment_rate=0",
        "-e",
        "badsum_verify=false",
    )
    cell = only_cell(tmp_path)
    assert cell["corrupted_packets"] == 0 and cell["csum_errors_total"] == 0
    assert cell["messages"]["intact"] == cell["messages"]["sent"]
    assert cell["verdict"] == "inconclusive"  # a clean result with nothing on the wire proves nothing
    # the window waited for evidence as long as it could, and the verdict says what was missing and what to change
    assert cell["corruption"]["window_closed_by"] == "max-duration"
    reason = cell["verdict_reason"]
    assert reason.startswith("missing measurement: only 0 packet(s) were corrupted")
    assert "To change: " in reason and "badsum_experiment_rate" in reason
    # an inconclusive cell is a failed run, and the run's last words and the summary say why
    assert run.returncode != 0
    assert f"bare/patched: inconclusive - {reason}" in run.stdout
    summary = subprocess.run(
        [str(VENV_BIN / "badsum"), "summary", "--results", str(tmp_path)], capture_output=True, text=True, env=ENV
    )
    assert summary.returncode == 2 and "PROBLEM: bare/patched: inconclusive - missing measurement" in summary.stderr


def test_total_corruption_stalls_tcp_which_recovers_after_the_window(lab: Path, tmp_path: Path) -> None:
    run = playbook(
        lab,
        "playbooks/experiment.yml",
        tmp_path,
        *one_cell("bare", "patched"),
        "-e",
        "badsum_experiment_rate=100",
        # the article's kind of window: a fixed length, whatever the evidence
        "-e",
        "badsum_experiment_corruption_window=fixed",
        "-e",
        "badsum_experiment_corruption_duration=1.5",
        "-e",
        "badsum_experiment_count=90",
    )
    assert run.returncode == 0, run.stdout[-3000:]
    cell = only_cell(tmp_path)
    assert cell["corrupted_packets"] > 0
    assert cell["messages"]["corrupt"] == 0 and cell["messages"]["missing"] == 0
    # nothing got through during the window: the messages sent in it arrived after it
    assert cell["held_messages"]["count"] > 0
    window = cell["corruption"]
    during = [m for m in cell["timeline"] if window["window_start"] + 0.2 < m["arrived"] < window["window_end"]]
    assert during == []
    assert window["window_closed_by"] == "duration" and abs(window["window_end"] - window["window_start"] - 1.5) < 0.001
    assert cell["verdict"] == "clean"


def test_netem_on_a_kernel_without_it_is_refused_before_anything_changes(lab: Path, tmp_path: Path) -> None:
    run = playbook(
        lab,
        "playbooks/experiment.yml",
        tmp_path,
        *one_cell("bare", "patched"),
        "-e",
        "badsum_experiment_backend=netem",
        "-e",
        "badsum_experiment_corruptor=host1",
        "-e",
        "badsum_experiment_corruption_iface=eth0",
    )
    assert run.returncode != 0
    assert "host1: badsum_experiment_backend=netem: this kernel" in run.stdout
    assert "use badsum_experiment_backend=ebpf" in run.stdout
    assert not (tmp_path / "latest").exists(), "a run directory was made"


def test_conntrack_checksum_off_makes_docker_nat_deliver_corrupt_data(lab: Path, tmp_path: Path) -> None:
    run = playbook(
        lab,
        "playbooks/experiment.yml",
        tmp_path,
        *one_cell("docker-nat", "vulnerable"),
        "-e",
        "badsum_experiment_conntrack_checksum=0",
    )
    assert run.returncode == 0, run.stdout[-3000:]
    cell = only_cell(tmp_path)
    assert cell["conntrack_checksum"] == "0"
    assert cell["verdict"] == "corrupt-delivered", cell["verdict_reason"]
    assert cell["conntrack_invalid"]["host"] == 0
    # the knob was put back (the testinfra state suite checked it too)
    out = subprocess.run(
        ["ip", "netns", "exec", f"{LAB}-h2", "sysctl", "-n", "net.netfilter.nf_conntrack_checksum"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "1"


def test_badsum_reproduce_shows_progress_and_says_whether_the_table_matched(lab: Path, tmp_path: Path) -> None:
    selection = json.dumps({"badsum_experiment_topologies": ["mesos"], "badsum_experiment_conditions": ["vulnerable"]})
    run = subprocess.run(
        [
            str(VENV_BIN / "badsum"),
            "reproduce",
            "-i",
            str(lab),
            "--json",
            "-e",
            selection,
            "-e",
            f"badsum_lab_id={LAB}",
            "-e",
            f"badsum_experiment_results_dir={tmp_path}",
            "-e",
            "capture=true",
        ],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    summary = json.loads(run.stdout)
    assert run.returncode == 0, run.stderr[-2000:]
    assert summary["matches_incident"] and summary["cells"][0]["verdict"] == "corrupt-delivered"
    assert "cells judged: 1/1" in run.stderr  # progress, counted from the run's result files
    cell = only_cell(tmp_path)
    # the captures: clean at host A, the damage seen at host B and in the container
    points = cell["capture"]["incorrect_by_point"]
    assert points["host-a-eth0"] == 0
    assert points["host-b-eth0"] == cell["corrupted_packets"]
    assert points["container-eth0"] > 0
    assert any("incorrect" in line for line in cell["capture"]["incorrect"])
    raw = tmp_path / "latest" / "raw" / "mesos-vulnerable"
    assert {"host-a-eth0.pcap", "host-b-eth0.pcap", "container-eth0.pcap"} <= {p.name for p in raw.iterdir()}
    assert (tmp_path / "latest" / "report.html").exists()
