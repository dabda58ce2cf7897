"""The kernel's own interfaces, without a subprocess: network namespaces, links, rx-checksumming.

A fleet host may run hundreds of containers, and the guard re-reads them
every time a link appears: forking `ip` and `ethtool` per namespace and per
device would cost more than the work. So this module talks to the kernel
directly, standard library only:

- setns(2)/unshare(2) through ctypes (os.setns arrived in Python 3.12);
- an rtnetlink dump of the links of the current namespace, and a socket
  that hears links come and go (the guard's trigger);
- the few rtnetlink requests the probe and the verification make (a veth
  pair, a move to another namespace, an address, up, delete): an `ip` per
  step cost each host call ~3 ms of CPU a step;
- the ETHTOOL_GRXCSUM/SRXCSUM ioctls: NETIF_F_RXCSUM, the bit veth_xmit()
  consulted before Linux 4.4;
- a VXLAN device's attributes (IFLA_INFO_DATA of kind "vxlan") and its
  tx-checksum-ip-generic feature (NETIF_F_HW_CSUM, found by its name through
  ETHTOOL_GSTRINGS, read and set with ETHTOOL_GFEATURES/SFEATURES): the knob
  of the 2020 VXLAN + NAT hazard (badsum/host/fleet/vxlan.py).

setns changes the calling thread only: everything here runs on the thread
that calls it, and `inside()` always puts the thread back where it was.

Interface names are bytes: Linux takes any but '/', ':', NUL and
whitespace, UTF-8 or not, and a tenant names devices in its own namespaces.
A Link's name is those bytes decoded with surrogateescape, so it goes back
to the kernel unchanged; show it with common.shown().

The fleet's tools run here on kernels from 3.10 on: /proc/thread-self
(3.17) and SO_NETNS_COOKIE (5.14) have fallbacks.
"""

# Longer than ~300 lines: one protocol: the message packing and parsing every query shares, beside
#   the queries; shipped to hosts, standard library only.

import contextlib
import ctypes
import errno
import fcntl
import os
import socket
import struct
from typing import Iterator, List, NamedTuple, Optional, Tuple

from .common import HostError, shown

CLONE_NEWNET = 0x40000000
# The calling thread's namespace. Before Linux 3.17 there is no
# /proc/thread-self: the kit is single-threaded, so its process's own is the same.
SELF = "/proc/thread-self/ns/net" if os.path.exists("/proc/thread-self") else "/proc/self/ns/net"
PROC_NET = os.path.dirname(os.path.dirname(SELF)) + "/net"  # /proc/<the thread>/net: this namespace's counters
# A netlink answer never takes long; one that does not come must not hang a pass.
TIMEOUT = 5.0
ENCODING = ("utf-8", "surrogateescape")

# include/uapi/linux/{netlink,rtnetlink,if_link}.h
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_NEWADDR = 16, 17, 18, 20
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x300, 0x200, 0x400
RTMGRP_LINK = 0x1
IFLA_ADDRESS, IFLA_IFNAME, IFLA_LINK, IFLA_MASTER, IFLA_LINKINFO = 1, 3, 5, 10, 18
IFLA_NET_NS_FD, IFLA_LINK_NETNSID = 28, 37
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
IFF_UP = 0x1
RTM_NEWNEIGH, NDA_DST, NDA_LLADDR, NUD_PERMANENT = 28, 1, 2, 0x80
NDMSG = struct.Struct("=BxxxiHBB")
NLMSG_HDR = struct.Struct("=IHHII")
IFINFOMSG = struct.Struct("=BxHiII")
IFADDRMSG = struct.Struct("=BBBBI")
RTATTR = struct.Struct("=HH")

# include/uapi/linux/{sockios,ethtool}.h
SIOCETHTOOL = 0x8946
ETHTOOL_GRXCSUM, ETHTOOL_SRXCSUM = 0x14, 0x15
IFREQ_SIZE = 40

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        code = ctypes.get_errno()
        raise HostError(f"{what}: {os.strerror(code)} (are we root?)")


def setns(fd: int) -> None:
    _check(_libc.setns(fd, CLONE_NEWNET), "setns(CLONE_NEWNET)")


def unshare_netns() -> None:
    """Move the calling thread into a new, empty network namespace."""
    _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")


def inode(path: str = SELF) -> int:
    return os.stat(path).st_ino


