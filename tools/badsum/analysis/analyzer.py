"""Judge every message of one experiment cell from what was sent and what arrived.

The ground truth is a byte-wise comparison of the received stream with the
exact stream the client sent: TCP never drops or inserts bytes, so a bit flip
that got through shows up at the same offset, even inside a frame header.
The frame digests are checked too, as a second opinion that needs only the
receiver's file.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from badsum.host.shared import framing


@dataclass
class MessageResult:
    seq: int
    sent: float
    status: str  # intact | corrupt | missing
    arrived: float | None = None
    bit_diffs: list[tuple[int, int]] = field(default_factory=list)  # (offset in frame, bit 0-7)


@dataclass
class StreamAnalysis:
    messages: list[MessageResult]
    sent_bytes: int
    received_bytes: int
    differing_bytes: int
    frames: int
    frames_digest_ok: int
    frames_digest_bad: int
    skipped_bytes: int

    def count(self, status: str) -> int:
        return sum(1 for m in self.messages if m.status == status)


def _arrival(chunks: list[list[float]], end_offset: int) -> float | None:
    """Time of the read that completed the byte at end_offset - 1."""
    totals = [int(c[1]) for c in chunks]
    i = bisect.bisect_left(totals, end_offset)
    return chunks[i][0] if i < len(chunks) else None


def analyze_stream(
    sent: bytes,
    received: bytes,
    sent_messages: list[dict],
    chunks: list[list[float]],
) -> StreamAnalysis:
    results = []
    differing = 0
    for msg in sent_messages:
        start, length = int(msg["offset"]), int(msg["length"])
        end = start + length
        if len(received) < end:
            results.append(MessageResult(msg["seq"], msg["sent"], "missing"))
            continue
        expected, got = sent[start:end], received[start:end]
        arrived = _arrival(chunks, end)
        if expected == got:
            results.append(MessageResult(msg["seq"], msg["sent"], "intact", arrived))
            continue
        diffs = []
        for i, (a, b) in enumerate(zip(expected, got, strict=True)):
            x = a ^ b
            if x:
                differing += 1
                diffs.extend((i, bit) for bit in range(8) if x >> bit & 1)
        results.append(MessageResult(msg["seq"], msg["sent"], "corrupt", arrived, diffs))
    frames, skipped = framing.parse_stream(received)
    return StreamAnalysis(
        messages=results,
        sent_bytes=len(sent),
        received_bytes=len(received),
        differing_bytes=differing,
        frames=len(frames),
        frames_digest_ok=sum(1 for f in frames if f.payload_ok),
        frames_digest_bad=sum(1 for f in frames if f.complete and not f.payload_ok),
        skipped_bytes=skipped,
    )


def held_messages(messages: list[MessageResult], window_end: float | None) -> dict:
    """Messages sent before corruption stopped that arrived only after it stopped."""
    if window_end is None:
        return {"count": 0, "first_arrival": None, "last_arrival": None}
    held = [m for m in messages if m.sent < window_end and m.arrived is not None and m.arrived >= window_end]
    arrivals = [m.arrived for m in held if m.arrived is not None]
    return {
        "count": len(held),
        "first_arrival": min(arrivals) - window_end if arrivals else None,
        "last_arrival": max(arrivals) - window_end if arrivals else None,
    }
