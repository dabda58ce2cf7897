"""The workshop service: the students' API, their SSH gateway, and the trainer's dashboard, in one process.

    students' API   http://<their lab's bridge address>:8765/api  (POST, token in X-Lab-Token)
    dashboard       http://127.0.0.1:<dashboard port>/             (the page refreshes itself)
                    http://127.0.0.1:<dashboard port>/status.json  (what it shows)
    gateway         <listen>:<port of each student> -> host A's sshd of their lab

Each student's API listens on their own lab's bridge address only, so a
request says by where it arrives which lab it may act on; the token is a
second proof. `badsum workshop up` starts the service as a daemon in a
cgroup of its own (where `down` finds it and everything it started).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jinja2

from badsum.workshop import actions, status
from badsum.workshop.gateway import Gateway
from badsum.workshop.room import API_PORT, Room, Seat

TEMPLATES = Path(__file__).parent / "templates"
MAX_BODY = 64 * 1024


class Quiet(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:
        pass  # the activity log says what matters

    def reply(self, code: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


def student_handler(room: Room, seat: Seat) -> type[BaseHTTPRequestHandler]:
    class Student(Quiet):
        def do_POST(self) -> None:
            token = self.headers.get("X-Lab-Token", "")
            if self.path != "/api" or not hmac.compare_digest(token, seat.token):
                self.reply(403, b'{"ok": false, "text": "not your lab (wrong token)"}')
                return
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY:
                self.reply(400, b'{"ok": false, "text": "a request of 1 byte to 64 KiB, please"}')
                return
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError:
                self.reply(400, b'{"ok": false, "text": "not JSON"}')
                return
            answer = actions.carry_out(room, seat, body if isinstance(body, dict) else {})
            self.reply(200, json.dumps(answer).encode())

    return Student


def dashboard_handler(room: Room) -> type[BaseHTTPRequestHandler]:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    page = env.get_template("dashboard.html.j2")

    class Dashboard(Quiet):
        def do_GET(self) -> None:
            if self.path == "/status.json":
                self.reply(200, json.dumps(status.table(room)).encode())
            elif self.path in ("/", "/index.html"):
                self.reply(200, page.render(students=len(room.students)).encode(), "text/html; charset=utf-8")
            else:
                self.reply(404, b'{"error": "not found"}')

    return Dashboard


def serve(room: Room, dashboard_host: str = "127.0.0.1") -> None:
    servers = [ThreadingHTTPServer((dashboard_host, room.dashboard_port), dashboard_handler(room))]
    servers += [
        ThreadingHTTPServer((seat.service_address, API_PORT), student_handler(room, seat)) for seat in room.students
    ]
    for server in servers:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()

    async def main() -> None:
        gateway = Gateway(room)
        await gateway.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        with contextlib.suppress(asyncio.CancelledError):
            await stop.wait()
        for server in gateway.servers:
            server.close()

    try:
        asyncio.run(main())
    finally:
        for server in servers:
            server.shutdown()
