"""Slack's button endpoint under load, across copies, and inside the web app.

Clients that connect and never send a body must not keep a responder's press
from being answered; bodies are capped in size and in time; a modal submitted
to another copy of the endpoint still rewrites the alert with its evidence;
and the web app answers the same signed presses through the same desk.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from alertstory import make_alert, oncall_rota
from fastapi.testclient import TestClient
from slack_sdk import WebClient
from slack_server import TOKEN, FakeSlack, fake_slack
from slackactions import SECRET, button, encode, press, send, signed, submission
from state_engines import migrated

from alerts.incidents import Incident, IncidentStore
from alerts.interactivity import PATH, InteractivityServer
from alerts.notify import NotifyStage
from alerts.oncall import Roster
from alerts.replays import MIGRATIONS, ReplayLog
from alerts.response import Desk
from alerts.silences import SilenceStore
from alerts.slack import SlackNotifier
from listener.config import Config, OnCallConfig
from listener.statedb import StateDB
from listener.web import create_app
from pipelines.store_sqlite import EmbeddedStore

ONCALL = OnCallConfig.model_validate(oncall_rota("#acme-escalations"))


def desk(data: Path) -> Desk:
    return Desk(
        IncidentStore(data / "incidents.db"), SilenceStore(data / "silences.db"), Roster({"Acme": ONCALL})
    )


def notifier(slack: FakeSlack) -> SlackNotifier:
    client = WebClient(token=TOKEN, base_url=slack.url, retry_handlers=[], timeout=5)
    return SlackNotifier(client, {"Acme": "#acme-alerts"}, buttons=True, charts=False)


def post_alert(slack: FakeSlack, data: Path) -> tuple[Incident, dict[str, object]]:
    """A firing alert posted with its buttons; its incident and the message as Slack shows it."""
    stage = NotifyStage([notifier(slack)], sleep=lambda s: None, desk=desk(data))
    alert = make_alert()
    stage.handle([alert])
    stage.close()
    (posted,) = slack.posted
    incident = IncidentStore(data / "incidents.db").by_alert(alert.id)
    assert incident is not None
    return incident, {"ts": posted.response["ts"], "blocks": posted.body["blocks"]}


@contextmanager
def endpoint(slack: FakeSlack, data: Path, **options: Any) -> Iterator[InteractivityServer]:
    server = InteractivityServer(desk(data), notifier(slack), SECRET, **options).start()
    try:
        yield server
    finally:
        server.stop()


def raw_request(url: str, head: bytes, body: bytes = b"") -> socket.socket:
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    conn = socket.create_connection((host, int(port)), timeout=5)
    conn.sendall(head + body)
    return conn


def answer_of(conn: socket.socket) -> tuple[int, dict[str, object]]:
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body or b"{}")


def headers_only(length: int) -> bytes:
    return (
        f"POST {PATH} HTTP/1.1\r\nHost: slack\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def test_two_hundred_silent_connections_do_not_delay_a_signed_press(tmp_path: Path) -> None:
    with fake_slack() as slack, ExitStack() as stack:
        incident, message = post_alert(slack, tmp_path)
        server = stack.enter_context(endpoint(slack, tmp_path))
        threads_before = threading.active_count()
        idle = [raw_request(server.url, b"") for _ in range(100)]  # connect, say nothing
        idle += [raw_request(server.url, headers_only(500)) for _ in range(100)]  # a body never sent
        for conn in idle:
            stack.callback(conn.close)
        time.sleep(0.5)  # let the server take them all in
        started = time.monotonic()
        assert press(server.url, button("ack", incident.alert_id, "U0DANA", message)) == 200
        assert time.monotonic() - started < 3.0
        assert threading.active_count() - threads_before < 50  # no thread parked per connection
        acked = IncidentStore(tmp_path / "incidents.db").get(incident.id)
        assert acked is not None and acked.owner == "Dana"
        assert "Acknowledged* by Dana" in json.dumps(slack.calls("chat.update")[-1].body["blocks"])


def test_a_body_too_big_or_too_slow_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    with fake_slack() as slack, ExitStack() as stack:
        incident, message = post_alert(slack, tmp_path)
        server = stack.enter_context(endpoint(slack, tmp_path, max_body=4096, body_timeout=0.5))
        big = raw_request(server.url, headers_only(5000))
        assert answer_of(big) == (413, {"error": "body too large"})
        raw = encode(button("ack", incident.alert_id, "U0DANA", message))
        slow = raw_request(server.url, headers_only(len(raw)), raw[:10])
        started = time.monotonic()
        assert answer_of(slow) == (408, {"error": "body not sent in time"})
        assert time.monotonic() - started < 3.0
        chunked = (
            f"POST {PATH} HTTP/1.1\r\nHost: slack\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            + b"".join(b"%x\r\n%s\r\n" % (1000, b"x" * 1000) for _ in range(5))
        )
        assert answer_of(raw_request(server.url, chunked))[0] == 413  # whatever the length claimed
        for conn in (big, slow):
            conn.close()
        assert IncidentStore(tmp_path / "incidents.db").get(incident.id).state == "open"  # type: ignore[union-attr]


def test_refusals_say_why(tmp_path: Path) -> None:
    with fake_slack() as slack, ExitStack() as stack:
        incident, message = post_alert(slack, tmp_path)
        server = stack.enter_context(endpoint(slack, tmp_path))
        raw = encode(button("ack", incident.alert_id, "U0DANA", message))
        now = int(time.time())
        cases = {
            "unsigned request": {},
            "malformed timestamp": {**signed(raw), "X-Slack-Request-Timestamp": "soon"},
            "stale timestamp (replayed or clock skew)": signed(raw, stamp=now - 301),
            "bad signature": signed(raw, secret="not-the-secret"),
        }
        for reason, headers in cases.items():
            assert server.receive({k.lower(): v for k, v in headers.items()}, raw) == (401, {"error": reason})
        fresh = signed(raw)
        assert send(server.url, raw, fresh) == 200
        assert server.receive({k.lower(): v for k, v in fresh.items()}, raw) == (
            401,
            {"error": "replayed request"},
        )


def test_a_modal_submitted_to_another_copy_keeps_the_alerts_evidence(tmp_path: Path) -> None:
    with fake_slack() as slack, ExitStack() as stack:
        incident, message = post_alert(slack, tmp_path)
        first = stack.enter_context(endpoint(slack, tmp_path))
        second = stack.enter_context(endpoint(slack, tmp_path))
        assert press(first.url, button("ack", incident.alert_id, "U0DANA", message)) == 200
        assert press(first.url, button("resolve", incident.alert_id, "U0DANA", message)) == 200
        assert press(second.url, submission("U0DANA", slack, "Refunds issued")) == 200
        assert slack.calls("conversations.history")  # the second copy never saw the press
        final = slack.calls("chat.update")[-1].body["blocks"]
        assert "Resolved* by Dana" in json.dumps(final)
        assert [b for b in final if b["type"] == "header"] == [message["blocks"][0]]  # type: ignore[index]
        assert not [b for b in final if b["type"] == "actions"]


def test_the_web_app_answers_slacks_presses_through_the_same_desk(tmp_path: Path) -> None:
    with fake_slack() as slack:
        data = tmp_path / "data"
        config = Config.model_validate(
            {
                "data_dir": str(data),
                "brands": [{"name": "Acme", "queries": ["acme"], "oncall": oncall_rota("#acme-esc")}],
                "slack": {"bot_token": TOKEN, "base_url": slack.url, "signing_secret": SECRET},
            }
        )
        incident, message = post_alert(slack, data)
        store = EmbeddedStore(data / "store.db")
        try:
            web = TestClient(create_app(config, store))
            raw = encode(button("ack", incident.alert_id, "U0SAM", message))
            form = {"Content-Type": "application/x-www-form-urlencoded"}
            refused = web.post(PATH, content=raw, headers=form)
            assert (refused.status_code, refused.json()) == (401, {"error": "unsigned request"})
            assert web.post(PATH, content=raw, headers={**form, **signed(raw)}).status_code == 200
            detail = IncidentStore(data / "incidents.db").get(incident.id)
            assert detail is not None and detail.owner == "Sam"  # the rota's name, not the Slack id
        finally:
            store.close()


def test_a_press_replayed_to_another_copy_is_refused_there_too(
    tmp_path: Path, state_db_pair: tuple[StateDB, StateDB]
) -> None:
    """Two copies of the endpoint behind one load balancer share what they have acted on."""
    first_db, second_db = state_db_pair
    with fake_slack() as slack:
        incident, message = post_alert(slack, tmp_path)
        raw = encode(button("ack", incident.alert_id, "U0DANA", message, "#acme-alerts"))
        headers = signed(raw)
        with ExitStack() as stack:
            first, second = (
                stack.enter_context(
                    endpoint(slack, tmp_path, replays=ReplayLog(migrated(db, "slack_replays", MIGRATIONS)))
                )
                for db in (first_db, second_db)
            )
            assert send(first.url, raw, headers) == 200
            assert send(second.url, raw, headers) == 401, "the same signed request, sent again elsewhere"
    acked = IncidentStore(tmp_path / "incidents.db").get(incident.id)
    assert acked is not None and acked.state == "acknowledged"
