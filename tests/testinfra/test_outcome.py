"""The incident's table, cell by cell, asserted on measured results.

This is the only place that knows which cells *should* deliver corrupt data;
the code that decides a verdict never does.
"""

from __future__ import annotations

import pytest

VULNERABLE_PATHS = {"mesos", "kubernetes", "docker-ipv6"}


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


def test_clean_cells_counted_the_drops(cells: dict) -> None:
    for (t, c), cell in cells.items():
        if expected(t, c) == "clean":
            assert cell["csum_errors_total"] > 0, f"{t}/{c}: no checksum-error counter moved"


def test_host_stack_counts_checksum_errors_where_it_drops(cells: dict) -> None:
    # bare: the host is the receiver; docker-nat: INVALID packets are not DNATed
    # and end in host B's own stack, which drops them.
    for (t, c), cell in cells.items():
        if t in ("bare", "docker-nat"):
            assert cell["csum_errors"]["host"]["TcpInCsumErrors"] > 0, f"{t}/{c}: host B counted nothing"


def test_corrupt_cells_record_the_damaged_bits(cells: dict) -> None:
    for (t, c), cell in cells.items():
        if cell["verdict"] == "corrupt-delivered":
            assert cell["corrupt_messages"], f"{t}/{c}: no corrupt message recorded"
            assert all(m["bit_diffs"] for m in cell["corrupt_messages"]), f"{t}/{c}: bit positions missing"


@pytest.mark.parametrize(
    "field",
    [
        "topology",
        "condition",
        "condition_kind",
        "kernel",
        "backend",
        "corrupted_packets",
        "csum_errors",
        "messages",
        "delivered_after_corruption_stopped",
        "verdict",
    ],
)
def test_result_files_carry_the_documented_fields(cells: dict, field: str) -> None:
    for key, cell in cells.items():
        assert field in cell, f"{key}: field {field} missing"
