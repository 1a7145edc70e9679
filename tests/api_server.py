"""A loopback HTTP server that plays a JSON API from fixture files.

Unlike `FixtureServer` (one fixed body per exact path), an API answers by path
and query: each route is a function of the request, so tests can serve page 2
only when `page=2` is asked, answer 429 once and then recover, or cut a body
off mid-JSON. Every request is logged with its query, headers and body, so
tests assert on what the source really sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["API_FIXTURES", "ApiRequest", "ApiServer", "Reply", "fixture", "fixture_text"]

API_FIXTURES = Path(__file__).parent / "fixtures" / "apis"


def fixture_text(name: str) -> str:
    return (API_FIXTURES / name).read_text(encoding="utf-8")


def fixture(name: str) -> Any:
    return json.loads(fixture_text(name))


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Reply:
    body: bytes | str | Any = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    delay: float = 0.0

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body).encode("utf-8")


Handler = Callable[[ApiRequest], Reply]


class ApiServer:
    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.log: list[ApiRequest] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        serve = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        serve.start()

    @property
    def base(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def route(self, path: str, handler: Handler | Reply | list[Reply]) -> None:
        """A handler, one reply for every call, or replies in turn (the last one repeats)."""
        if isinstance(handler, Reply):
            reply = handler
            self.routes[path] = lambda _request: reply
        elif isinstance(handler, list):
            queue = list(handler)
            self.routes[path] = lambda _request: queue.pop(0) if len(queue) > 1 else queue[0]
        else:
            self.routes[path] = handler

    def requests_for(self, path: str) -> list[ApiRequest]:
        with self._lock:
            return [r for r in self.log if r.path == path]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler_for(server: ApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def _answer(self, method: str) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = ApiRequest(
                method,
                parts.path,
                {k: v[-1] for k, v in parse_qs(parts.query).items()},
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length) if length else b"",
            )
            with server._lock:
                server.log.append(request)
            handler = server.routes.get(parts.path)
            reply = handler(request) if handler else Reply({"error": "not found"}, status=404)
            if reply.delay:
                time.sleep(reply.delay)
            body = reply.payload()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


class FakeClock:
    """Monotonic time a test moves by hand, for back-off waits of minutes (host gate, scheduler)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
