"""A loopback stand-in for Slack's Web API, enough for `slack_sdk.WebClient(base_url=...)`.

It answers `auth.test`, `chat.postMessage`, `chat.update`, `chat.postEphemeral`,
`views.open`, `conversations.history` (over the channel messages posted and
updated here) and the three steps of `files_upload_v2`
(`files.getUploadURLExternal`, the raw POST to the upload URL it hands out,
`files.completeUploadExternal`, keeping the uploaded bytes in `files`), with
form or JSON bodies; it checks the `Authorization: Bearer` token like Slack
does (HTTP 200 with `ok: false`), records every request, and can be told to
fail the next calls with a 429 plus `Retry-After`, an HTTP 500, or an
`ok: false` error code.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

__all__ = ["FakeSlack", "RecordedRequest", "UploadedFile", "closed_port", "fake_slack"]

TOKEN = "xoxb-test-token"


@dataclass
class RecordedRequest:
    method: str  # the Web API method, e.g. "chat.postMessage"
    headers: dict[str, str]
    body: dict[str, Any]
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)


@dataclass
class UploadedFile:
    """A file shared by `files.completeUploadExternal`, with the bytes POSTed to its upload URL."""

    id: str
    title: str
    channel: str | None
    thread_ts: str | None
    data: bytes


class FakeSlack:
    """Server state; `url` is the WebClient `base_url`."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.requests: list[RecordedRequest] = []
        self.files: list[UploadedFile] = []
        self._pending: dict[str, bytes | None] = {}  # file id -> bytes once uploaded
        self._failures: list[tuple[str, str | None]] = []
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        self._messages: dict[str, dict[str, dict[str, Any]]] = {}  # channel -> ts -> message
        self.delay = 0.0  # seconds every Web API call takes, for races against a slow Slack
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

    def fail_next(self, count: int, how: str, method: str | None = None) -> None:
        """`how` is "429", "500" or an `ok: false` error code such as "channel_not_found".

        With `method`, only calls of that Web API method fail; others pass.
        """
        with self._lock:
            self._failures.extend([(how, method)] * count)

    def calls(self, method: str) -> list[RecordedRequest]:
        """Accepted calls of one Web API method, e.g. "chat.update", in order."""
        return [r for r in self.requests if r.method == method and r.response.get("ok")]

    @property
    def posted(self) -> list[RecordedRequest]:
        """chat.postMessage calls that Slack would have accepted."""
        return [r for r in self.requests if r.method == "chat.postMessage" and r.response.get("ok")]

    def _next_failure(self, method: str) -> str | None:
        with self._lock:
            for index, (how, only) in enumerate(self._failures):
                if only is None or only == method:
                    del self._failures[index]
                    return how
            return None

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
        failure = self._next_failure(method)
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
        if method.startswith("files."):
            return self._files(method, body)
        if not body.get("channel"):
            return 200, {"ok": False, "error": "channel_not_found"}
        if method == "chat.update":
            if not body.get("ts"):
                return 200, {"ok": False, "error": "message_not_found"}
            self._keep(body["channel"], body["ts"], body)
            return 200, {"ok": True, "channel": body["channel"], "ts": body["ts"]}
        if method == "chat.postEphemeral":
            return 200, {"ok": True, "message_ts": f"1700000000.{next(self._ts):06d}"}
        if method == "conversations.history":
            return 200, self._history(body)
        ts = f"1700000000.{next(self._ts):06d}"
        if not body.get("thread_ts"):
            self._keep(body["channel"], ts, body)
        return 200, {
            "ok": True,
            "channel": body["channel"],
            "ts": ts,
            "message": {"text": body.get("text", ""), "ts": ts},
        }

    def _keep(self, channel: str, ts: str, body: dict[str, Any]) -> None:
        """A channel message as `conversations.history` returns it (thread replies are not kept)."""
        message = {"type": "message", "ts": ts, "text": body.get("text", "")}
        if isinstance(body.get("blocks"), list):
            message["blocks"] = body["blocks"]
        with self._lock:
            self._messages.setdefault(channel, {})[ts] = message

    def _history(self, body: dict[str, Any]) -> dict[str, Any]:
        """Newest first, at or before `latest` (inclusive when asked), at most `limit`."""
        latest = str(body.get("latest") or "9999999999.999999")
        inclusive = str(body.get("inclusive", "")).lower() in ("1", "true")
        limit = int(body.get("limit") or 100)
        with self._lock:
            kept = self._messages.get(str(body["channel"]), {})
            found = [m for ts, m in kept.items() if ts < latest or (inclusive and ts == latest)]
        found.sort(key=lambda m: str(m["ts"]), reverse=True)
        return {"ok": True, "messages": found[:limit], "has_more": len(found) > limit}

    def _files(self, method: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Step 1 hands out an upload URL on this server; step 3 shares what was POSTed there."""
        if method == "files.getUploadURLExternal":
            if not body.get("filename") or not str(body.get("length", "")).isdigit():
                return 200, {"ok": False, "error": "invalid_arguments"}
            file_id = f"F{next(self._ts):08d}"
            with self._lock:
                self._pending[file_id] = None
            upload_url = self.url.replace("/api/", f"/upload/{file_id}")
            return 200, {"ok": True, "upload_url": upload_url, "file_id": file_id}
        files = body.get("files")
        files = json.loads(files) if isinstance(files, str) else files
        if not isinstance(files, list) or not files:
            return 200, {"ok": False, "error": "invalid_arguments"}
        shared = []
        for entry in files:
            with self._lock:
                data = self._pending.pop(str(entry.get("id")), None)
            if data is None:
                return 200, {"ok": False, "error": "file_not_found"}
            title = str(entry.get("title") or "")
            channel, thread = body.get("channel_id"), body.get("thread_ts")
            uploaded = UploadedFile(str(entry["id"]), title, channel, thread, data)
            with self._lock:
                self.files.append(uploaded)
            shared.append({"id": uploaded.id, "title": title})
        return 200, {"ok": True, "files": shared}

    def _upload(self, file_id: str, data: bytes) -> int:
        with self._lock:
            if file_id not in self._pending:
                return 404
            self._pending[file_id] = data
        return 200

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if self.path.startswith("/upload/"):
                    status = fake._upload(self.path.rsplit("/", 1)[-1], self.rfile.read(length))
                    payload = f"OK - {length}".encode() if status == 200 else b"not found"
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                raw = self.rfile.read(length).decode("utf-8")
                headers = {k.lower(): v for k, v in self.headers.items()}
                self._api(headers, _parse_body(headers.get("content-type", ""), raw))

            def do_GET(self) -> None:
                """Read methods (`conversations.history`) send their arguments in the query string."""
                query = self.path.split("?", 1)[1] if "?" in self.path else ""
                body = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
                self._api({k.lower(): v for k, v in self.headers.items()}, body)

            def _api(self, headers: dict[str, str], body: dict[str, Any]) -> None:
                method = self.path.split("?", 1)[0].rsplit("/", 1)[-1]
                if fake.delay:
                    time.sleep(fake.delay)
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


_METHODS = frozenset(
    {
        "auth.test",
        "chat.postMessage",
        "chat.update",
        "chat.postEphemeral",
        "views.open",
        "conversations.history",
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    }
)


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
