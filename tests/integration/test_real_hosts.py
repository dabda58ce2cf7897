"""On hosts the kit did not create: the example inventories' shapes, the failure path, the article's harness."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from badsum.analysis import incident
from conftest import ROOT, badsum, cells, embedded_inventory, one_cell, only_cell, playbook, real_hosts_inventory


def test_the_two_hosts_shape_gives_the_incidents_table(lab: Path, tmp_path: Path) -> None:
    # Every topology with the injector on host B's NIC ingress, sharing that
    # NIC's clsact with the Mesos wiring: 15 cells on one pair.
    inventory = real_hosts_inventory(lab, tmp_path / "two-hosts.yml")
    run = playbook(inventory, "reproduce.yml", tmp_path / "results", timeout=900)
    assert run.returncode == 0, run.stdout[-4000:]
    found = cells(tmp_path / "results")
    assert len(found) == 15
    wrong = {k: c["verdict_reason"] for k, c in found.items() if c["verdict"] != incident.expected(*k)}
    assert wrong == {}
    assert {(c["corruption"]["iface"], c["corruption"]["hook"]) for c in found.values()} == {("eth0", "ingress")}
    assert re.search(r"testinfra: \d+ passed", run.stdout)  # every host back as the run found it


def test_the_two_hosts_shape_managed_over_ipv6_gives_the_incidents_cells(lab: Path, tmp_path: Path) -> None:
    # Ansible reaches both hosts at their IPv6 management addresses (the lab's sshd listens on both).
    inventory = real_hosts_inventory(lab, tmp_path / "two-hosts-v6.yml", ipv6=True)
    hosts = yaml.safe_load(inventory.read_text())["all"]["children"]
    assert ":" in hosts["servers"]["hosts"]["host2"]["ansible_host"]
    selection = json.dumps(
        {"badsum_experiment_topologies": ["bare", "mesos"], "badsum_experiment_conditions": ["vulnerable", "patched"]}
    )
    run = playbook(inventory, "reproduce.yml", tmp_path / "results", "-e", selection)
    assert run.returncode == 0, run.stdout[-4000:]
    found = cells(tmp_path / "results")
    assert {k: c["verdict"] for k, c in found.items()} == {k: incident.expected(*k) for k in found}
    assert len(found) == 4
    assert re.search(r"testinfra: \d+ passed", run.stdout)  # testinfra reached them over IPv6 too


def test_an_unreachable_host_ends_the_run_after_prepare_with_ansibles_message(lab: Path, tmp_path: Path) -> None:
    inventory = real_hosts_inventory(lab, tmp_path / "unreachable.yml", ipv6=True)
    data = yaml.safe_load(inventory.read_text())
    nobody = data["all"]["children"]["servers"]["hosts"]["host2"]["ansible_host"].rsplit(":", 1)[0] + ":99"
    data["all"]["children"]["servers"]["hosts"]["host2"]["ansible_host"] = nobody
    inventory.write_text(yaml.safe_dump(data))
    results = tmp_path / "results"
    run = playbook(inventory, "reproduce.yml", results, *one_cell("bare", "patched"))
    assert run.returncode != 0
    # the host by name, and what Ansible itself said of it (ssh's own words)
    assert re.search(r"fatal: \[host2\]: FAILED!.*host2 cannot be reached: .*" + re.escape(nobody), run.stdout, re.S)
    assert "ssh: connect to host" in run.stdout
    # and nothing after prepare: no run recorded, no cell run
    assert "PLAY [Record the run]" not in run.stdout and "PLAY [Run the cells]" not in run.stdout
    assert not list(results.glob("*/run.json"))


@pytest.fixture(scope="module")
def cloud_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A lab whose hosts have a non-root user who becomes root with sudo, as on cloud VMs."""
    inventory = embedded_inventory(tmp_path_factory.mktemp("cloud"))
    badsum("lab", "down", "--lab", "icloud")
    badsum("lab", "up", "--lab", "icloud", "--hosts", "2", "--user", "admin", "--write-inventory", str(inventory))
    yield inventory
    badsum("lab", "down", "--lab", "icloud")


