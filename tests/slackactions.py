"""Slack's side of a button press: signed interactivity requests, built as Slack sends them."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import Request, urlopen

from slack_sdk.signature import SignatureVerifier
from slack_server import FakeSlack

__all__ = ["SECRET", "button", "encode", "press", "send", "signed", "submission"]

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def encode(payload: dict[str, Any]) -> bytes:
    """The form body Slack posts: the payload as JSON in one `payload` field."""
    return urlencode({"payload": json.dumps(payload)}).encode()


def signed(raw: bytes, secret: str = SECRET, stamp: int | None = None) -> dict[str, str]:
    """The v0 signature headers for `raw`, stamped now unless told otherwise."""
    when = str(int(time.time()) if stamp is None else stamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=when, body=raw)
    assert signature is not None
    return {"X-Slack-Request-Timestamp": when, "X-Slack-Signature": signature}


def press(url: str, payload: dict[str, Any], secret: str = SECRET) -> int:
    """POST a Slack interactivity request, signed with `secret` now; the HTTP status."""
    raw = encode(payload)
    return send(url, raw, signed(raw, secret))


def send(url: str, raw: bytes, headers: dict[str, str]) -> int:
    request = Request(url, data=raw, headers={"Content-Type": "application/x-www-form-urlencoded", **headers})
    try:
        with urlopen(request, timeout=5) as response:
            return int(response.status)
    except HTTPError as exc:
        return int(exc.code)


def button(
    action: str, alert_id: str, user: str, message: dict[str, Any], channel: str = "#acme-alerts"
) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": user},
        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        "channel": {"id": channel},
        "message": message,
        "actions": [{"action_id": f"listener.{action}", "value": alert_id}],
    }


def submission(user: str, slack: FakeSlack, note: str) -> dict[str, Any]:
    """The modal's submission with `note` typed in, for the modal Slack was last asked to open."""
    view = slack.calls("views.open")[-1].body["view"]
    view = json.loads(view) if isinstance(view, str) else view
    state = {"values": {"note": {"note": {"type": "plain_text_input", "value": note}}}}
    return {"type": "view_submission", "user": {"id": user}, "view": {**view, "state": state}}
