"""The incidents' tables, cell by cell, asserted on measured results.

This is the only place (with the report's comparison) that knows which cells
*should* deliver corrupt data; the code that decides a verdict never does.
With nf_conntrack_checksum=0 (the knob beyond the article) Docker's NAT is
expected to deliver corrupt data too. A 2020 cell (vxlan-nat) has its own
checks at the end: its bug drops valid data, the injector plays no part.
"""

from __future__ import annotations

import pytest

from badsum import topologies
from badsum.analysis import incident

CONTAINER_TOPOLOGIES = set(topologies.with_containers())  # the topology catalogue's
FIELDS = (
    "topology",
    "condition",
    "condition_kind",
    "kernel",
    "backend",
    "path",
    "corrupted_packets",
    "csum_errors",
    "conntrack_invalid",
    "messages",
    "timeline",
    "held_messages",
    "delivered_after_corruption_stopped",
    "verdict",
    "verdict_reason",
)


def expected(cell: dict) -> str:
    return incident.expected(cell["topology"], cell["condition"], cell.get("conntrack_checksum", ""))


def drops_namespace(cell: dict) -> str:
    """Where a clean cell's corrupt segments die: the receiving stack that checks them.

    bare: host B is the receiver. docker-nat (conntrack on): conntrack marks them
    INVALID, they are not DNATed, and host B's own stack drops them. The routed
    paths, and docker-nat with the knob off: the container's TCP.
    """
    if cell["topology"] == "bare":
        return "host"
    if cell["topology"] == "docker-nat" and cell.get("conntrack_checksum") != "0":
        return "host"
    return "container"


def test_the_cell_has_the_incidents_outcome(cell: dict) -> None:
    assert cell["verdict"] == expected(cell), f"{cell['verdict']}: {cell['verdict_reason']}"


def of_2016(cell: dict) -> None:
    if cell.get("bug", "veth") != "veth":
        pytest.skip("a 2016 check: this cell's bug drops valid data (2020), the injector plays no part")


def test_corruption_was_on_the_wire(cell: dict) -> None:
    of_2016(cell)
    assert cell["corrupted_packets"] is not None, "the number of packets corrupted on the wire was never read"
    assert cell["corrupted_packets"] >= cell["min_corrupted"] > 0, cell["corrupted_packets"]


def test_the_corruption_window_says_when_and_why_it_closed(cell: dict) -> None:
    of_2016(cell)
    window = cell["corruption"]
    assert window["window_closed_by"] in ("evidence", "max-duration", "duration"), window
    assert window["window_start"] is not None and window["window_end"] >= window["window_start"], window
    if window["window_closed_by"] == "evidence" and window["counted_by"] == "ebpf":
        # the kernel's own count: the window closed once the target was damaged, not before
        assert cell["corrupted_packets"] >= window["target"] > 0, window


def test_every_namespace_on_the_path_was_measured(cell: dict) -> None:
    # A missing reading must fail, never count as zero.
    measured = set(cell["csum_errors"])
    assert "host" in measured, cell["csum_errors"]
    if cell["topology"] in CONTAINER_TOPOLOGIES:
        assert "container" in measured, cell["csum_errors"]


def test_a_clean_cell_delivered_nothing_corrupt_and_everything_in_the_end(cell: dict) -> None:
    of_2016(cell)
    if expected(cell) != "clean":
        pytest.skip("this cell delivers corrupt data in the incident")
    msgs = cell["messages"]
    assert msgs["corrupt"] == 0 and cell["stream"]["differing_bytes"] == 0, "corrupt bytes reached nc"
    assert msgs["missing"] == 0 and msgs["intact"] == msgs["sent"] > 0, msgs
    assert cell["delivered_after_corruption_stopped"]


def test_a_clean_cells_drops_are_counted_where_they_happen(cell: dict) -> None:
    of_2016(cell)
    if expected(cell) != "clean":
        pytest.skip("this cell delivers corrupt data in the incident")
    where = drops_namespace(cell)
    got = cell["csum_errors"][where]["TcpInCsumErrors"]
    assert got > 0, f"no TcpInCsumErrors in {where}: {cell['csum_errors']}"


