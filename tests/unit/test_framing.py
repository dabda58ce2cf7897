from __future__ import annotations

import pytest

from badsum.host.shared import framing


def test_frames_round_trip() -> None:
    stream = b"".join(framing.encode(i, framing.payload_for(i, 300), 10**18 + i) for i in range(5))
    frames, skipped = framing.parse_stream(stream)
    assert [f.seq for f in frames] == [0, 1, 2, 3, 4]
    assert all(f.payload_ok and f.complete for f in frames)
    assert skipped == 0


def test_payload_is_printable_and_ends_in_newline() -> None:
    payload = framing.payload_for(7, 500)
    assert len(payload) == 500
    assert payload.endswith(b"\n")
    assert all(32 <= b < 127 for b in payload[:-1])


@pytest.mark.parametrize("size", [0, framing.MAX_PAYLOAD + 1])
def test_payload_size_is_bounded(size: int) -> None:
    with pytest.raises(ValueError):
        framing.payload_for(0, size)


def test_flipped_payload_bit_fails_the_digest_only_for_that_frame() -> None:
    stream = bytearray(b"".join(framing.encode(i, framing.payload_for(i, 200), 1) for i in range(3)))
    stream[framing.HEADER_LEN + 50] ^= 0x04  # inside frame 0's payload
    frames, _ = framing.parse_stream(bytes(stream))
    assert [f.payload_ok for f in frames] == [False, True, True]


def test_damaged_header_is_skipped_and_parsing_resynchronises() -> None:
    stream = bytearray(b"".join(framing.encode(i, framing.payload_for(i, 200), 1) for i in range(3)))
    frame_len = framing.HEADER_LEN + 200
    stream[frame_len + 15] ^= 0x01  # a digit of frame 1's sequence number: CRC mismatch
    frames, skipped = framing.parse_stream(bytes(stream))
    assert [f.seq for f in frames] == [0, 2]
    assert skipped >= frame_len - 1


def test_truncated_stream_marks_last_frame_incomplete() -> None:
    stream = b"".join(framing.encode(i, framing.payload_for(i, 200), 1) for i in range(2))
    frames, _ = framing.parse_stream(stream[:-50])
    assert frames[-1].complete is False and frames[-1].payload_ok is False
