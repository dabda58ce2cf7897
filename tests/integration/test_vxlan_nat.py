"""The 2020 row for real: the vxlan-nat topology's three cells on the embedded lab, and nothing left after them.

presets/vxlan-2020.yml runs the row; each cell's verdict comes from its own
measurements (host B's counters and outer capture, host A's conntrack, the
client's connect time), and the testinfra suites assert the 2020 table on
them. On this machine's kernel (with ea64d8d6c675) the vulnerable and
workaround cells are emulated; the test says so rather than assuming it.
"""

from __future__ import annotations

import re
import subprocess

from conftest import LAB, cells, playbook

HOSTS = [f"{LAB}-h{n}" for n in range(1, 17)]


def in_node(node: str, *cmd: str) -> str:
    return subprocess.run(["ip", "netns", "exec", node, *cmd], capture_output=True, text=True, check=False).stdout


def test_the_2020_row_drops_valid_data_and_the_workaround_and_the_fix_stop_it(lab, tmp_path) -> None:
    run = playbook(lab, "playbooks/experiment.yml", tmp_path, "-e", "@presets/vxlan-2020.yml", timeout=600)
    assert run.returncode == 0, run.stdout[-4000:]
    found = cells(tmp_path)
    assert set(found) == {("vxlan-nat", c) for c in ("vulnerable", "workaround", "patched")}
    vulnerable, workaround, patched = (found[("vxlan-nat", c)] for c in ("vulnerable", "workaround", "patched"))

    # vulnerable: the SYN's outer packet went out with the unfixed NAT's checksum, host B dropped it
    # and counted it, the connection waited for the retransmission, every message arrived intact
    assert vulnerable["verdict"] == "valid-dropped", vulnerable["verdict_reason"]
    assert vulnerable["condition_kind"] == ("emulated" if vulnerable["kernel_has_fix"] else "real")
    overlay = vulnerable["overlay"]
    assert overlay["udp_csum_errors"] == overlay["bad_outer"] >= 1, overlay
    assert vulnerable["connect_s"] >= 0.8 and overlay["natted_flows"] >= 1
    assert vulnerable["messages"]["intact"] == vulnerable["messages"]["sent"] > 0
    if vulnerable["condition_kind"] == "emulated":
        assert overlay["written"] == {"0xffff": overlay["bad_outer"]}, overlay
        assert vulnerable["emulator"]["counts"]["rewritten"] >= 1

    # workaround and patched: clean, with the outer flows NATed all the same (else they proved nothing)
    for cell in (workaround, patched):
        assert cell["verdict"] == "clean", cell["verdict_reason"]
        assert cell["overlay"]["natted_flows"] >= 1 and cell["overlay"]["udp_csum_errors"] == 0
        assert cell["connect_s"] < 0.2
    if workaround["condition_kind"] == "emulated":
        counts = workaround["emulator"]["counts"]
        assert counts["partial"] == 0 and counts["not_partial"] > 0 and counts["rewritten"] == 0, counts
    assert patched["overlay"]["no_cksum_outer"] == patched["overlay"]["outer_packets"] > 0

    # the testinfra suites ran on the measured cells and passed; the table says what was dropped
    assert re.search(r"testinfra: \d+ passed", run.stdout) and not re.search(r"\d+ failed", run.stdout)
    assert re.search(r"\| vxlan-nat +\| DROPPED \d+ csum, connect [\d.]+ s", run.stdout), run.stdout[-3000:]
    report = (tmp_path / "latest" / "report.md").read_text()
    assert "kubernetes#88986" in report and "## Connection times" in report
    assert (tmp_path / "latest" / "report-plots" / "connect-times.png").stat().st_size > 1000

    # nothing of the overlay is left on any host: device, chains, the emulator, the pod
    for node in HOSTS:
        assert "bsflannel.1" not in in_node(node, "ip", "-o", "link", "show"), node
        assert "BADSUM-KUBE" not in in_node(node, "iptables", "-t", "nat", "-S"), node
        assert "badsum_vxlannat" not in in_node(node, "tc", "filter", "show", "dev", "eth0", "egress"), node
