"""The incident's signatures in a cell's result: where the damaged bits sit in the stream."""

from __future__ import annotations

from collections import Counter


def bit_offsets_mod32(cell: dict) -> Counter[int]:
    """Offsets of the flipped bits in the stream, mod 32 bytes: one faulty NIC shows a single value."""
    counts: Counter[int] = Counter()
    for msg in cell.get("corrupt_messages") or []:
        base = int(msg.get("stream_offset", 0))
        for offset, _bit in msg["bit_diffs"]:
            counts[(base + int(offset)) % 32] += 1
    return counts