@contextlib.contextmanager
def inside(path: str, expect: Optional[int] = None) -> Iterator[None]:
    """Run the block in the network namespace at `path` (/proc/PID/ns/net, a bind mount, an fd path).

    With `expect`, only if that path still leads to that namespace (inode):
    a PID is reused within milliseconds here, and /proc/PID/ns/net of a new
    process may be the host's own namespace, which must never be mistaken for
    the container that was found there a moment ago.
    """
    own = os.open(SELF, os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        os.close(own)
        raise HostError(f"cannot open the network namespace {path}: {exc.strerror}") from None
    if expect is not None and os.fstat(target).st_ino != expect:
        os.close(target)
        os.close(own)
        raise HostError(f"{path} is no longer the namespace {expect}: its process ended")
    try:
        setns(target)
        try:
            yield
        finally:
            setns(own)
    finally:
        os.close(target)
        os.close(own)


SO_NETNS_COOKIE = 71  # Linux 5.14+: a namespace's id for this boot, never reused (an inode is)


def netns_cookie() -> Optional[int]:
    """The current network namespace's cookie; None on kernels without it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            return int.from_bytes(s.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8), "little")
        except OSError:
            return None


class Link(NamedTuple):
    index: int
    name: str  # bytes as surrogate-escaped str: pass it back as it is, show it with common.shown()
    kind: str  # "veth", "bridge"... ; "" for a device without a driver kind (a physical NIC)
    peer_index: int  # IFLA_LINK: for a veth, its peer's ifindex (in the peer's namespace)
    peer_netnsid: int  # IFLA_LINK_NETNSID: the peer's namespace, as this one numbers it; -1: here (or Linux < 4.0)
    master: int
    info_data: bytes = b""  # IFLA_INFO_DATA: the kind's own attributes (a vxlan's: vxlan_info())

    @property
    def peer_elsewhere(self) -> bool:
        return self.peer_netnsid >= 0


def _attrs(data: bytes, offset: int, end: int) -> Iterator[Tuple[int, bytes]]:
    while offset + RTATTR.size <= end:
        length, kind = RTATTR.unpack_from(data, offset)
        if length < RTATTR.size:
            return
        yield kind & 0x3FFF, data[offset + RTATTR.size : offset + length]
        offset += (length + 3) & ~3


def _link(data: bytes, offset: int, end: int) -> Link:
    _family, _type, index, _flags, _change = IFINFOMSG.unpack_from(data, offset)
    name, kind, peer, nsid, master, info = "", "", 0, -1, 0, b""
    for attr, value in _attrs(data, offset + IFINFOMSG.size, end):
        if attr == IFLA_IFNAME:
            name = value.split(b"\0", 1)[0].decode(*ENCODING)
        elif attr == IFLA_LINK:
            peer = struct.unpack("=I", value[:4])[0]
        elif attr == IFLA_MASTER:
            master = struct.unpack("=I", value[:4])[0]
        elif attr == IFLA_LINK_NETNSID and len(value) >= 4:
            nsid = struct.unpack("=i", value[:4])[0]
        elif attr == IFLA_LINKINFO:
            for sub, subvalue in _attrs(value, 0, len(value)):
                if sub == IFLA_INFO_KIND:
                    kind = subvalue.split(b"\0", 1)[0].decode("ascii", "replace")
                elif sub == IFLA_INFO_DATA:
                    info = subvalue
    return Link(index, name, kind, peer, nsid, master, info)


def parse(data: bytes) -> Tuple[List[Link], bool]:
    """The links in a batch of netlink messages, and whether the dump is done."""
    links, offset = [], 0
    while offset + NLMSG_HDR.size <= len(data):
        length, kind, _flags, _seq, _pid = NLMSG_HDR.unpack_from(data, offset)
        if length < NLMSG_HDR.size:
            break
        if kind == NLMSG_DONE:
            return links, True
        if kind == NLMSG_ERROR:
            code = -struct.unpack_from("=i", data, offset + NLMSG_HDR.size)[0]
            raise HostError(f"netlink: {os.strerror(code)}")
        if kind in (RTM_NEWLINK, RTM_DELLINK):
            links.append(_link(data, offset + NLMSG_HDR.size, offset + length))
        offset += (length + 3) & ~3
    return links, False


def links() -> List[Link]:
    """Every link of the calling thread's current network namespace."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE) as sock:
        sock.settimeout(TIMEOUT)
        request = IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        header = NLMSG_HDR.pack(NLMSG_HDR.size + len(request), RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
        sock.sendall(header + request)
        found: List[Link] = []
        while True:
            try:
                data = sock.recv(1 << 16)
            except socket.timeout:
                raise HostError(f"netlink: no answer to a link dump within {TIMEOUT:g} s") from None
            batch, done = parse(data)
            found += batch
            if done:
                return found


def _attr(kind: int, payload: bytes) -> bytes:
    data = RTATTR.pack(RTATTR.size + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def _name(name: str) -> bytes:
    return _attr(IFLA_IFNAME, name.encode(*ENCODING) + b"\0")


def _request(kind: int, flags: int, body: bytes, what: str, allowed: Tuple[int, ...] = ()) -> int:
    """One rtnetlink request in the calling thread's namespace: 0, or the error it was allowed to meet."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendall(NLMSG_HDR.pack(NLMSG_HDR.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags, 1, 0) + body)
        try:
            reply = sock.recv(1 << 16)
        except socket.timeout:
            raise HostError(f"{what}: no answer from netlink within {TIMEOUT:g} s") from None
    _length, reply_kind, _flags, _seq, _pid = NLMSG_HDR.unpack_from(reply)
    code = -struct.unpack_from("=i", reply, NLMSG_HDR.size)[0] if reply_kind == NLMSG_ERROR else 0
    if code and code not in allowed:
        raise HostError(f"{what}: {os.strerror(code)}")
    return code


def _link_request(name: str, *attrs: bytes, up: bool = False) -> bytes:
    header = IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, IFF_UP if up else 0, IFF_UP if up else 0)
    return header + _name(name) + b"".join(attrs)


def add_veth(name: str, peer: str, peer_netns_fd: Optional[int] = None, peer_mac: Optional[bytes] = None) -> None:
    """`ip link add NAME type veth peer name PEER [netns FD] [address MAC]`, in the thread's namespace."""
    peer_attrs = _name(peer)
    if peer_netns_fd is not None:
        peer_attrs += _attr(IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd))
    if peer_mac is not None:
        peer_attrs += _attr(IFLA_ADDRESS, peer_mac)
    peer_info = _attr(VETH_INFO_PEER, IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + peer_attrs)
    info = _attr(IFLA_LINKINFO, _attr(IFLA_INFO_KIND, b"veth") + _attr(IFLA_INFO_DATA, peer_info))
    body = _link_request(name, info)
    _request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"adding the veth pair {name}/{peer}")


def move_link(name: str, netns_fd: int) -> None:
    """`ip link set NAME netns ...`: to the namespace open at netns_fd (a fd, never a PID: setns is per thread)."""
    body = _link_request(name, _attr(IFLA_NET_NS_FD, struct.pack("=I", netns_fd)))
    _request(RTM_NEWLINK, 0, body, f"moving {name} to another namespace")


def set_up(name: str) -> None:
    _request(RTM_NEWLINK, 0, _link_request(name, up=True), f"setting {name} up")


def add_ipv4(name: str, address: str, prefix: int) -> None:
    """`ip addr add ADDRESS/PREFIX dev NAME`."""
    packed = socket.inet_aton(address)
    header = IFADDRMSG.pack(socket.AF_INET, prefix, 0, 0, socket.if_nametoindex(name))
    body = header + _attr(IFA_LOCAL, packed) + _attr(IFA_ADDRESS, packed)
    _request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body, f"adding {address}/{prefix} to {name}")


