"""Slack's interactivity requests (button presses, the resolve dialog) on `POST /slack/actions`.

Anyone who can reach the endpoint can send it a request, so each one must
prove it came from Slack: slack-sdk's `SignatureVerifier` checks
`X-Slack-Signature` (HMAC-SHA256 of `v0:{timestamp}:{raw body}` under the app's
signing secret, compared in constant time), and the timestamp must be within
five minutes of now. A signature already seen is refused too, so a captured
request cannot be replayed inside that window. Refusals answer 401 with the
reason and change nothing.

Resolve asks for a note through a modal (`views.open`); the modal's
submission resolves the incident. Every state change rewrites the alert
message in place (`chat.update`) so the channel sees who has it. The rewrite
keeps the alert as posted; a submission does not carry the message, so it is
taken from this process's memory of the button press or, when another copy
served the press, fetched from Slack (`conversations.history`, which needs the
bot's `channels:history` scope, `groups:history` for private channels).

The endpoint is an ASGI route: the web app mounts it, and `InteractivityServer`
runs it alone on uvicorn (`listener run --stage interactivity`). Waiting for a
request's body is a coroutine, not a thread, so clients that connect and send
nothing cannot starve a real press; bodies are capped in size and in time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from slack_sdk.signature import Clock, SignatureVerifier
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from alerts.incidents import Incident
from alerts.mrkdwn import escape
from alerts.replays import ReplayLog
from alerts.response import Desk
from alerts.slack import ACTION_PREFIX, SlackNotifier, action_buttons, to_notifier_error
from listener.errors import IncidentError, ListenerError

__all__ = ["PATH", "InteractivityServer", "SlackActions", "actions_router"]

log = logging.getLogger(__name__)

PATH = "/slack/actions"
TOLERANCE = 300.0
MAX_BODY = 1_000_000
BODY_TIMEOUT = 10.0  # seconds a client may take to send its body once its headers are in
KEEP_ALIVE = 5  # seconds an idle kept-alive connection stays open (uvicorn's timeout_keep_alive)
CACHED_MESSAGES = 1000
RESOLVE_CALLBACK = ACTION_PREFIX + "resolve"
Block = dict[str, Any]


class _Clock(Clock):
    """The endpoint's clock, for slack-sdk's verifier (tests move time at will)."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


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


class SlackActions:
    """What one signed interactivity request does: verify it, then act through the `Desk`."""

    def __init__(
        self,
        desk: Desk,
        slack: SlackNotifier,
        signing_secret: str,
        clock: Callable[[], float] = time.time,
        *,
        replays: ReplayLog | None = None,
    ) -> None:
        """`replays` is the state database's log when several copies serve Slack; by default
        one of this process's own."""
        self.desk = desk
        self.slack = slack
        self.clock = clock
        self._verifier = SignatureVerifier(signing_secret, clock=_Clock(clock))
        self._replays = replays or ReplayLog(tolerance=TOLERANCE)
        # The alert as posted, by message ts, from the last button press: a modal's submission
        # does not carry the message, and the rewrite must keep the alert's evidence.
        self._blocks: dict[str, list[Block]] = {}
        self._blocks_lock = threading.Lock()

    def refusal(self, headers: dict[str, str], body: bytes) -> str | None:
        """Why a request is refused, or None when Slack signed it, recently and only once."""
        timestamp = headers.get("x-slack-request-timestamp")
        signature = headers.get("x-slack-signature")
        if not timestamp or not signature:
            return "unsigned request"
        try:
            sent = int(timestamp)
        except ValueError:
            return "malformed timestamp"
        now = self.clock()
        if abs(now - sent) > TOLERANCE:
            return "stale timestamp (replayed or clock skew)"
        try:
            valid = self._verifier.is_valid(body=body, timestamp=timestamp, signature=signature)
        except UnicodeDecodeError:
            valid = False
        if not valid:
            return "bad signature"
        if not self._replays.first_time(signature, now):
            return "replayed request"
        return None

    def receive(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any] | None]:
        """Verify, then act; `(HTTP status, JSON body or None)`. Header names in lower case."""
        problem = self.refusal(headers, body)
        if problem is not None:
            log.warning("slack interactivity: refused a request: %s", problem)
            return 401, {"error": problem}
        try:
            payload = json.loads(parse_qs(body.decode("utf-8")).get("payload", ["{}"])[-1])
        except (ValueError, UnicodeDecodeError):
            return 400, {"error": "payload is not JSON"}
        if not isinstance(payload, dict):
            return 400, {"error": "payload is not an object"}
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
            self._remember(str(message["ts"]), message["blocks"])
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
            self._show(incident, channel, {"ts": ts, "blocks": self._posted(str(channel), str(ts))})
        return 200, None

    def _remember(self, ts: str, blocks: list[Block]) -> None:
        with self._blocks_lock:
            self._blocks.pop(ts, None)
            self._blocks[ts] = blocks
            while len(self._blocks) > CACHED_MESSAGES:
                del self._blocks[next(iter(self._blocks))]

    def _posted(self, channel: str, ts: str) -> list[Block] | None:
        """The alert message's blocks: remembered from the press, else as Slack has them."""
        with self._blocks_lock:
            remembered = self._blocks.pop(ts, None)
        if remembered is not None:
            return remembered
        try:
            found = self.slack.client.conversations_history(
                channel=channel, latest=ts, inclusive=True, limit=1
            )
        except Exception as exc:
            log.warning("slack interactivity: cannot fetch message %s: %s", ts, to_notifier_error(exc))
            return None
        for message in found.get("messages") or []:
            if str(message.get("ts")) == ts and isinstance(message.get("blocks"), list):
                return list(message["blocks"])
        return None

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

    def close(self) -> None:
        self.desk.close()


