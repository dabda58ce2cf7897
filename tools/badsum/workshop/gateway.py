"""Each student's SSH port on the machine, leading to host A of their own lab, and only until the time is up.

A plain TCP relay (sshd on host A does the authentication): students reach
the machine's address from their laptops, not the labs' management
networks, which are not routed off the machine.

Who may hold a connection, shared with the browser seat (badsum.workshop.web):
a seat counts only its sessions that got through sshd's authentication (at
most MAX_SESSIONS), so sockets that never log in cannot lock a student out;
connections that have not logged in yet are held to UNAUTHENTICATED_PER_SOURCE
per source address and LOGIN_GRACE seconds each. The relay tells that a
session authenticated by looking at host A: the connection it opened is held
there by a process of the seat's own user (sshd's post-authentication child
runs as the user; before it, only root's and sshd's own processes hold it).
At the deadline every session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
from collections import Counter
from pathlib import Path

from badsum.lab import cgroups
from badsum.lab.accounts import lab_uid
from badsum.lab.spec import LabSpec
from badsum.workshop.room import LAB_HOSTS, Room, Seat

MAX_SESSIONS = 8  # per student, authenticated: a few terminals, not a flood
UNAUTHENTICATED_PER_SOURCE = 16  # a classroom behind one NAT logs in at once; a flood does not get far
LOGIN_GRACE = 30.0  # seconds to get through sshd's authentication
CONNECT_TIMEOUT = 5.0
POLL = 0.25  # how often a pending connection is looked at


class Sessions:
    """Who holds what, for the gateway and the browser seat together."""

    def __init__(self, room: Room) -> None:
        self.room = room
        self.authenticated: Counter[str] = Counter()  # per student
        self.pending: Counter[str] = Counter()  # per source address
        self.closers: set = set()  # what ends each open session at the deadline

    def refuse_new(self, seat: Seat, source: str) -> str | None:
        """Why a new connection from `source` to this seat is refused now, or None."""
        if time.time() > self.room.deadline:
            return "the workshop has ended"
        if self.authenticated[seat.student] >= MAX_SESSIONS:
            return f"{seat.student} has {MAX_SESSIONS} sessions open already"
        if self.pending[source] >= UNAUTHENTICATED_PER_SOURCE:
            return f"{UNAUTHENTICATED_PER_SOURCE} connections from {source} are not logged in yet"
        return None

    def begin(self, source: str) -> None:
        self.pending[source] += 1

    def logged_in(self, seat: Seat, source: str) -> bool:
        """A pending connection got through authentication: counted for the seat, unless it has enough."""
        self._drop(self.pending, source)
        if self.authenticated[seat.student] >= MAX_SESSIONS:
            return False
        self.authenticated[seat.student] += 1
        return True

    def end(self, seat: Seat, source: str, authenticated: bool) -> None:
        self._drop(self.authenticated if authenticated else self.pending, seat.student if authenticated else source)

    @staticmethod
    def _drop(counter: Counter, key: str) -> None:
        counter[key] -= 1
        if counter[key] <= 0:
            del counter[key]

    async def close_at_deadline(self) -> None:
        await asyncio.sleep(max(0.0, self.room.deadline - time.time()))
        for close in list(self.closers):
            close()


def _tcp_inode(pid: int, local_port: int, remote_port: int) -> str | None:
    """The socket inode of the TCP connection local_port <-> remote_port in pid's network namespace."""
    try:
        lines = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == local_port and int(fields[2].rsplit(":", 1)[1], 16) == remote_port:
            return fields[9]
    return None


def _uid(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _holds(pid: int, inode: str) -> bool:
    wanted = f"socket:[{inode}]"
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") == wanted:
                return True
    return False


@functools.cache
def _seat_uid(student: str, slot: int) -> int:
    return lab_uid(LabSpec(student, LAB_HOSTS, slot))


def authenticated(seat: Seat, relay_port: int) -> bool:
    """Whether the relay's connection (from relay_port to host A's sshd) is held by the seat's user on host A."""
    pids = sorted(cgroups.node_pids(seat.student, "host1"))
    if not pids:
        return False
    inode = _tcp_inode(pids[0], 22, relay_port)
    if inode is None:
        return False
    uid = _seat_uid(seat.student, seat.slot)
    return any(_uid(pid) == uid and _holds(pid, inode) for pid in pids)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(Exception):
        writer.close()


class Gateway:
    def __init__(self, room: Room, sessions: Sessions) -> None:
        self.room, self.sessions, self.servers = room, sessions, []

    def _handler(self, seat: Seat):
        async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
            source = (client_w.get_extra_info("peername") or ("?",))[0]
            if self.sessions.refuse_new(seat, source):
                client_w.close()
                return
            self.sessions.begin(source)
            logged_in = False
            try:
                lab_r, lab_w = await asyncio.wait_for(asyncio.open_connection(seat.host_a, 22), CONNECT_TIMEOUT)
            except (TimeoutError, OSError):
                self.sessions.end(seat, source, False)
                client_w.close()
                return

            def close() -> None:
                client_w.close()
                lab_w.close()

            self.sessions.closers.add(close)
            pipes = asyncio.gather(_pipe(client_r, lab_w), _pipe(lab_r, client_w))
            try:
                relay_port = lab_w.get_extra_info("sockname")[1]
                deadline = time.monotonic() + LOGIN_GRACE
                while not pipes.done() and time.monotonic() < deadline:
                    if await asyncio.to_thread(authenticated, seat, relay_port):
                        logged_in = self.sessions.logged_in(seat, source)
                        if not logged_in:
                            self.sessions.begin(source)  # counted as pending until it goes
                        break
                    await asyncio.wait([pipes], timeout=POLL)
                if not logged_in:
                    close()  # not through authentication in time, or over the seat's sessions
                await pipes
            finally:
                self.sessions.closers.discard(close)
                self.sessions.end(seat, source, logged_in)
                close()

        return handle

    async def start(self) -> None:
        for seat in self.room.students:
            self.servers.append(await asyncio.start_server(self._handler(seat), self.room.listen, seat.port))
