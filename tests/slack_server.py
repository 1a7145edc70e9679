"""A loopback stand-in for Slack's Web API, enough for `slack_sdk.WebClient(base_url=...)`.

It answers `auth.test`, `chat.postMessage`, `chat.update`, `chat.postEphemeral`
and `views.open` (form or JSON bodies), checks the
`Authorization: Bearer` token like Slack does (HTTP 200 with `ok: false`),
records every request, and can be told to fail the next calls with a 429 plus
`Retry-After`, an HTTP 500, or an `ok: false` error code.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

__all__ = ["FakeSlack", "RecordedRequest", "closed_port", "fake_slack"]

TOKEN = "xoxb-test-token"


@dataclass
class RecordedRequest:
    method: str  # the Web API method, e.g. "chat.postMessage"
    headers: dict[str, str]
    body: dict[str, Any]
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)


class FakeSlack:
    """Server state; `url` is the WebClient `base_url`."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.requests: list[RecordedRequest] = []
        self._failures: list[str] = []
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/api/"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> FakeSlack:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, count: int, how: str) -> None:
        """`how` is "429", "500" or an `ok: false` error code such as "channel_not_found"."""
        with self._lock:
            self._failures.extend([how] * count)

    def calls(self, method: str) -> list[RecordedRequest]:
        """Accepted calls of one Web API method, e.g. "chat.update", in order."""
        return [r for r in self.requests if r.method == method and r.response.get("ok")]

    @property
    def posted(self) -> list[RecordedRequest]:
        """chat.postMessage calls that Slack would have accepted."""
        return [r for r in self.requests if r.method == "chat.postMessage" and r.response.get("ok")]

    def _next_failure(self) -> str | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def _answer(
        self, method: str, headers: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        if method not in _METHODS:
            return 200, {"ok": False, "error": "unknown_method"}
        auth = headers.get("authorization", "")
        if not auth:
            return 200, {"ok": False, "error": "not_authed"}
        if auth != f"Bearer {self.token}":
            return 200, {"ok": False, "error": "invalid_auth"}
        failure = self._next_failure()
        if failure == "429":
            return 429, {"ok": False, "error": "ratelimited"}
        if failure == "500":
            return 500, {}
        if failure is not None:
            return 200, {"ok": False, "error": failure}
        if method == "auth.test":
            return 200, {
                "ok": True,
                "url": "https://listener-test.slack.com/",
                "team": "Listener",
                "user": "listener",
                "team_id": "T0001",
                "user_id": "U0001",
                "bot_id": "B0001",
            }
        if method == "views.open":
            if not body.get("trigger_id"):
                return 200, {"ok": False, "error": "invalid_trigger_id"}
            return 200, {"ok": True, "view": {"id": f"V{next(self._ts):06d}", **_view(body)}}
        if not body.get("channel"):
            return 200, {"ok": False, "error": "channel_not_found"}
        if method == "chat.update":
            if not body.get("ts"):
                return 200, {"ok": False, "error": "message_not_found"}
            return 200, {"ok": True, "channel": body["channel"], "ts": body["ts"]}
        if method == "chat.postEphemeral":
            return 200, {"ok": True, "message_ts": f"1700000000.{next(self._ts):06d}"}
        ts = f"1700000000.{next(self._ts):06d}"
        return 200, {
            "ok": True,
            "channel": body["channel"],
            "ts": ts,
            "message": {"text": body.get("text", ""), "ts": ts},
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                method = self.path.split("?", 1)[0].rsplit("/", 1)[-1]
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8")
                headers = {k.lower(): v for k, v in self.headers.items()}
                body = _parse_body(headers.get("content-type", ""), raw)
                status, response = fake._answer(method, headers, body)
                with fake._lock:
                    fake.requests.append(RecordedRequest(method, headers, body, status, response))
                payload = b"" if status == 500 else json.dumps(response).encode("utf-8")
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


_METHODS = frozenset({"auth.test", "chat.postMessage", "chat.update", "chat.postEphemeral", "views.open"})


def _view(body: dict[str, Any]) -> dict[str, Any]:
    view = body.get("view")
    if isinstance(view, str):
        view = json.loads(view)
    return view if isinstance(view, dict) else {}


def _parse_body(content_type: str, raw: str) -> dict[str, Any]:
    if content_type.startswith("application/json"):
        data = json.loads(raw or "{}")
        return data if isinstance(data, dict) else {}
    if content_type.startswith("application/x-www-form-urlencoded"):
        body: dict[str, Any] = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        for key in ("blocks", "attachments"):
            if isinstance(body.get(key), str):
                body[key] = json.loads(body[key])
        return body
    return {}


@contextmanager
def fake_slack(token: str = TOKEN) -> Iterator[FakeSlack]:
    server = FakeSlack(token).start()
    try:
        yield server
    finally:
        server.stop()


def closed_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
