"""The message format of the harness: a readable header line, then the payload.

Standard library only: this module is also copied to the hosts next to the
client. A stream of frames stays readable with `cat`, like the original
harness' output, and every frame carries what the analyzer needs to judge it
on its own: sequence number, payload length and a SHA-256 of the payload,
plus a CRC of the header itself so that a damaged header is recognised and
the parser can resynchronise on the next one.

    #BADSUM seq=00000042 len=002048 sent=1795477636675273700 sha256=<64 hex> crc=1a2b3c4d\\n
    <payload: printable text, ending in \\n>
"""

import hashlib
import re
import zlib
from typing import List, NamedTuple, Tuple

MAGIC = b"#BADSUM "
HEADER_RE = re.compile(rb"#BADSUM seq=(\d{8}) len=(\d{6}) sent=(\d{20}) sha256=([0-9a-f]{64}) crc=([0-9a-f]{8})\n")
HEADER_LEN = len(b"#BADSUM seq=00000000 len=000000 sent=00000000000000000000 sha256=" + b"0" * 64 + b" crc=00000000\n")
MAX_PAYLOAD = 999_999
TEXT = b"the quick brown fox jumps over the lazy dog; THE FIVE BOXING WIZARDS JUMP QUICKLY. 0123456789 "


def payload_for(seq: int, size: int) -> bytes:
    """Deterministic printable payload: any damage to it is visible to a person too."""
    if not 1 <= size <= MAX_PAYLOAD:
        raise ValueError(f"payload size {size} outside 1-{MAX_PAYLOAD}")
    lead = b"message %08d: " % seq
    body = (lead + TEXT * (size // len(TEXT) + 2))[: size - 1]
    return body + b"\n"


def header_crc(seq: int, length: int, sent_ns: int, digest: str) -> int:
    return zlib.crc32(b"%d %d %d %s" % (seq, length, sent_ns, digest.encode()))


def encode(seq: int, payload: bytes, sent_ns: int) -> bytes:
    digest = hashlib.sha256(payload).hexdigest()
    crc = header_crc(seq, len(payload), sent_ns, digest)
    header = b"#BADSUM seq=%08d len=%06d sent=%020d sha256=%s crc=%08x\n" % (
        seq,
        len(payload),
        sent_ns,
        digest.encode(),
        crc,
    )
    assert len(header) == HEADER_LEN
    return header + payload


# A NamedTuple, not a dataclass: the controller reads it through badsum.host.shared, which keeps
# to the fleet hosts' Python 3.6.
class Frame(NamedTuple):
    offset: int  # where the header starts in the stream
    seq: int
    length: int
    sent_ns: int
    digest: str
    payload_ok: bool  # digest matches
    complete: bool  # the whole payload is in the stream


def parse_stream(data: bytes) -> Tuple[List[Frame], int]:
    """Frames found in a received stream, and how many bytes were skipped to resync.

    A header is trusted only if its CRC matches; anything else is skipped up to
    the next magic, so one damaged header costs one frame, not the rest of the
    stream.
    """
    frames: List[Frame] = []
    pos = skipped = 0
    while pos < len(data):
        start = data.find(MAGIC, pos)
        if start < 0:
            skipped += len(data) - pos
            break
        skipped += start - pos
        m = HEADER_RE.match(data, start)
        if not m:
            if len(data) - start < HEADER_LEN:  # truncated header at the end
                skipped += len(data) - start
                break
            pos = start + 1
            skipped += 1
            continue
        seq, length, sent_ns = int(m[1]), int(m[2]), int(m[3])
        digest = m[4].decode()
        if header_crc(seq, length, sent_ns, digest) != int(m[5], 16):
            pos = start + 1
            skipped += 1
            continue
        body_start = m.end()
        body = data[body_start : body_start + length]
        complete = len(body) == length
        ok = complete and hashlib.sha256(body).hexdigest() == digest
        frames.append(Frame(start, seq, length, sent_ns, digest, ok, complete))
        pos = body_start + length if complete else len(data)
    return frames, skipped