def test_docker_nats_drops_are_conntrack_invalid_on_host_b(cell: dict) -> None:
    if cell["topology"] != "docker-nat":
        pytest.skip("docker-nat only")
    invalid = cell["conntrack_invalid"]["host"]  # measured, or this fails
    if cell.get("conntrack_checksum") == "0":
        assert invalid == 0, "conntrack does not check checksums with nf_conntrack_checksum=0"
    else:
        assert invalid > 0, "conntrack saw nothing INVALID"


def test_a_corrupt_cell_hides_the_corruption_from_the_containers_counters(cell: dict) -> None:
    # What made the incident look impossible: corrupt data delivered while no
    # counter on the receiving side moved.
    if expected(cell) != "corrupt-delivered":
        pytest.skip("a clean cell")
    assert cell["csum_errors"]["container"]["TcpInCsumErrors"] == 0, cell["csum_errors"]
    assert cell["corrupt_messages"] and all(m["bit_diffs"] for m in cell["corrupt_messages"])


def test_the_condition_says_whether_the_kernel_bug_was_emulated_or_real(cell: dict) -> None:
    if cell["condition"] == "patched":
        assert cell["condition_kind"] == "real"
        return
    assert cell["condition_kind"] == ("emulated" if cell["kernel_has_fix"] else "real")
    if cell["condition_kind"] == "emulated" and cell["topology"] in CONTAINER_TOPOLOGIES:
        assert cell["emulator"] is not None, "the emulator's counts were never read"
        if cell["condition"] == "vulnerable":
            assert cell["emulator"]["packets_marked_verified"] > 0, "the emulator never acted"


@pytest.mark.parametrize("field", FIELDS)
def test_the_result_file_carries_the_documented_field(cell: dict, field: str) -> None:
    assert field in cell


# -- the 2020 incident: valid data dropped through a VXLAN overlay -----------------------------


def of_2020(cell: dict) -> dict:
    if cell.get("bug") != "vxlan-nat":
        pytest.skip("a 2020 check (vxlan-nat)")
    return cell["overlay"]


def test_a_2020_cell_delivered_every_message_intact(cell: dict) -> None:
    of_2020(cell)
    msgs = cell["messages"]
    assert msgs["corrupt"] == 0 and msgs["missing"] == 0 and msgs["intact"] == msgs["sent"] > 0, msgs


def test_a_2020_cells_outer_packets_were_natted_by_host_a(cell: dict) -> None:
    # without it a clean cell proves nothing (kube-proxy after kubernetes#92035 never NATs them)
    assert of_2020(cell)["natted_flows"] >= 1, cell["overlay"]


def test_a_2020_drop_is_a_wrong_outer_checksum_counted_at_host_b(cell: dict) -> None:
    overlay = of_2020(cell)
    if expected(cell) != "valid-dropped":
        assert overlay["udp_csum_errors"] == 0 and overlay["bad_outer"] == 0, overlay
        assert cell["connect_s"] < 0.2, cell["connect_s"]
        return
    assert overlay["udp_csum_errors"] == overlay["bad_outer"] >= 1, overlay
    assert cell["connect_s"] >= 0.8, cell["connect_s"]  # the SYN waited for its retransmission
    if cell["condition_kind"] == "emulated":
        # what the unfixed udp_manip_pkt() wrote for a port-only SNAT of a zero checksum
        assert set(overlay["written"]) == {"0xffff"}, overlay["written"]
        assert cell["emulator"]["counts"]["rewritten"] >= overlay["bad_outer"], cell["emulator"]


def test_a_2020_workaround_takes_the_skb_off_the_bugs_path(cell: dict) -> None:
    of_2020(cell)
    if cell["condition"] != "workaround" or cell["condition_kind"] != "emulated":
        pytest.skip("the emulated workaround only")
    counts = cell["emulator"]["counts"]
    # tx-checksum-ip-generic off: the inner checksum is finished before vxlan, the skb is not PARTIAL
    assert counts["partial"] == 0 and counts["not_partial"] > 0 and counts["rewritten"] == 0, counts


def test_a_2020_patched_kernel_leaves_the_zero_outer_checksum_alone(cell: dict) -> None:
    overlay = of_2020(cell)
    if cell["condition"] != "patched":
        pytest.skip("patched only")
    assert overlay["no_cksum_outer"] == overlay["outer_packets"] > 0, overlay
