"""The workshop service: the students' API, their SSH gateway, the web (dashboard and seats), in one process.

    students' API   http://<their lab's bridge address>:8765/api  (POST, token in X-Lab-Token)
    web             http://<listen>:<dashboard port>/seat/stNN     (badsum.workshop.web; the dashboard at /)
    gateway         <listen>:<port of each student> -> host A's sshd of their lab

Each student's API listens on their own lab's bridge address only, so a
request says by where it arrives which lab it may act on; the token is a
second proof. Nobody can hold the service: a request is read whole within
READ_TIMEOUT and MAX_HEAD + MAX_BODY bytes or dropped, a seat has at most
API_CONNECTIONS connections and REQUESTS_PER_SEAT requests in progress, and
the work itself runs on a bounded pool of threads; runs go to the room's
fair queue (badsum.workshop.runs). `badsum workshop up` starts the service
as a daemon in a cgroup of its own (where `down` finds it and everything it
started).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import signal
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from badsum.workshop import actions
from badsum.workshop.gateway import Gateway, Sessions
from badsum.workshop.room import API_PORT, Room, Seat
from badsum.workshop.web import Web

MAX_HEAD = 8 * 1024
MAX_BODY = 64 * 1024
READ_TIMEOUT = 10.0  # the whole request: a slow sender is dropped, whatever it sends
WRITE_TIMEOUT = 10.0
API_CONNECTIONS = 4  # per seat, open at once
REQUESTS_PER_SEAT = 2  # in progress at once: a run and a look at the results


class BadRequest(ValueError):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes]:
    """One HTTP/1.x request: method, path, headers (lower-case names), body; within the bounds above."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise BadRequest(431, f"a request head of at most {MAX_HEAD} bytes, please") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400, "not an HTTP request")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length", "0")
    if not length.isdigit() or not 0 < int(length) <= MAX_BODY:
        raise BadRequest(400, f"a request of 1 byte to {MAX_BODY // 1024} KiB, please")
    return parts[0], parts[1], headers, await reader.readexactly(int(length))


class Api:
    """The students' API: one listener per seat, on that seat's lab bridge."""

    def __init__(self, room: Room, pool: ThreadPoolExecutor) -> None:
        self.room, self.pool = room, pool
        self.connections: Counter[str] = Counter()
        self.working: Counter[str] = Counter()
        self.servers: list[asyncio.Server] = []

    async def _reply(self, writer: asyncio.StreamWriter, code: int, answer: dict) -> None:
        body = json.dumps(answer).encode()
        head = (
            f"HTTP/1.1 {code} {'OK' if code == 200 else 'Refused'}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(OSError, TimeoutError):
            writer.write(head.encode() + body)
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)

    def _handler(self, seat: Seat):
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if self.connections[seat.student] >= API_CONNECTIONS:
                writer.close()
                return
            self.connections[seat.student] += 1
            try:
                await self._serve(seat, reader, writer)
            finally:
                self.connections[seat.student] -= 1
                with contextlib.suppress(OSError):
                    writer.close()

        return handle

    async def _serve(self, seat: Seat, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, path, headers, raw = await asyncio.wait_for(read_request(reader), READ_TIMEOUT)
        except BadRequest as exc:
            await self._reply(writer, exc.code, {"ok": False, "text": str(exc)})
            return
        except TimeoutError:
            await self._reply(writer, 408, {"ok": False, "text": f"send the request within {READ_TIMEOUT:.0f} s"})
            return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        if method != "POST" or path != "/api" or not hmac.compare_digest(headers.get("x-lab-token", ""), seat.token):
            await self._reply(writer, 403, {"ok": False, "text": "not your lab (wrong token)"})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            await self._reply(writer, 400, {"ok": False, "text": "not JSON"})
            return
        if self.working[seat.student] >= REQUESTS_PER_SEAT:
            busy = f"you have {REQUESTS_PER_SEAT} requests in progress already: wait for them"
            await self._reply(writer, 429, {"ok": False, "text": busy})
            return
        self.working[seat.student] += 1
        try:
            loop = asyncio.get_running_loop()
            request = body if isinstance(body, dict) else {}
            answer = await loop.run_in_executor(self.pool, actions.carry_out, self.room, seat, request)
        finally:
            self.working[seat.student] -= 1
        await self._reply(writer, 200, answer)

    async def start(self) -> None:
        for seat in self.room.students:
            server = await asyncio.start_server(self._handler(seat), seat.service_address, API_PORT, limit=MAX_HEAD)
            self.servers.append(server)


def serve(room: Room) -> None:
    # Every seat can wait on a run and look at something else meanwhile; nothing more.
    pool = ThreadPoolExecutor(REQUESTS_PER_SEAT * len(room.students), thread_name_prefix="action")
    actions.room_runs()  # the queue's thread, before the first request

    async def main() -> None:
        sessions = Sessions(room)
        parts = [Api(room, pool), Gateway(room, sessions), Web(room, sessions)]
        for part in parts:
            await part.start()
        ending = asyncio.ensure_future(sessions.close_at_deadline())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        with contextlib.suppress(asyncio.CancelledError):
            await stop.wait()
        ending.cancel()
        for part in parts:
            for server in part.servers:
                server.close()

    try:
        asyncio.run(main())
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