def add_neighbor(name: str, address: str, mac: bytes) -> None:
    """`ip neigh add ADDRESS lladdr MAC dev NAME nud permanent`: no ARP for ADDRESS on NAME."""
    header = NDMSG.pack(socket.AF_INET, socket.if_nametoindex(name), NUD_PERMANENT, 0, 0)
    body = header + _attr(NDA_DST, socket.inet_aton(address)) + _attr(NDA_LLADDR, mac)
    _request(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_EXCL, body, f"adding the neighbour {address} on {name}")


def delete_link(name: str) -> bool:
    """`ip link del NAME`; False when there was no such link."""
    return _request(RTM_DELLINK, 0, _link_request(name), f"deleting {name}", allowed=(errno.ENODEV,)) == 0


def link_events() -> socket.socket:
    """A socket that receives a message whenever a link of this namespace appears, changes or goes."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
    sock.bind((0, RTMGRP_LINK))
    return sock


RTM_NEWNSID, RTM_GETNSID = 88, 90
NETNSA_NSID, NETNSA_FD = 1, 3
RTGENMSG = struct.Struct("=Bxxx")


def netnsid(netns_fd: int) -> Optional[int]:
    """The id the calling thread's namespace gives the namespace open at netns_fd (-1: none yet); None before 4.0.

    Link events name a veth's peer namespace by this id (IFLA_LINK_NETNSID):
    the guard keeps it to know which namespace an event is about.
    """
    body = RTGENMSG.pack(socket.AF_UNSPEC) + _attr(NETNSA_FD, struct.pack("=I", netns_fd))
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendall(NLMSG_HDR.pack(NLMSG_HDR.size + len(body), RTM_GETNSID, NLM_F_REQUEST, 1, 0) + body)
        try:
            reply = sock.recv(1 << 12)
        except (socket.timeout, OSError):
            return None
    length, kind, _flags, _seq, _pid = NLMSG_HDR.unpack_from(reply)
    if kind != RTM_NEWNSID:
        return None
    for attr, value in _attrs(reply, NLMSG_HDR.size + RTGENMSG.size, min(length, len(reply))):
        if attr == NETNSA_NSID and len(value) >= 4:
            return struct.unpack("=i", value[:4])[0]
    return None


def events(data: bytes) -> List[Link]:
    """The links a batch of link events is about (a malformed batch says only "look again": none)."""
    try:
        return parse(data)[0]
    except (HostError, struct.error):
        return []


def _ethtool(ifname: str, cmd: int, data: int = 0) -> int:
    """A struct ethtool_value request (cmd, data): the data the kernel answered."""
    return struct.unpack("=II", _ethtool_buffer(ifname, struct.pack("=II", cmd, data))[:8])[1]


def rx_checksumming(ifname: str) -> bool:
    """NETIF_F_RXCSUM of a device in the current namespace (`ethtool -k`'s rx-checksumming)."""
    return bool(_ethtool(ifname, ETHTOOL_GRXCSUM))


def set_rx_checksumming(ifname: str, on: bool) -> None:
    """`ethtool -K IF rx on|off`, read back: a device that ignores it is an error."""
    _ethtool(ifname, ETHTOOL_SRXCSUM, int(on))
    if rx_checksumming(ifname) != on:
        raise HostError(f"{shown(ifname)} kept rx-checksumming {'off' if on else 'on'} after it was set")


# include/uapi/linux/if_link.h: IFLA_VXLAN_*
IFLA_VXLAN_ID, IFLA_VXLAN_LINK, IFLA_VXLAN_LOCAL, IFLA_VXLAN_PORT = 1, 3, 4, 15
IFLA_VXLAN_UDP_CSUM, IFLA_VXLAN_COLLECT_METADATA = 18, 25


def vxlan_info(data: bytes) -> dict:
    """A vxlan link's IFLA_INFO_DATA: vni, port, local, udp_csum (the outer UDP checksum), flow_based.

    udp_csum is None when the kernel does not say (before 3.16 it has no such
    attribute): the caller treats the device as either variant. A truncated
    attribute is skipped, never fatal: the bytes come from the kernel, but a
    parser on a production host must not be the thing that breaks.
    """
    info: dict = {"vni": None, "port": None, "local": None, "udp_csum": None, "flow_based": False}
    for attr, value in _attrs(data, 0, len(data)):
        if attr == IFLA_VXLAN_ID and len(value) >= 4:
            info["vni"] = struct.unpack("=I", value[:4])[0]
        elif attr == IFLA_VXLAN_PORT and len(value) >= 2:
            info["port"] = struct.unpack("!H", value[:2])[0]
        elif attr == IFLA_VXLAN_LOCAL and len(value) >= 4:
            info["local"] = socket.inet_ntoa(value[:4])
        elif attr == IFLA_VXLAN_UDP_CSUM and len(value) >= 1:
            info["udp_csum"] = bool(value[0])
        elif attr == IFLA_VXLAN_COLLECT_METADATA and len(value) >= 1:
            info["flow_based"] = bool(value[0])
    return info


# include/uapi/linux/ethtool.h
ETHTOOL_GSTRINGS, ETHTOOL_GSSET_INFO, ETHTOOL_GFEATURES, ETHTOOL_SFEATURES = 0x1B, 0x37, 0x3A, 0x3B
ETH_SS_FEATURES, ETH_GSTRING_LEN = 4, 32
HW_CSUM = "tx-checksum-ip-generic"  # net/ethtool/common.c: netdev_features_strings[NETIF_F_HW_CSUM_BIT]


def _ethtool_buffer(ifname: str, payload: bytes) -> bytes:
    """One SIOCETHTOOL request whose struct is `payload`; the struct as the kernel left it."""
    value = ctypes.create_string_buffer(payload, len(payload))
    ifreq = struct.pack("16sP", ifname.encode(*ENCODING), ctypes.addressof(value)).ljust(IFREQ_SIZE, b"\0")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                raise HostError(f"{shown(ifname)} does not exist (any more) in this namespace") from None
            raise HostError(f"ethtool ioctl on {shown(ifname)}: {exc.strerror}") from None
    return value.raw


def feature_bit(ifname: str, wanted: str = HW_CSUM) -> Tuple[int, int]:
    """(the feature's bit, how many features there are), by its name: the numbering is the kernel's to change."""
    # struct ethtool_sset_info { u32 cmd; u32 reserved; u64 sset_mask; u32 data[1]; }
    info = _ethtool_buffer(ifname, struct.pack("=IIQI", ETHTOOL_GSSET_INFO, 0, 1 << ETH_SS_FEATURES, 0))
    count = struct.unpack_from("=IIQI", info)[3]
    if not 0 < count <= 1024:
        raise HostError(f"{shown(ifname)}: the kernel names {count} features")
    # struct ethtool_gstrings { u32 cmd; u32 string_set; u32 len; u8 data[]; }
    raw = _ethtool_buffer(
        ifname, struct.pack("=III", ETHTOOL_GSTRINGS, ETH_SS_FEATURES, count) + bytes(count * ETH_GSTRING_LEN)
    )[12:]
    names = [raw[i * ETH_GSTRING_LEN : (i + 1) * ETH_GSTRING_LEN].split(b"\0", 1)[0] for i in range(count)]
    try:
        return names.index(wanted.encode()), count
    except ValueError:
        raise HostError(f"{shown(ifname)} has no feature {wanted}") from None


def feature(ifname: str, wanted: str = HW_CSUM) -> dict:
    """`ethtool -k IF`'s line for one feature: active, requested, changeable (not [fixed])."""
    bit, count = feature_bit(ifname, wanted)
    blocks = (count + 31) // 32
    # struct ethtool_gfeatures { u32 cmd; u32 size; struct { u32 available, requested, active, never_changed; }[]; }
    buf = _ethtool_buffer(ifname, struct.pack("=II", ETHTOOL_GFEATURES, blocks) + bytes(16 * blocks))
    available, requested, active, _never = struct.unpack_from("=IIII", buf, 8 + 16 * (bit // 32))
    mask = 1 << (bit % 32)
    return {"active": bool(active & mask), "requested": bool(requested & mask), "changeable": bool(available & mask)}


def set_feature(ifname: str, on: bool, wanted: str = HW_CSUM) -> None:
    """`ethtool -K IF tx-checksum-ip-generic on|off`, that bit alone, read back (ignored by the device: an error)."""
    bit, count = feature_bit(ifname, wanted)
    blocks = (count + 31) // 32
    # struct ethtool_sfeatures { u32 cmd; u32 size; struct { u32 valid, requested; }[]; }
    pairs = [(0, 0)] * blocks
    mask = 1 << (bit % 32)
    pairs[bit // 32] = (mask, mask if on else 0)
    _ethtool_buffer(
        ifname, struct.pack("=II", ETHTOOL_SFEATURES, blocks) + b"".join(struct.pack("=II", *p) for p in pairs)
    )
    if feature(ifname, wanted)["active"] != on:
        raise HostError(f"{shown(ifname)} kept {wanted} {'off' if on else 'on'} after it was set")


def udp_csum_errors() -> int:
    """UdpInCsumErrors of the calling thread's current namespace (what both probes decide from)."""
    with open(PROC_NET + "/snmp") as f:
        lines = [line.split() for line in f if line.startswith("Udp:")]
    counters = dict(zip(lines[0][1:], lines[1][1:]))
    if "InCsumErrors" not in counters:
        raise HostError("cannot probe: needs the UdpInCsumErrors counter (Linux 3.10)")
    return int(counters["InCsumErrors"])