def test_the_cloud_shape_works_as_a_non_root_user_with_become(cloud_lab: Path, tmp_path: Path) -> None:
    # The lab's sshd refuses root (as cloud images do): every task logs in as admin and becomes root.
    inventory = real_hosts_inventory(cloud_lab, tmp_path / "cloud.yml")
    hosts = yaml.safe_load(inventory.read_text())["all"]["children"]
    assert hosts["servers"]["hosts"]["host2"]["ansible_user"] == "admin"
    assert hosts["servers"]["hosts"]["host2"]["ansible_become"] is True
    selection = json.dumps(
        {
            "badsum_experiment_topologies": ["bare", "kubernetes"],
            "badsum_experiment_conditions": ["vulnerable", "patched"],
        }
    )
    run = playbook(inventory, "reproduce.yml", tmp_path / "results", "-e", selection, "-e", "badsum_lab_id=icloud")
    assert run.returncode == 0, run.stdout[-4000:]
    found = cells(tmp_path / "results")
    assert {k: c["verdict"] for k, c in found.items()} == {
        ("bare", "vulnerable"): "clean",
        ("bare", "patched"): "clean",
        ("kubernetes", "vulnerable"): "corrupt-delivered",
        ("kubernetes", "patched"): "clean",
    }
    # root cannot log in at all: the work was done as admin, with sudo
    key = cloud_lab / ".ssh" / "id_ed25519"
    as_root = subprocess.run(
        [
            "ssh",
            "-i",
            str(key),
            "-o",
            f"UserKnownHostsFile={cloud_lab / '.ssh/known_hosts'}",
            "-o",
            "BatchMode=yes",
            f"root@{hosts['servers']['hosts']['host2']['ansible_host']}",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert as_root.returncode != 0


def test_a_broken_cell_keeps_its_real_cause_in_the_result_the_summary_and_the_report(lab: Path, tmp_path: Path) -> None:
    # The server's address is one nobody has: the client cannot connect.
    inventory = real_hosts_inventory(lab, tmp_path / "broken.yml")
    data = yaml.safe_load(inventory.read_text())
    data["all"]["children"]["servers"]["hosts"]["host2"]["badsum_data_ipv4"] = "198.19.0.250"
    inventory.write_text(yaml.safe_dump(data))
    results = tmp_path / "results"
    run = playbook(
        inventory, "playbooks/experiment.yml", results, *one_cell("bare", "patched"), "-e", "badsum_verify=false"
    )
    assert run.returncode != 0, "a run with a cell in error is a failed run"
    cause = "could not connect to [198.19.0.250]:5001 within 5 s"
    cell = only_cell(results)
    assert cell["verdict"] == "error"
    assert cause in cell["verdict_reason"] and cell["verdict_reason"].startswith("Send the framed messages: ")
    assert f"bare/patched: error - Send the framed messages: badsum-host client: {cause}" in run.stdout
    summary = badsum("summary", "--results", str(results), check=False)
    assert summary.returncode == 2 and cause in summary.stdout  # a cell in error: the run failed
    assert cause in (results / "latest" / "report.html").read_text()
    assert f"The cell failed: {cell['verdict_reason']}" in (results / "latest" / "report.md").read_text()


def test_the_articles_harness_shows_its_two_signatures(lab: Path, tmp_path: Path) -> None:
    selection = json.dumps(
        {"badsum_experiment_topologies": ["bare", "mesos"], "badsum_experiment_conditions": ["vulnerable"]}
    )
    run = playbook(
        lab,
        "playbooks/experiment.yml",
        tmp_path,
        "-e",
        f"@{ROOT / 'presets/article.yml'}",
        "-e",
        selection,
        "-e",
        "badsum_verify=false",
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    found = cells(tmp_path)
    bare, mesos = found[("bare", "vulnerable")], found[("mesos", "vulnerable")]
    assert bare["verdict"] == "clean" and mesos["verdict"] == "corrupt-delivered"
    # bare: every message sent during the window is held, and they all arrive at once after it
    window = bare["corruption"]
    inside = [m for m in bare["timeline"] if window["window_start"] + 0.1 < m["sent"] < window["window_end"] - 0.1]
    assert len(inside) >= 8
    assert all(m["arrived"] > window["window_end"] for m in inside)
    arrivals = [m["arrived"] for m in inside]
    assert max(arrivals) - min(arrivals) < 1.0, arrivals
    assert bare["held_messages"]["count"] >= len(inside)
    # mesos, vulnerable: every message sent during the window arrives corrupt
    window = mesos["corruption"]
    inside = [m for m in mesos["timeline"] if window["window_start"] + 0.1 < m["sent"] < window["window_end"] - 0.1]
    assert len(inside) >= 8 and all(m["status"] == "corrupt" for m in inside), inside
    # The report shows the held messages' count and when the last of them arrived (not just the column's title).
    html = (tmp_path / "latest" / "report.html").read_text()
    held = bare["held_messages"]
    assert re.search(rf"<td>{held['count']} \(last {held['last_arrival']:.2f} s after\)</td>", html), held


def node_state(lab_id: str, node: str) -> dict:
    """A lab node's state as the host kit reads it, from inside its own namespaces."""
    from badsum import hostkit
    from badsum.lab.spec import NS_ROOT, STATE_ROOT

    kit = STATE_ROOT / lab_id / "lib" / "bin" / "badsum-host.pyz"
    hostkit.write(kit)  # the very kit prepare.yml installs (it is reproducible)
    ns = f"{lab_id}-h{node.removeprefix('host')}"
    cmd = [
        "nsenter",
        f"--mount={NS_ROOT / ns}.mnt",
        f"--net=/run/netns/{ns}",
        f"--pid={NS_ROOT / ns}.pid",  # the node's /proc shows its own processes: be one of them
        "/usr/bin/python3",
        str(kit),
        "state",
        "show",
        "--iface",
        "eth0",
        "--port",
        "5001",
    ]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def test_cleanup_puts_real_hosts_back_after_an_interrupted_run(lab: Path, tmp_path: Path) -> None:
    import os
    import signal
    import time

    from conftest import ENV, LAB, VENV_BIN

    inventory = real_hosts_inventory(lab, tmp_path / "two-hosts.yml")
    before = {h: node_state(LAB, h) for h in ("host1", "host2")}
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            str(inventory),
            "playbooks/experiment.yml",
            "-e",
            f"badsum_experiment_results_dir={tmp_path / 'results'}",
            "-e",
            '{"badsum_experiment_topologies": ["docker-ipv6"], "badsum_experiment_count": 200}',
        ],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    armed = False
    while time.monotonic() < deadline and not armed and proc.poll() is None:
        out = subprocess.run(
            ["ip", "netns", "exec", f"{LAB}-h2", "tc", "filter", "show", "dev", "eth0", "ingress"],
            capture_output=True,
            text=True,
        ).stdout
        armed = "corrupt" in out
        time.sleep(0.1)
    assert armed, "the run never armed the injector on host B's NIC"
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert node_state(LAB, "host2") != before["host2"]  # the run was interrupted with its topology up
    run = playbook(inventory, "playbooks/cleanup.yml", tmp_path / "results")
    assert run.returncode == 0, run.stdout[-3000:]
    time.sleep(1)
    after = {h: node_state(LAB, h) for h in ("host1", "host2")}
    assert after == before
