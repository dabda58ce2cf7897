"""The experiment for real: the whole table, the controls, the knob, bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from conftest import LAB, ROOT, VENV_BIN, only_cell, playbook

BARE = ("-e", '{"badsum_experiment_topologies": ["bare"], "badsum_experiment_conditions": ["patched"]}')


def test_reproduce_measures_the_incidents_table(lab: Path, tmp_path: Path) -> None:
    run = playbook(lab, "reproduce.yml", tmp_path, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:]
    cells = {(c["topology"], c["condition"]): c for c in map(json.loads, map(Path.read_text, (
        tmp_path / "latest").glob("*-*.json")))}  # fmt: skip
    assert len(cells) == 15
    corrupt = {k for k, c in cells.items() if c["verdict"] == "corrupt-delivered"}
    assert corrupt == {("mesos", "vulnerable"), ("kubernetes", "vulnerable"), ("docker-ipv6", "vulnerable")}
    assert all(c["verdict"] == "clean" for k, c in cells.items() if k not in corrupt)
    assert all(c["corrupted_packets"] > 0 for c in cells.values())
    # the testinfra suites ran inside reproduce.yml, against the lab's hosts
    assert re.search(r"\d+ passed", run.stdout) and not re.search(r"\d+ failed", run.stdout)


def test_control_run_without_corruption_is_spotless(lab: Path, tmp_path: Path) -> None:
    run = playbook(lab, "playbooks/experiment.yml", tmp_path, *BARE, "-e", "badsum_experiment_rate=0")
    assert run.returncode == 0, run.stdout[-3000:]
    cell = only_cell(tmp_path)
    assert cell["corrupted_packets"] == 0
    assert cell["csum_errors_total"] == 0
    assert cell["messages"]["intact"] == cell["messages"]["sent"]
    assert cell["verdict"] == "inconclusive"  # a clean result with nothing on the wire proves nothing


def test_total_corruption_stalls_tcp_which_recovers_after_the_window(lab: Path, tmp_path: Path) -> None:
    run = playbook(
        lab, "playbooks/experiment.yml", tmp_path, *BARE,
        "-e", "badsum_experiment_rate=100", "-e", "badsum_experiment_corruption_duration=1.5",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    cell = only_cell(tmp_path)
    assert cell["corrupted_packets"] > 0
    assert cell["messages"]["corrupt"] == 0 and cell["messages"]["missing"] == 0
    # nothing got through during the window: the messages sent in it arrived after it
    assert cell["held_messages"]["count"] > 0
    window = cell["corruption"]
    during = [
        m for m in cell["timeline"] if window["window_start"] + 0.2 < m["arrived"] < window["window_end"]
    ]
    assert during == []
    assert cell["verdict"] == "clean"


def test_netem_on_a_kernel_without_it_fails_naming_the_ebpf_backend(lab: Path, tmp_path: Path) -> None:
    run = playbook(
        lab,
        "playbooks/experiment.yml",
        tmp_path,
        *BARE,
        "-e",
        "badsum_experiment_backend=netem",
        "-e",
        "badsum_experiment_corruption_iface=eth0",
        "-e",
        "badsum_experiment_corruptor=host1",
    )
    assert run.returncode == 0, "a failing cell is recorded, the run goes on"
    cell = only_cell(tmp_path)
    if "netem" in cell.get("verdict_reason", "") and cell["verdict"] == "error":
        assert "ebpf backend" in cell["verdict_reason"]
    else:  # a kernel with sch_netem: the backend must then have corrupted something
        assert cell["corrupted_packets"] is not None


def test_bad_input_is_refused_before_anything_changes(lab: Path, tmp_path: Path) -> None:
    for extra, message in (
        ("badsum_experiment_rate=150", "rate must be 0-100"),
        ("badsum_experiment_port=22", "SSH's port"),
        ("badsum_experiment_pattern=sideways", "badsum_experiment_pattern"),
        ("badsum_experiment_topologies=['nope']", "badsum_experiment_topologies"),
    ):
        run = playbook(lab, "playbooks/experiment.yml", tmp_path / extra.split("=")[0], "-e", extra)
        assert run.returncode != 0 or "error" in run.stdout, extra
        assert message in run.stdout, (extra, run.stdout[-2000:])


def test_conntrack_checksum_off_makes_docker_nat_deliver_corrupt_data(lab: Path, tmp_path: Path) -> None:
    run = playbook(
        lab, "playbooks/experiment.yml", tmp_path,
        "-e", '{"badsum_experiment_topologies": ["docker-nat"], "badsum_experiment_conditions": ["vulnerable"]}',  # noqa: E501
        "-e", "badsum_experiment_conntrack_checksum=0",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    cell = only_cell(tmp_path)
    assert cell["conntrack_checksum"] == "0"
    assert cell["verdict"] == "corrupt-delivered", cell["verdict_reason"]
    assert cell["conntrack_invalid"]["host"] == 0


def test_badsum_reproduce_shows_progress_and_says_whether_the_table_matched(
    lab: Path, tmp_path: Path
) -> None:
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    selection = '{"badsum_experiment_topologies": ["mesos"], "badsum_experiment_conditions": ["vulnerable"]}'
    run = subprocess.run(
        [str(VENV_BIN / "badsum"), "reproduce", "-i", str(lab), "--json", "-e", selection,
         "-e", f"badsum_lab_id={LAB}", "-e", f"badsum_results_dir={tmp_path}", "-e", "badsum_verify=false",
         "-e", "capture=true"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    summary = json.loads(run.stdout)
    assert run.returncode == 0, run.stderr[-2000:]
    assert summary["matches_incident"] and summary["cells"][0]["verdict"] == "corrupt-delivered"
    cell = only_cell(tmp_path)
    # the captures: clean at host A, the damage seen at host B and in the container
    points = cell["capture"]["incorrect_by_point"]
    assert points["host-a-eth0"] == 0
    assert points["host-b-eth0"] == cell["corrupted_packets"]
    assert points["container-eth0"] > 0
    assert any("incorrect" in line for line in cell["capture"]["incorrect"])
    assert (tmp_path / "latest" / "report.html").exists()
