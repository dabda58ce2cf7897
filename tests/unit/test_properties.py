"""Property tests: whatever the wire does to a stream, the parser never crashes and the analyzer never
counts a damaged message as intact."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from badsum.analysis import analyzer
from badsum.host.shared import framing

SIZES = st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=6)


def stream_of(sizes: list[int]) -> tuple[bytes, list[dict]]:
    stream, msgs = b"", []
    for seq, size in enumerate(sizes):
        frame = framing.encode(seq, framing.payload_for(seq, size), 10**18 + seq)
        msgs.append({"seq": seq, "offset": len(stream), "length": len(frame), "sent": float(seq)})
        stream += frame
    return stream, msgs


@given(st.binary(max_size=2000))
def test_the_parser_takes_any_bytes(data: bytes) -> None:
    frames, skipped = framing.parse_stream(data)
    assert 0 <= skipped <= len(data)
    assert all(0 <= f.offset < len(data) for f in frames)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=200)
@given(SIZES, st.data())
def test_damage_anywhere_is_never_counted_intact(sizes: list[int], data: st.DataObject) -> None:
    sent, msgs = stream_of(sizes)
    received = bytearray(sent)
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(sent) - 1), st.integers(0, 7)), min_size=1, max_size=8))
    for offset, bit in flips:
        received[offset] ^= 1 << bit
    result = analyzer.analyze_stream(sent, bytes(received), msgs, [[1.0, len(received)]])
    for msg, judged in zip(msgs, result.messages, strict=True):
        damaged = (
            sent[msg["offset"] : msg["offset"] + msg["length"]]
            != received[msg["offset"] : msg["offset"] + msg["length"]]
        )
        assert judged.status == ("corrupt" if damaged else "intact")
    # The frame digests, the second opinion: a frame the parser calls good
    # carries exactly the payload that was sent for its sequence number.
    frames, _ = framing.parse_stream(bytes(received))
    for frame in frames:
        if frame.payload_ok:
            body = bytes(received[frame.offset + framing.HEADER_LEN : frame.offset + framing.HEADER_LEN + frame.length])
            assert body == framing.payload_for(frame.seq, frame.length)


@given(SIZES, st.integers(min_value=0, max_value=3000))
def test_a_truncated_stream_leaves_messages_missing_never_intact(sizes: list[int], cut: int) -> None:
    sent, msgs = stream_of(sizes)
    result = analyzer.analyze_stream(sent, sent[:cut], msgs, [[1.0, min(cut, len(sent))]])
    for msg, judged in zip(msgs, result.messages, strict=True):
        complete = msg["offset"] + msg["length"] <= cut
        assert judged.status == ("intact" if complete else "missing")


@given(SIZES, st.permutations(range(6)))
def test_reordered_frames_are_judged_by_position_not_by_name(sizes: list[int], order: list[int]) -> None:
    # TCP delivers in order; a stream whose frames arrive reordered is not the
    # stream that was sent, and every frame out of place must count as corrupt.
    sent, msgs = stream_of(sizes)
    frames = [sent[m["offset"] : m["offset"] + m["length"]] for m in msgs]
    permuted = [frames[i] for i in order if i < len(frames)]
    received = b"".join(permuted)
    result = analyzer.analyze_stream(sent, received, msgs, [[1.0, len(received)]])
    for msg, judged in zip(msgs, result.messages, strict=True):
        same = (
            received[msg["offset"] : msg["offset"] + msg["length"]]
            == sent[msg["offset"] : msg["offset"] + msg["length"]]
        )
        assert judged.status == ("intact" if same else "corrupt")
