"""A real HTTP server on 127.0.0.1 that serves fixture feeds and pages.

Tests register routes with the body, status, headers and delay they need; the
server honours If-None-Match / If-Modified-Since like a well-behaved origin and
keeps a log of every request it received (path, headers, time), so tests can
assert on what a source actually sent rather than on what it meant to send.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["FIXTURES", "FixtureServer", "Route", "SeenRequest"]

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Route:
    body: bytes
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    etag: str | None = None
    last_modified: str | None = None
    send_length: bool = True


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]
    at: float  # time.monotonic() when the request arrived


class FixtureServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.log: list[SeenRequest] = []
        self._lock = threading.Lock()
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def base(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, body: bytes | str, **options: object) -> str:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.routes[path] = Route(data, **options)  # type: ignore[arg-type]
        return self.url(path)

    def add_file(self, path: str, fixture: str, **options: object) -> str:
        return self.add(path, (FIXTURES / fixture).read_bytes(), **options)

    def requests_for(self, path: str) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.log if r.path == path]

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.log]

    def record(self, request: SeenRequest) -> None:
        with self._lock:
            self.log.append(request)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FixtureServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # Clients that hang up early (size limits, timeouts) are what the tests provoke.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def _handler_for(server: FixtureServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            server.record(SeenRequest("GET", self.path, headers, time.monotonic()))
            route = server.routes.get(self.path)
            if route is None:
                self._send(404, b"not found", "text/plain", {})
                return
            if route.delay:
                time.sleep(route.delay)
            if _not_modified(route, headers):
                self._send(304, b"", None, _validators(route))
                return
            extra = {**_validators(route), **route.headers}
            self._send(route.status, route.body, route.content_type, extra, route.send_length)

        def _send(
            self,
            status: int,
            body: bytes,
            content_type: str | None,
            headers: dict[str, str],
            send_length: bool = True,
        ) -> None:
            try:
                self.send_response(status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                for name, value in headers.items():
                    self.send_header(name, value)
                if send_length:
                    self.send_header("Content-Length", str(len(body)))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if status != 304:
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def _validators(route: Route) -> dict[str, str]:
    out: dict[str, str] = {}
    if route.etag:
        out["ETag"] = route.etag
    if route.last_modified:
        out["Last-Modified"] = route.last_modified
    return out


def _not_modified(route: Route, headers: dict[str, str]) -> bool:
    if route.etag and headers.get("if-none-match") == route.etag:
        return True
    return bool(route.last_modified and headers.get("if-modified-since") == route.last_modified)
