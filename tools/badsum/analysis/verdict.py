"""The verdict of one cell, from measurements only.

Nothing here knows which topology or condition "should" be vulnerable: the
expected table of the incident lives in the tests and the report, never in
the code that decides.
"""

from __future__ import annotations

from dataclasses import dataclass

CORRUPT = "corrupt-delivered"
DROPPED = "valid-dropped"  # the 2020 bug: valid data dropped for a checksum NAT got wrong
CLEAN = "clean"
INCONCLUSIVE = "inconclusive"
ERROR = "error"
VERDICTS = (CORRUPT, DROPPED, CLEAN, INCONCLUSIVE, ERROR)

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


# -- the 2020 bug: valid data dropped (the vxlan-nat topology) ---------------------------------

RTO_INITIAL_S = 1.0  # TCP_TIMEOUT_INIT: when a lost SYN is sent again
STALL_S = 0.8 * RTO_INITIAL_S  # a connect this slow waited for at least one SYN retransmission
FAST_S = 0.2  # the lab's round trip is under a millisecond: up to 200 ms is load, not loss


@dataclass(frozen=True)
class OverlayEvidence:
    corrupt_messages: int
    missing_messages: int
    connect_s: float | None  # how long the client's connection took to open (client record)
    udp_csum_errors: int | None  # UdpInCsumErrors deltas at host B, every namespace read
    bad_outer: int | None  # outer UDP packets from host A that tcpdump found with a bad checksum at B
    natted_flows: int | None  # outer flows host A's NAT rewrote (its conntrack)


def decide_dropped(ev: OverlayEvidence) -> tuple[str, str]:
    """valid-dropped, clean or inconclusive, from the counters, the capture, NAT and the connect time.

    valid-dropped needs all of: host B counted outer checksum errors; the
    capture at B saw exactly as many bad outer checksums from A (B verified
    what it received, and nothing else was dropped); A's NAT rewrote outer
    flows (the drop is NAT's); the connection stalled for a retransmission;
    every message arrived intact. clean needs no error, a fast connect,
    every message, and the hazard exercised (NAT rewrote an outer flow).
    """
    if ev.corrupt_messages > 0:
        return CORRUPT, f"{ev.corrupt_messages} message(s) reached the application with corrupt data"
    missing = [
        name
        for name, value in (
            ("the connect time (client record)", ev.connect_s),
            ("host B's UdpInCsumErrors", ev.udp_csum_errors),
            ("the outer capture at host B", ev.bad_outer),
            ("host A's NAT of the outer flows (its conntrack)", ev.natted_flows),
        )
        if value is None
    ]
    if missing:
        return INCONCLUSIVE, "missing measurement: " + ", ".join(missing)
    assert ev.connect_s is not None and ev.udp_csum_errors is not None  # for the type checker
    assert ev.bad_outer is not None and ev.natted_flows is not None
    seen = (
        f"connect {ev.connect_s:.3f} s, UdpInCsumErrors +{ev.udp_csum_errors} at host B, "
        f"{ev.bad_outer} bad outer checksum(s) captured, {ev.natted_flows} outer flow(s) NATed by host A"
    )
    if ev.bad_outer > ev.udp_csum_errors:
        return INCONCLUSIVE, (
            f"{seen}: the capture shows more bad outer checksums than host B counted - B never verified them "
            "(checksums not finished on the wire: give host A's NIC tx off, or put a switch that finishes them)"
        )
    if ev.udp_csum_errors >= 1:
        if ev.natted_flows == 0:
            return INCONCLUSIVE, f"{seen}: checksum drops, but host A's NAT rewrote no outer flow: not this bug"
        if ev.connect_s < STALL_S:
            return INCONCLUSIVE, f"{seen}: checksum drops without a stalled connection"
        if ev.missing_messages:
            return INCONCLUSIVE, f"{seen}: {ev.missing_messages} message(s) never arrived"
        if ev.bad_outer != ev.udp_csum_errors:
            return INCONCLUSIVE, f"{seen}: the capture and the counter disagree"
        return DROPPED, f"{seen}: valid data dropped for a wrong outer checksum, every message intact in the end"
    if ev.connect_s >= FAST_S:
        return INCONCLUSIVE, f"{seen}: a slow connect without checksum drops - lost elsewhere"
    if ev.missing_messages:
        return INCONCLUSIVE, f"{seen}: {ev.missing_messages} message(s) never arrived"
    if ev.natted_flows == 0:
        return INCONCLUSIVE, f"{seen}: host A's NAT rewrote no outer flow - the hazard was not exercised"
    return CLEAN, f"{seen}: no drop, every message intact"
