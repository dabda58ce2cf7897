"""The workshop's web address: the trainer's dashboard, and each student's seat in the browser.

    http://<machine>:<dashboard port>/seat/st03   st03's terminal on host A of their own lab
    http://127.0.0.1:<dashboard port>/            the dashboard (from the machine itself only)
    http://127.0.0.1:<dashboard port>/status.json what it shows

The seat is xterm.js (installed from the npm registry by `make deps`) over a
websocket; the service asks for the student's password in the terminal, and
only once sshd on host A took it does an SSH session (asyncssh) open behind
the page, as the student's own account: the same account, host, limits and
deadline as the SSH gateway (badsum.workshop.gateway.Sessions counts both).
A wrong password gets "Permission denied" and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import ipaddress
import json
import re
import warnings
from pathlib import Path

import jinja2
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from badsum import paths
from badsum.workshop import status

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # asyncssh's DSA keys, deprecated by cryptography: never used here
    import asyncssh
from badsum.workshop.gateway import LOGIN_GRACE, Sessions
from badsum.workshop.room import STUDENT, Room, Seat

TEMPLATES = Path(__file__).parent / "templates"
XTERM = paths.NODE_MODULES / "@xterm" / "xterm"
STATIC = {
    "/static/xterm.js": (XTERM / "lib" / "xterm.js", "text/javascript; charset=utf-8"),
    "/static/xterm.css": (XTERM / "css" / "xterm.css", "text/css; charset=utf-8"),
}
SEAT_PATH = re.compile(r"^/seat/(st\d\d)(/ws)?$")
MAX_PASSWORD = 128
MAX_MESSAGE = 64 * 1024  # a paste, not a file
OPEN_TIMEOUT = 10.0  # the request, read in full, or the connection goes
SSH_TIMEOUT = 15.0


def _response(code: int, body: bytes, kind: str) -> Response:
    headers = Headers({"Content-Type": kind, "Content-Length": str(len(body)), "Cache-Control": "no-store"})
    return Response(code, http.HTTPStatus(code).phrase, headers, body)


def _local(connection: ServerConnection) -> bool:
    try:
        return ipaddress.ip_address(connection.remote_address[0]).is_loopback
    except (ValueError, TypeError, IndexError):
        return False


class Web:
    def __init__(self, room: Room, sessions: Sessions) -> None:
        self.room, self.sessions = room, sessions
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
        self.dashboard = env.get_template("dashboard.html.j2")
        self.seat_page = env.get_template("seat.html.j2")
        self.seats = {seat.student: seat for seat in room.students}
        self.servers: list = []

    def route(self, connection: ServerConnection, request: Request) -> Response | None:
        """Every plain HTTP request; None lets a seat's websocket through."""
        path = request.path.split("?", 1)[0]
        if path in STATIC:
            file, kind = STATIC[path]
            if not file.exists():
                return _response(500, b"xterm.js is not installed: `make deps`", "text/plain")
            return _response(200, file.read_bytes(), kind)
        if path in ("/", "/index.html", "/status.json"):
            if not _local(connection):  # every student's progress: the trainer's, on this machine
                return _response(403, b"the dashboard is shown on the workshop's machine only", "text/plain")
            if path == "/status.json":
                return _response(200, json.dumps(status.table(self.room)).encode(), "application/json")
            page = self.dashboard.render(students=len(self.room.students)).encode()
            return _response(200, page, "text/html; charset=utf-8")
        found = SEAT_PATH.match(path)
        if not found or found[1] not in self.seats:
            return _response(404, b"not found", "text/plain")
        if found[2]:
            return None
        return _response(200, self.seat_page.render(student=found[1]).encode(), "text/html; charset=utf-8")

    async def terminal(self, ws: ServerConnection) -> None:
        seat = self.seats[SEAT_PATH.match(ws.request.path.split("?", 1)[0])[1]]
        source = str(ws.remote_address[0])
        why = self.sessions.refuse_new(seat, source)
        if why:
            await ws.send(f"{why}\r\n".encode())
            return
        self.sessions.begin(source)
        logged_in = False
        size = [120, 36]
        try:
            await ws.send(f"badsum workshop - {seat.student}, host A of your lab\r\n".encode())
            try:
                password = await asyncio.wait_for(self._password(ws, size), LOGIN_GRACE)
                if password is None:
                    return
                conn = await asyncssh.connect(
                    seat.host_a,
                    22,
                    username=STUDENT,
                    password=password,
                    known_hosts=str(seat.inventory / ".ssh" / "known_hosts"),
                    client_keys=None,
                    agent_path=None,
                    preferred_auth="password",
                    login_timeout=SSH_TIMEOUT,
                    connect_timeout=SSH_TIMEOUT,
                )
            except (TimeoutError, asyncssh.PermissionDenied):
                await ws.send(b"\r\nPermission denied.\r\n")
                return
            except (OSError, asyncssh.Error) as exc:
                await ws.send(f"\r\nyour lab does not answer ({exc}): ask the trainer\r\n".encode())
                return
            logged_in = self.sessions.logged_in(seat, source)
            if not logged_in:
                self.sessions.begin(source)  # counted as pending until it goes
                conn.close()
                await ws.send(b"\r\ntoo many sessions open on this seat\r\n")
                return
            async with conn:
                await self._session(ws, conn, size)
        except ConnectionClosed:
            pass
        finally:
            self.sessions.end(seat, source, logged_in)

    async def _password(self, ws: ServerConnection, size: list[int]) -> str | None:
        """The password, typed into the terminal and not shown; None when the student gave up (Ctrl-C, closed)."""
        await ws.send(b"password: ")
        typed = bytearray()
        async for message in ws:
            if isinstance(message, str):
                self._control(message, size)
                continue
            for byte in message:
                if byte in (13, 10):
                    await ws.send(b"\r\n")
                    return typed.decode(errors="replace")
                if byte in (127, 8):
                    del typed[-1:]
                elif byte == 3:  # Ctrl-C
                    return None
                elif byte >= 32 and len(typed) < MAX_PASSWORD:
                    typed.append(byte)
        return None

    @staticmethod
    def _control(message: str, size: list[int]) -> tuple[int, int] | None:
        with contextlib.suppress(ValueError, TypeError, KeyError):
            cols, rows = (int(v) for v in json.loads(message)["size"])
            if 10 <= cols <= 500 and 5 <= rows <= 200:
                size[:] = [cols, rows]
                return cols, rows
        return None

    async def _session(self, ws: ServerConnection, conn: asyncssh.SSHClientConnection, size: list[int]) -> None:
        process = await conn.create_process(term_type="xterm-256color", term_size=tuple(size), encoding=None)

        async def out() -> None:
            while data := await process.stdout.read(65536):
                await ws.send(data)

        async def into() -> None:
            async for message in ws:
                if isinstance(message, str):
                    if changed := self._control(message, size):
                        process.change_terminal_size(*changed)
                else:
                    process.stdin.write(message)

        def close() -> None:  # at the deadline: the session's output ends, and the page with it
            process.close()

        self.sessions.closers.add(close)
        try:
            tasks = [asyncio.ensure_future(out()), asyncio.ensure_future(into())]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
        finally:
            self.sessions.closers.discard(close)
            process.close()
            await ws.close()

    async def start(self) -> None:
        hosts = [self.room.listen]
        if self.room.listen not in ("0.0.0.0", "::", "127.0.0.1"):
            hosts.append("127.0.0.1")  # the dashboard, on the machine itself
        for host in hosts:
            self.servers.append(
                await serve(
                    self.terminal,
                    host,
                    self.room.dashboard_port,
                    process_request=self.route,
                    open_timeout=OPEN_TIMEOUT,
                    max_size=MAX_MESSAGE,
                    compression=None,
                    server_header=None,
                )
            )


def url(address: str, port: int, seat: Seat) -> str:
    return f"http://{address}:{port}/seat/{seat.student}"
