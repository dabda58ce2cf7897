"""The incident's table, cell by cell, asserted on measured results.

This is the only place that knows which cells *should* deliver corrupt data;
the code that decides a verdict never does. Run on a run made with the
defaults (nf_conntrack_checksum untouched); the knob has its own test.
"""

from __future__ import annotations

import pytest

VULNERABLE_PATHS = {"mesos", "kubernetes", "docker-ipv6"}
CONTAINER_TOPOLOGIES = {"mesos", "kubernetes", "docker-ipv6", "docker-nat"}


def expected(topology: str, condition: str) -> str:
    if condition == "vulnerable" and topology in VULNERABLE_PATHS:
        return "corrupt-delivered"
    return "clean"


def test_every_cell_has_the_incidents_outcome(cells: dict) -> None:
    wrong = {
        f"{t}/{c}": f"{cell['verdict']} ({cell['verdict_reason']})"
        for (t, c), cell in cells.items()
        if cell["verdict"] != expected(t, c)
    }
    assert not wrong, f"cells off the incident's table: {wrong}"


def test_corruption_was_on_the_wire_in_every_cell(cells: dict) -> None:
    for (t, c), cell in cells.items():
        assert cell["corrupted_packets"] and cell["corrupted_packets"] > 0, f"{t}/{c}: nothing corrupted"


def test_clean_cells_delivered_nothing_corrupt_and_everything_in_the_end(cells: dict) -> None:
    for (t, c), cell in cells.items():
        if expected(t, c) != "clean":
            continue
        msgs = cell["messages"]
        assert msgs["corrupt"] == 0, f"{t}/{c}: corrupt messages reached nc"
        assert cell["stream"]["differing_bytes"] == 0, f"{t}/{c}: received stream differs from sent"
        assert msgs["missing"] == 0 and msgs["intact"] == msgs["sent"], f"{t}/{c}: messages missing"
        assert cell["delivered_after_corruption_stopped"], f"{t}/{c}: not all delivered after the window"


def test_drops_are_counted_in_the_namespace_that_dropped_them(cells: dict) -> None:
    for (t, c), cell in cells.items():
        if expected(t, c) != "clean":
            continue
        # bare: host B is the receiver. docker-nat: conntrack marks the bad
        # packets INVALID, they are not DNATed and host B's own stack drops
        # them. The routed paths: the container's TCP drops them.
        where = "host" if t in ("bare", "docker-nat") else "container"
        got = cell["csum_errors"].get(where, {}).get("TcpInCsumErrors", 0)
        assert got > 0, f"{t}/{c}: no TcpInCsumErrors in {where}: {cell['csum_errors']}"


def test_docker_nat_drops_are_conntrack_invalid_on_host_b(cells: dict) -> None:
    for (t, c), cell in cells.items():
        if t == "docker-nat":
            assert cell["conntrack_invalid"]["host"] > 0, f"{t}/{c}: conntrack saw nothing INVALID"


def test_vulnerable_cells_hide_the_corruption_from_the_counters(cells: dict) -> None:
    # What made the incident look impossible: corrupt data delivered while no
    # counter on the receiving side moved.
    for (t, c), cell in cells.items():
        if expected(t, c) == "corrupt-delivered":
            assert cell["csum_errors"].get("container", {}).get("TcpInCsumErrors", 0) == 0, f"{t}/{c}"


def test_corrupt_cells_record_the_damaged_bits(cells: dict) -> None:
    for (t, c), cell in cells.items():
        if cell["verdict"] == "corrupt-delivered":
            assert cell["corrupt_messages"], f"{t}/{c}: no corrupt message recorded"
            assert all(m["bit_diffs"] for m in cell["corrupt_messages"]), f"{t}/{c}: bit positions missing"


def test_conditions_say_whether_the_kernel_bug_was_emulated_or_real(cells: dict) -> None:
    for (t, c), cell in cells.items():
        assert cell["condition_kind"] in ("real", "emulated"), f"{t}/{c}"
        if c == "patched":
            assert cell["condition_kind"] == "real"
        if cell["condition_kind"] == "emulated" and t in CONTAINER_TOPOLOGIES and c == "vulnerable":
            assert cell["emulator"]["packets_marked_verified"] > 0, f"{t}/{c}: emulator never acted"


@pytest.mark.parametrize(
    "field",
    ["topology", "condition", "condition_kind", "kernel", "backend", "corrupted_packets", "csum_errors",
     "messages", "delivered_after_corruption_stopped", "verdict"],
)  # fmt: skip
def test_result_files_carry_the_documented_fields(cells: dict, field: str) -> None:
    for key, cell in cells.items():
        assert field in cell, f"{key}: field {field} missing"
