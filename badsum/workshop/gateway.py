"""Each student's SSH port on the machine, leading to host A of their own lab, and only until the time is up.

A plain TCP relay (sshd on host A does the authentication): students reach
the machine's address from their laptops, not the labs' management
networks, which are not routed off the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from badsum.workshop.room import Room, Seat

MAX_SESSIONS = 8  # per student: a few terminals, not a flood
CONNECT_TIMEOUT = 5.0


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(Exception):
        writer.close()


class Gateway:
    def __init__(self, room: Room) -> None:
        self.room, self.sessions, self.servers = room, {s.student: 0 for s in room.students}, []

    def _handler(self, seat: Seat):
        async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
            if time.time() > self.room.deadline or self.sessions[seat.student] >= MAX_SESSIONS:
                client_w.close()
                return
            self.sessions[seat.student] += 1
            try:
                lab_r, lab_w = await asyncio.wait_for(asyncio.open_connection(seat.host_a, 22), CONNECT_TIMEOUT)
            except (TimeoutError, OSError):
                self.sessions[seat.student] -= 1
                client_w.close()
                return
            try:
                await asyncio.gather(_pipe(client_r, lab_w), _pipe(lab_r, client_w))
            finally:
                self.sessions[seat.student] -= 1

        return handle

    async def start(self) -> None:
        for seat in self.room.students:
            self.servers.append(await asyncio.start_server(self._handler(seat), self.room.listen, seat.port))
