"""The verdict of one cell, from measurements only.

Nothing here knows which topology or condition "should" be vulnerable: the
expected table of the incident lives in the tests and the report, never in
the code that decides.
"""

from __future__ import annotations

from dataclasses import dataclass

CORRUPT = "corrupt-delivered"
CLEAN = "clean"
INCONCLUSIVE = "inconclusive"
ERROR = "error"
VERDICTS = (CORRUPT, CLEAN, INCONCLUSIVE, ERROR)

# Fewer corrupted packets than this and a clean outcome proves nothing.
DEFAULT_MIN_CORRUPTED = 3


@dataclass(frozen=True)
class Evidence:
    corrupt_messages: int
    missing_messages: int
    corrupted_packets: int | None  # what the injector changed (None: unknown)
    csum_errors_total: int  # checksum-error counter deltas, all namespaces


def decide(ev: Evidence, min_corrupted: int = DEFAULT_MIN_CORRUPTED) -> tuple[str, str]:
    if ev.corrupt_messages > 0:
        return CORRUPT, f"{ev.corrupt_messages} message(s) reached the application with corrupt data"
    if ev.corrupted_packets is None:
        return INCONCLUSIVE, "the number of packets corrupted on the wire is unknown"
    if ev.corrupted_packets < min_corrupted:
        return INCONCLUSIVE, (
            f"only {ev.corrupted_packets} packet(s) were corrupted on the wire (fewer than "
            f"{min_corrupted}): a clean outcome would prove nothing"
        )
    if ev.missing_messages > 0:
        return INCONCLUSIVE, (
            f"{ev.missing_messages} message(s) never arrived: TCP did not recover within the time bounds"
        )
    if ev.csum_errors_total == 0:
        return INCONCLUSIVE, (
            f"{ev.corrupted_packets} packets were corrupted and none delivered, but no checksum-error "
            "counter moved: the drops are not accounted for"
        )
    return CLEAN, (
        f"{ev.corrupted_packets} packets corrupted on the wire, {ev.csum_errors_total} checksum error(s) "
        "counted, no corrupt data delivered, every message arrived"
    )