# --- the ASGI route ------------------------------------------------------------------------------


class _TooLarge(Exception):
    pass


async def _body(request: Request, limit: int) -> bytes:
    """The raw body, refused past `limit` bytes whatever Content-Length claimed."""
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise _TooLarge
    return bytes(received)


def _answer(status: int, data: dict[str, Any] | None) -> Response:
    content = b"" if data is None else json.dumps(data).encode("utf-8")
    return Response(content, status_code=status, media_type="application/json")


def actions_router(
    actions: SlackActions, *, max_body: int = MAX_BODY, body_timeout: float = BODY_TIMEOUT
) -> APIRouter:
    """`POST /slack/actions` as a router, for the web app or `InteractivityServer` to include.

    The body is awaited on the event loop (bounded in size and time); only the
    verified request's work (the desk, Slack's API) runs on a worker thread.
    """
    router = APIRouter()

    @router.post(PATH, include_in_schema=False)
    async def slack_actions(request: Request) -> Response:
        declared = request.headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > max_body:
            return _answer(413, {"error": "body too large"})
        try:
            async with asyncio.timeout(body_timeout):
                body = await _body(request, max_body)
        except TimeoutError:
            return _answer(408, {"error": "body not sent in time"})
        except _TooLarge:
            return _answer(413, {"error": "body too large"})
        except ClientDisconnect:
            return _answer(400, {"error": "client went away"})
        headers = {k.lower(): v for k, v in request.headers.items()}
        return _answer(*await run_in_threadpool(actions.receive, headers, body))

    return router


class InteractivityServer:
    """`POST /slack/actions` alone on uvicorn, on a loopback or public address.

    The port is bound at construction (0 picks a free one, named in `url`);
    `start()` returns at once, and connections made before the loop runs wait
    in the listen backlog.
    """

    def __init__(
        self,
        desk: Desk,
        slack: SlackNotifier,
        signing_secret: str,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        *,
        max_body: int = MAX_BODY,
        body_timeout: float = BODY_TIMEOUT,
        replays: ReplayLog | None = None,
    ) -> None:
        self.actions = SlackActions(desk, slack, signing_secret, clock, replays=replays)
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
        app.include_router(actions_router(self.actions, max_body=max_body, body_timeout=body_timeout))
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.create_server((host, port), family=family)
        bound = self._socket.getsockname()[1]
        self.url = f"http://{f'[{host}]' if family == socket.AF_INET6 else host}:{bound}{PATH}"
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_config=None,
                access_log=False,
                lifespan="off",
                timeout_keep_alive=KEEP_ALIVE,
                timeout_graceful_shutdown=3,
            )
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="slack-actions", daemon=True
        )

    @property
    def desk(self) -> Desk:
        return self.actions.desk

    def start(self) -> InteractivityServer:
        self._thread.start()
        log.info("slack interactivity endpoint on %s", self.url)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._socket.close()
        self.actions.close()

    def receive(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any] | None]:
        """Verify, then act, without HTTP; header names in lower case."""
        return self.actions.receive(headers, body)
