"""The few system calls the lab makes itself instead of running a command for each.

A 200-host lab used to run some thirty commands per node (mount, hostname,
ethtool, `ip -n`...): at ~2 ms per exec on 2 cores that alone costs seconds,
and every `ip -n`/`ip netns exec` copied the whole mount table of the machine.
os.setns and os.unshare only arrived in Python 3.12, hence ctypes (as in
badsum.host.shared.netlink). Each call raises OSError with the kernel's errno.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct

# include/uapi/linux/sched.h
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
# include/uapi/linux/mount.h
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2
# include/uapi/linux/{sockios,ethtool}.h
SIOCETHTOOL = 0x8946
ETHTOOL_SRXCSUM = 0x15
ETHTOOL_STXCSUM = 0x17
IFREQ_SIZE = 40

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0, data: str | None = None) -> None:
    def c(text: str | None) -> bytes | None:
        return None if text is None else os.fsencode(text)

    _check(_libc.mount(c(source), c(target), c(fstype), flags, c(data)), f"mount {target}")


def umount(target: str, flags: int = MNT_DETACH) -> None:
    _check(_libc.umount2(os.fsencode(target), flags), f"umount {target}")


def set_checksum_offload(ifname: str, on: bool) -> None:
    """`ethtool -K IF tx on|off rx on|off` in the calling process's network namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        for cmd in (ETHTOOL_STXCSUM, ETHTOOL_SRXCSUM):
            value = ctypes.create_string_buffer(struct.pack("=II", cmd, int(on)))
            ifreq = struct.pack("16sP", ifname.encode(), ctypes.addressof(value)).ljust(IFREQ_SIZE, b"\0")
            fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
