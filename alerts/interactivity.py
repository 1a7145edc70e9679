"""Slack's interactivity requests (button presses, the resolve dialog) on a small HTTP endpoint.

Anyone who can reach the endpoint can send it a request, so each one must
prove it came from Slack: `X-Slack-Signature` is `v0=` + HMAC-SHA256 of
`v0:{X-Slack-Request-Timestamp}:{raw body}` under the app's signing secret,
compared in constant time, and the timestamp must be within five minutes of
now. A signature already seen is refused too, so a captured request cannot be
replayed inside that window. Refusals answer 401 and change nothing.

Resolve asks for a note through a modal (`views.open`); the modal's
submission resolves the incident. Every state change rewrites the alert
message in place (`chat.update`) so the channel sees who has it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from alerts.incidents import Incident
from alerts.mrkdwn import escape
from alerts.response import Desk
from alerts.slack import ACTION_PREFIX, SlackNotifier, action_buttons, to_notifier_error
from listener.errors import IncidentError, ListenerError

__all__ = ["PATH", "InteractivityServer", "sign", "signature_problem"]

log = logging.getLogger(__name__)

PATH = "/slack/actions"
TOLERANCE = 300.0
MAX_BODY = 1_000_000
RESOLVE_CALLBACK = ACTION_PREFIX + "resolve"
Block = dict[str, Any]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's v0 signature of one request."""
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    return "v0=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


def signature_problem(
    secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float
) -> str | None:
    """Why a request is refused, or None when Slack signed it in the last five minutes."""
    if not timestamp or not signature:
        return "unsigned request"
    try:
        sent = float(timestamp)
    except ValueError:
        return "malformed timestamp"
    if abs(now - sent) > TOLERANCE:
        return "stale timestamp (replayed or clock skew)"
    if not hmac.compare_digest(sign(secret, timestamp, body), signature):
        return "bad signature"
    return None


