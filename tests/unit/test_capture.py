"""Counting corrupted segments in a capture, as tcpdump judges them: real tcpdump, a pcap made here."""

from __future__ import annotations

import shutil
import socket
import struct
from pathlib import Path

import pytest

from badsum.host.experiment import capture

pytestmark = pytest.mark.skipif(not shutil.which("tcpdump"), reason="tcpdump is not installed")

PORT = 5001
SRC4, DST4 = "198.19.0.11", "198.19.0.12"
SRC6, DST6 = "fd00:b5::b", "fd00:b5::c"


def _sum16(data: bytes) -> int:
    data += b"\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _tcp(pseudo: bytes, payload: bytes, good: bool) -> bytes:
    header = struct.pack("!HHIIBBHHH", 40000, PORT, 1, 1, 5 << 4, 0x18, 502, 0, 0)
    checksum = 0xFFFF - _sum16(pseudo + struct.pack("!H", 20 + len(payload)) + header + payload)
    if not good:
        checksum ^= 0x0100  # a wrong checksum: what a corrupted segment arrives with
    return header[:16] + struct.pack("!H", checksum) + header[18:] + payload


def ipv4(payload_len: int, good: bool) -> bytes:
    payload = bytes(range(256)) * (payload_len // 256) + bytes(payload_len % 256)
    src, dst = socket.inet_aton(SRC4), socket.inet_aton(DST4)
    tcp = _tcp(src + dst + b"\0\x06", payload, good)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", 0xFFFF - _sum16(ip)) + ip[12:]
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + tcp


def ipv6(payload_len: int, good: bool) -> bytes:
    payload = bytes(payload_len)
    src, dst = socket.inet_pton(socket.AF_INET6, SRC6), socket.inet_pton(socket.AF_INET6, DST6)
    tcp = _tcp(src + dst + b"\0\0\0\x06", payload, good)
    ip = struct.pack("!IHBB16s16s", 6 << 28, len(tcp), 6, 64, src, dst)
    return b"\x02" * 6 + b"\x04" * 6 + b"\x86\xdd" + ip + tcp


def pcap(path: Path, frames: list[bytes]) -> Path:
    data = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for n, frame in enumerate(frames):
        data += struct.pack("<IIII", 1_700_000_000, n, len(frame), len(frame)) + frame
    path.write_bytes(data)
    return path


def test_only_segments_tcpdump_can_judge_are_counted(tmp_path: Path) -> None:
    frames = [
        ipv4(1460, good=True),
        ipv4(1460, good=False),  # corrupted on the wire: counted
        ipv4(2920, good=False),  # longer than the MTU: GRO merged it from verified segments
        ipv6(1440, good=False),  # corrupted, IPv6 (tcpdump prints it on one line): counted
        ipv6(1440, good=True),
    ]
    count, samples, merged = capture.decode(pcap(tmp_path / "b.pcap", frames), PORT, mtu=1500)
    assert (count, merged) == (2, 1)
    assert "length 1500" in samples[0] and "incorrect" in samples[0]
    assert "IP6" in samples[1] and "payload length: 1460" in samples[1]
    # Without the MTU nothing can be told apart: every wrong checksum counts.
    assert capture.decode(tmp_path / "b.pcap", PORT)[0] == 3


def test_segments_from_the_server_are_never_counted(tmp_path: Path) -> None:
    frame = bytearray(ipv4(100, good=False))
    frame[34:38] = struct.pack("!HH", PORT, 40000)  # the server's own segment, checksum unfinished
    assert capture.decode(pcap(tmp_path / "a.pcap", [bytes(frame)]), PORT, mtu=1500)[0] == 0


# -- the outer UDP header of a VXLAN packet (the vxlan-nat topology's capture at host B) -----------


def vxlan(check: str, sport: int = 33677) -> bytes:
    """An outer VXLAN packet from host A: the inner frame a TCP SYN; the outer UDP checksum as asked."""
    inner = ipv4(0, good=True)
    vx = struct.pack("!II", 0x08000000, 1 << 8) + inner  # flags I, VNI 1
    src, dst = socket.inet_aton(SRC4), socket.inet_aton(DST4)
    udp = struct.pack("!HHHH", sport, 8472, 8 + len(vx), 0) + vx
    if check == "ok":
        value = 0xFFFF - _sum16(src + dst + b"\0\x11" + struct.pack("!H", len(udp)) + udp)
    else:
        value = {"none": 0, "0xffff": 0xFFFF}[check]  # 0xffff: what the unfixed NAT wrote for a port-only SNAT
    udp = udp[:6] + struct.pack("!H", value) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0x4000, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", 0xFFFF - _sum16(ip)) + ip[12:]
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + udp


def test_the_outer_udp_checksums_are_judged_as_tcpdump_judges_them(tmp_path: Path) -> None:
    frames = [vxlan("0xffff"), vxlan("none"), vxlan("none", 40000), vxlan("ok", 40001), vxlan("0xffff", 6717)]
    got = capture.decode_tunnel(pcap(tmp_path / "outer.pcap", frames), 8472)
    assert got["packets"] == 5
    assert (got["bad_udp_cksum"], got["no_cksum"]) == (2, 2)
    assert got["written"] == {"0xffff": 2}  # what the sender wrote, never what it should have been
    assert all("bad udp cksum 0xffff ->" in line for line in got["samples"])
    # a packet to another port is not the overlay's
    assert capture.decode_tunnel(tmp_path / "outer.pcap", 4789)["packets"] == 0


def test_a_tunnel_capture_is_stopped_and_decoded_with_the_others(tmp_path: Path) -> None:
    out = tmp_path / "captures"
    out.mkdir()
    pcap(out / "tunnel-outer.pcap", [vxlan("0xffff"), vxlan("none")])
    (out / "tunnel-outer.udpport").write_text("8472")
    pcap(out / "host-b-eth0.pcap", [ipv4(100, good=False)])
    found = capture.stop(out, PORT)["captures"]
    assert found["tunnel-outer"]["tunnel"]["bad_udp_cksum"] == 1
    assert found["host-b-eth0"]["incorrect"] == 1 and "tunnel" not in found["host-b-eth0"]
    with pytest.raises(capture.HostError, match="NAME:IFACE:UDPPORT:SRC"):
        capture.start_tunnel(out, ["outer:eth0:8472"], 5, 10)
