from __future__ import annotations

from badsum.analysis import analyzer
from badsum.host.shared import framing


def _sent(n: int, size: int = 100) -> tuple[bytes, list[dict]]:
    stream, msgs = b"", []
    for i in range(n):
        frame = framing.encode(i, framing.payload_for(i, size), 1)
        msgs.append({"seq": i, "offset": len(stream), "length": len(frame), "sent": 100.0 + i})
        stream += frame
    return stream, msgs


def test_identical_stream_is_all_intact_with_arrival_times() -> None:
    sent, msgs = _sent(3)
    chunks = [[200.0, msgs[0]["length"]], [201.0, len(sent)]]
    result = analyzer.analyze_stream(sent, sent, msgs, chunks)
    assert [m.status for m in result.messages] == ["intact"] * 3
    assert [m.arrived for m in result.messages] == [200.0, 201.0, 201.0]
    assert result.differing_bytes == 0 and result.frames_digest_ok == 3


def test_bit_flip_is_located_to_the_bit() -> None:
    sent, msgs = _sent(3)
    received = bytearray(sent)
    target = msgs[1]["offset"] + framing.HEADER_LEN + 10
    received[target] ^= 1 << 5
    result = analyzer.analyze_stream(sent, bytes(received), msgs, [[1.0, len(sent)]])
    assert [m.status for m in result.messages] == ["intact", "corrupt", "intact"]
    assert result.messages[1].bit_diffs == [(framing.HEADER_LEN + 10, 5)]
    assert result.frames_digest_bad == 1


def test_flip_in_a_header_is_still_caught_byte_wise() -> None:
    sent, msgs = _sent(2)
    received = bytearray(sent)
    received[msgs[0]["offset"] + 3] ^= 0x10
    result = analyzer.analyze_stream(sent, bytes(received), msgs, [[1.0, len(sent)]])
    assert result.messages[0].status == "corrupt"
    assert result.frames == 1  # the damaged header was skipped, the next one found


def test_short_stream_leaves_messages_missing() -> None:
    sent, msgs = _sent(3)
    cut = msgs[2]["offset"] + 5
    result = analyzer.analyze_stream(sent, sent[:cut], msgs, [[1.0, cut]])
    assert [m.status for m in result.messages] == ["intact", "intact", "missing"]


def test_held_messages_are_those_sent_before_and_arriving_after_the_window() -> None:
    msgs = [
        analyzer.MessageResult(0, sent=1.0, status="intact", arrived=1.1),
        analyzer.MessageResult(1, sent=2.0, status="intact", arrived=5.5),
        analyzer.MessageResult(2, sent=3.0, status="intact", arrived=6.0),
        analyzer.MessageResult(3, sent=6.0, status="intact", arrived=6.1),
    ]
    held = analyzer.held_messages(msgs, window_end=5.0)
    assert held["count"] == 2
    assert held["first_arrival"] == 0.5 and held["last_arrival"] == 1.0