class _Replays:
    """Signatures accepted in the last tolerance window; a second arrival is a replay."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_time(self, signature: str, now: float) -> bool:
        with self._lock:
            self._seen = {s: t for s, t in self._seen.items() if now - t <= TOLERANCE}
            if signature in self._seen:
                return False
            self._seen[signature] = now
            return True


def _when(epoch: float | None) -> str:
    return "" if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%H:%M UTC")


def state_block(incident: Incident, extra: str = "") -> Block:
    """One context line saying where the incident stands; names are escaped, never mentions."""
    if incident.state == "resolved":
        line = (
            f"*Resolved* by {escape(incident.resolved_by or '?', 80)} at {_when(incident.resolved_at)}:"
            f" {escape(incident.note or '', 500)}"
        )
    elif incident.state == "acknowledged":
        line = f"*Acknowledged* by {escape(incident.acked_by or '?', 80)} at {_when(incident.acked_at)}"
    else:
        line = "*Open*" + (f" · on call: {escape(incident.responder, 80)}" if incident.responder else "")
    line = f"Incident {incident.id} · {line}" + (f" · {extra}" if extra else "")
    return {"type": "context", "block_id": "listener.state", "elements": [{"type": "mrkdwn", "text": line}]}


def resolve_modal(alert_id: str, channel: str | None, ts: str | None) -> Block:
    return {
        "type": "modal",
        "callback_id": RESOLVE_CALLBACK,
        "private_metadata": json.dumps({"alert": alert_id, "channel": channel, "ts": ts}),
        "title": {"type": "plain_text", "text": "Resolve incident"},
        "submit": {"type": "plain_text", "text": "Resolve"},
        "blocks": [
            {
                "type": "input",
                "block_id": "note",
                "label": {"type": "plain_text", "text": "What was done?"},
                "element": {"type": "plain_text_input", "action_id": "note", "multiline": True},
            }
        ],
    }


class InteractivityServer:
    """`POST /slack/actions` on a loopback or public address; start() returns at once."""

    def __init__(
        self,
        desk: Desk,
        slack: SlackNotifier,
        signing_secret: str,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.desk = desk
        self.slack = slack
        self.secret = signing_secret
        self.clock = clock
        self._replays = _Replays()
        # The alert as posted, by message ts, from the last button press: a modal's submission
        # does not carry the message, and the rewrite must keep the alert's evidence.
        self._blocks: dict[str, list[Block]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_address[1]}{PATH}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="slack-actions", daemon=True)

    def start(self) -> InteractivityServer:
        self._thread.start()
        log.info("slack interactivity endpoint on %s", self.url)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.desk.close()

    # --- request handling -------------------------------------------------------------------

    def receive(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any] | None]:
        """Verify, then act; `(HTTP status, JSON body or None)`."""
        signature = headers.get("x-slack-signature")
        problem = signature_problem(
            self.secret, headers.get("x-slack-request-timestamp"), signature, body, self.clock()
        )
        if (
            problem is None
            and signature is not None
            and not self._replays.first_time(signature, self.clock())
        ):
            problem = "replayed request"
        if problem is not None:
            log.warning("slack interactivity: refused a request: %s", problem)
            return 401, {"error": problem}
        try:
            payload = json.loads(parse_qs(body.decode("utf-8")).get("payload", ["{}"])[-1])
        except (ValueError, UnicodeDecodeError):
            return 400, {"error": "payload is not JSON"}
        if not isinstance(payload, dict):
            return 400, {"error": "payload is not an object"}
        with self._lock:
            return self._dispatch(payload)

    def _dispatch(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        user = str((payload.get("user") or {}).get("id") or "")
        if payload.get("type") == "view_submission":
            return self._submitted(payload, user)
        if payload.get("type") != "block_actions" or not payload.get("actions"):
            return 200, None
        action = payload["actions"][0]
        name = str(action.get("action_id", "")).removeprefix(ACTION_PREFIX)
        alert_id = str(action.get("value", ""))
        channel = (payload.get("channel") or {}).get("id")
        message = payload.get("message") or {}
        if message.get("ts") and isinstance(message.get("blocks"), list):
            self._blocks[str(message["ts"])] = message["blocks"]
        try:
            self._act(name, alert_id, user, payload, channel, message)
        except IncidentError as exc:
            self._tell(channel, user, f"Not done: {escape(str(exc), 500)}")
        except ListenerError as exc:
            log.warning("slack interactivity: %s failed: %s", name, exc)
        return 200, None

    def _act(
        self,
        name: str,
        alert_id: str,
        user: str,
        payload: dict[str, Any],
        channel: str | None,
        message: dict[str, Any],
    ) -> None:
        if name == "resolve":
            self._call(
                "views_open",
                trigger_id=payload.get("trigger_id"),
                view=resolve_modal(alert_id, channel, message.get("ts")),
            )
            return
        extra = ""
        if name == "ack":
            incident = self.desk.acknowledge(alert_id, user)
        elif name == "mute":
            silence = self.desk.mute(alert_id, user)
            incident, extra = (
                self.desk.incident(alert_id),
                f"muted until {_when(silence.ends)} by {silence.created_by}",
            )
        elif name == "not_real":
            incident = self.desk.not_real(alert_id, user)
            extra = f"flagged not a real issue by {self.desk.roster.identify(incident.brand, user)}"
        else:
            raise IncidentError(f"unknown action {name!r}")
        self._show(incident, channel, message, escape(extra, 200))

    def _submitted(self, payload: dict[str, Any], user: str) -> tuple[int, dict[str, Any] | None]:
        view = payload.get("view") or {}
        if view.get("callback_id") != RESOLVE_CALLBACK:
            return 200, None
        meta = json.loads(view.get("private_metadata") or "{}")
        values = (view.get("state") or {}).get("values") or {}
        note = str(((values.get("note") or {}).get("note") or {}).get("value") or "")
        try:
            incident = self.desk.resolve(str(meta.get("alert", "")), user, note)
        except IncidentError as exc:
            return 200, {"response_action": "errors", "errors": {"note": str(exc)[:150]}}
        channel, ts = meta.get("channel") or incident.channel, meta.get("ts") or incident.ts
        if channel and ts:
            text = f"Resolved by {escape(incident.resolved_by or '?', 80)}: {escape(note, 1500)}"
            self._call("chat_postMessage", channel=channel, thread_ts=ts, text=text, reply_broadcast=True)
            self._show(incident, channel, {"ts": ts, "blocks": self._blocks.pop(str(ts), None)})
        return 200, None

    def _show(
        self, incident: Incident, channel: str | None, message: dict[str, Any], extra: str = ""
    ) -> None:
        """Rewrite the alert message: the alert as posted, then the state and the buttons it allows."""
        channel = channel or incident.channel
        ts = message.get("ts") or incident.ts
        if not channel or not ts:
            return
        kept = [
            b
            for b in message.get("blocks") or []
            if b.get("block_id") not in ("listener.actions", "listener.state")
        ]
        blocks = [*kept, state_block(incident, extra)]
        if incident.state != "resolved":
            blocks.append(action_buttons(incident.alert_id, incident.state))
        text = f"Incident {incident.id} for {escape(incident.brand, 80)}: {incident.state}"
        self._call("chat_update", channel=channel, ts=ts, text=text, blocks=blocks)

    def _tell(self, channel: str | None, user: str, text: str) -> None:
        if channel and user:
            self._call("chat_postEphemeral", channel=channel, user=user, text=text)

    def _call(self, method: str, **fields: Any) -> None:
        try:
            getattr(self.slack.client, method)(**fields)
        except Exception as exc:
            raise to_notifier_error(exc) from exc

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if self.path.split("?", 1)[0] != PATH or not 0 <= length <= MAX_BODY:
                    self._answer(404 if length <= MAX_BODY else 413, {"error": "not here"})
                    return
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                self._answer(*server.receive(headers, body))

            def _answer(self, status: int, data: dict[str, Any] | None) -> None:
                payload = b"" if data is None else json.dumps(data).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
