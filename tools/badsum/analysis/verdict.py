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
    window_closed_by: str | None = None  # why the corruption window closed (tools/badsum/host/experiment/window.py)


# What to change when a measurement is missing: every inconclusive reason ends with one of these.
MORE_CORRUPTION = (
    "give the window more time or more segments: raise badsum_experiment_corruption_duration "
    "(the longest an evidence window waits), badsum_experiment_rate, or the traffic "
    "(badsum_experiment_count, _interval)"
)
NO_TRAFFIC = (
    "no experiment segment reached the injector: check that the corruptor sits on the path "
    "(badsum_experiment_corruptor, _corruption_iface, _corruption_hook)"
)
RECOVERY = (
    "lower badsum_experiment_rate, or give TCP more time after the window "
    "(badsum_experiment_count x _interval, badsum_traffic_drain_timeout)"
)
UNCOUNTED = (
    "read the checksum-error counters of every namespace on the path (csum_errors); the drops "
    "happened where no counter was read"
)


def decide(ev: Evidence, min_corrupted: int = DEFAULT_MIN_CORRUPTED) -> tuple[str, str]:
    if ev.corrupt_messages > 0:
        return CORRUPT, f"{ev.corrupt_messages} message(s) reached the application with corrupt data"
    if ev.corrupted_packets is None:
        return INCONCLUSIVE, (
            "missing measurement: the number of packets corrupted on the wire is unknown (netem's count is "
            "the capture at host B's NIC: check that it ran)"
        )
    if ev.corrupted_packets < min_corrupted:
        closed = f"; the window closed by {ev.window_closed_by}" if ev.window_closed_by else ""
        return INCONCLUSIVE, (
            f"missing measurement: only {ev.corrupted_packets} packet(s) were corrupted on the wire (fewer than "
            f"{min_corrupted}){closed}: a clean outcome would prove nothing. To change: "
            + (NO_TRAFFIC if ev.window_closed_by == "no-traffic" else MORE_CORRUPTION)
        )
    if ev.missing_messages > 0:
        return INCONCLUSIVE, (
            f"missing measurement: {ev.missing_messages} message(s) never arrived, TCP did not recover within "
            f"the time bounds. To change: {RECOVERY}"
        )
    if ev.csum_errors_total == 0:
        return INCONCLUSIVE, (
            f"missing measurement: {ev.corrupted_packets} packets were corrupted and none delivered, but no "
            f"checksum-error counter moved. To change: {UNCOUNTED}"
        )
    return CLEAN, (
        f"{ev.corrupted_packets} packets corrupted on the wire, {ev.csum_errors_total} checksum error(s) "
        "counted, no corrupt data delivered, every message arrived"
    )
