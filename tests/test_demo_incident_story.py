"""The demo's outage, from the first quiet hour to a resolved incident in Slack.

The demo world (`listener demo`'s generated timeline: three quiet hours, then
an outage and double-billing storm on Zephyro Fiber) is matched with the demo
config's own watch queries and fed, minute by minute of publication time,
through the stages the monitor wires after classification: detection,
notification (console and the real Slack client against the loopback Slack),
and the incident desk with its escalation. The on-call rota is Dana, Sam, Lee.

Sentiment comes from each item's true tone rather than the classifier, which
keeps this story to a few seconds; the model's path from the same world to an
alert is `tests/test_demo_end_to_end.py`. Time follows the world's timeline
through one injectable clock; button presses are signed with the current wall
time, as Slack signs them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from alertstory import T0, Clock, oncall_rota, scored
from slack_server import TOKEN, FakeSlack, fake_slack
from slackactions import SECRET, button, encode, press, send, signed, submission

from alerts.escalation import EscalationStage
from alerts.incidents import IncidentStore
from alerts.stages import DetectStage, NotifyStage
from listener.config import Config, load_config
from listener.demo.config import DEMO_QUERIES, write_demo_config
from listener.demo.world import HORIZON, World, WorldItem, build_world
from listener.query.matcher import Matcher
from listener.query.parser import parse_watch_query
from listener.records import Alert, ScoredMention, SentimentLabel
from listener.wiring import Wiring

BRAND = "Zephyro Fiber"
ONCALL = oncall_rota("#zephyro-escalations")


def demo_config(tmp_path: Path, slack_url: str) -> Config:
    """The demo's own watch.yaml, with an on-call rota and Slack (buttons on) added by the team."""
    path = write_demo_config(tmp_path / "watch.yaml", "http://127.0.0.1:9", tmp_path / "data")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    (zephyro,) = [b for b in data["brands"] if b["name"] == BRAND]
    zephyro["oncall"] = ONCALL
    data["slack"] = {
        "bot_token": TOKEN,
        "base_url": slack_url,
        "signing_secret": SECRET,
        "interactivity_port": 0,
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_config(path)


def mentions(world: World) -> list[ScoredMention]:
    """Every (item, brand) match of the demo queries, scored with the item's true tone."""
    matcher = Matcher(
        (brand, parse_watch_query(q)) for brand, queries in DEMO_QUERIES.items() for q in queries
    )
    found: list[ScoredMention] = []
    zephyro: list[WorldItem] = []
    for item in world.items:
        for brand in matcher.match_text(f"{item.title}\n{item.text}"):
            zephyro += [item] if brand == BRAND else []
            found.append(
                scored(
                    item.published_at,
                    SentimentLabel(item.tone),
                    brand=brand,
                    text=item.text,
                    title=item.title,
                    author=item.author,
                    url=f"http://127.0.0.1:9{item.path}",
                )
            )
    # The queries keep out the job ads and the look-alike names the world mixes in.
    assert zephyro and {i.topic for i in zephyro} == {"zephyro"}
    assert {i.phase for i in zephyro} == {"history", "calm", "crisis", "recovery"}
    return found


def minutes(world: World, found: list[ScoredMention], clock: Clock) -> Iterator[list[ScoredMention]]:
    """A minute of publishing at a time, arriving at the minute's end, until the world goes quiet."""
    first = int(min(m.published.timestamp() for m in found)) // 60 * 60
    for start in range(first, world.t0 + HORIZON + 60, 60):
        clock.now = datetime.fromtimestamp(start + 60, UTC)
        yield [m for m in found if start <= m.published.timestamp() < start + 60]


def thread_of(slack: FakeSlack, ts: str) -> list[dict[str, Any]]:
    return [p.body for p in slack.posted if p.body.get("thread_ts") == ts]


def test_the_demo_outage_is_owned_escalated_acknowledged_and_resolved(tmp_path: Path) -> None:
    world, clock = build_world(seed=7, t0=T0.timestamp()), Clock(T0)
    found = mentions(world)

    def now() -> float:
        return clock.now.timestamp()

    with fake_slack() as slack:
        config = demo_config(tmp_path, slack.url)
        # The stages after classification, as the monitor and the stage processes wire them,
        # on the world's clock (no model is loaded: sentiment is the items' true tone).
        wiring = Wiring(config, classifier_factory=lambda: None, clock=now)  # type: ignore[arg-type,return-value]
        detect, notify, escalation = (wiring.stage(n) for n in ("detect", "notify", "incidents"))
        assert isinstance(detect, DetectStage) and isinstance(notify, NotifyStage)
        assert isinstance(escalation, EscalationStage)
        endpoint = wiring.interactivity()  # interactivity_port 0 in this config: any free loopback port
        assert endpoint is not None
        endpoint.start()
        try:
            alerts: list[Alert] = []
            lee_paged_at: datetime | None = None  # the storm may outlast the response time
            for batch in minutes(world, found, clock):
                new = [o.record for o in detect.handle(batch) if isinstance(o.record, Alert)]
                notify.handle(new)
                escalation.handle(new)
                alerts += new
                if lee_paged_at is None and any("<@U0LEE>" in p.body["text"] for p in slack.posted):
                    lee_paged_at = clock.now

            # One incident, for the brand in crisis, opened while the storm was on and owned by Dana.
            assert [a.brand for a in alerts if a.status == "firing"] == [BRAND]
            incidents = IncidentStore(config.data_dir / "incidents.db")
            (incident,) = incidents.find()
            assert incident.brand == BRAND and incident.state == "open" and incident.responder == "Dana"
            start, end = world.crisis_window
            assert start <= incident.opened_at <= end

            # The alert went to the brand's channel with buttons; its updates are threaded under it.
            (first,) = [p for p in slack.posted if "listener.actions" in json.dumps(p.body.get("blocks"))]
            ts = first.response["ts"]
            assert first.body["channel"] == "#zephyro-alerts"
            rising = [u for u in thread_of(slack, ts) if "<@U0LEE>" not in u["text"]]
            assert rising and all(u["text"].startswith("Still rising") for u in rising)
            assert all(u["reply_broadcast"] in (False, "0", "false") for u in rising)
            # The recovery's trickle is still several times the usual complaints: the spike goes on.
            assert "resolved" not in [a.status for a in alerts]
            assert not [
                p for p in slack.posted if "<@" in p.body["text"] and "<@U0LEE>" not in p.body["text"]
            ]

            # Nobody has answered: Lee is paged once the response time is up, not before.
            if lee_paged_at is None:
                assert incident.escalate_at == incident.opened_at + 15 * 60
                clock.now = datetime.fromtimestamp(incident.escalate_at - 60, UTC)
                escalation.tick()
                assert not [p for p in slack.posted if "<@U0LEE>" in p.body["text"]]
                clock.now += timedelta(minutes=2)
                escalation.tick()
            else:
                due = incident.opened_at + 15 * 60
                assert due <= lee_paged_at.timestamp() <= due + 120
            paged = [p.body for p in slack.posted if "<@U0LEE>" in p.body["text"]]
            assert {p["channel"] for p in paged} == {"#zephyro-escalations", "#zephyro-alerts"}
            assert [p.get("thread_ts") for p in paged if p["channel"] == "#zephyro-alerts"] == [ts]
            assert incidents.get(incident.id).level == 1  # type: ignore[union-attr]

            # A press signed with the wrong secret is refused; Dana's signed Acknowledge is taken.
            message = {"ts": ts, "blocks": first.body["blocks"]}
            ack = encode(button("ack", incident.alert_id, "U0DANA", message, "#zephyro-alerts"))
            assert send(endpoint.url, ack, signed(ack, "not-the-signing-secret")) == 401
            assert incidents.get(incident.id).state == "open"  # type: ignore[union-attr]
            assert send(endpoint.url, ack, signed(ack)) == 200
            acked = incidents.get(incident.id)
            assert acked is not None and acked.state == "acknowledged" and acked.owner == "Dana"
            update = slack.calls("chat.update")[-1].body
            assert update["ts"] == ts and "Acknowledged* by Dana" in json.dumps(update["blocks"])

            # The trickle stops. After a calm hold the channel hears that the spike is over, but
            # the incident stays Dana's until she resolves it.
            for _ in range(30):
                clock.now += timedelta(minutes=1)
                new = [o.record for o in detect.handle([]) if isinstance(o.record, Alert)]
                notify.handle(new)
                escalation.handle(new)
                alerts += new
            ended = thread_of(slack, ts)[-1]
            assert "is over" in ended["text"] and ended["reply_broadcast"] in (True, "1", "true")
            assert incidents.get(incident.id).state == "acknowledged"  # type: ignore[union-attr]

            # Dana resolves it with a note through the modal; the message and the thread say so.
            clock.now += timedelta(minutes=20)
            resolve = button("resolve", incident.alert_id, "U0DANA", message, "#zephyro-alerts")
            assert press(endpoint.url, resolve) == 200
            assert (
                press(endpoint.url, submission("U0DANA", slack, "Fibre cut repaired; <!channel> refunds"))
                == 200
            )
            resolved = incidents.get(incident.id)
            assert resolved is not None and resolved.state == "resolved" and resolved.resolved_by == "Dana"
            final = slack.calls("chat.update")[-1].body
            assert final["ts"] == ts and "Resolved* by Dana" in json.dumps(final["blocks"])
            assert not [b for b in final["blocks"] if b["type"] == "actions"]
            note = thread_of(slack, ts)[-1]
            assert "Fibre cut repaired" in note["text"] and "&lt;!channel&gt;" in note["text"]
            kinds = [e.kind for e in incidents.events(incident.id)]
            assert kinds[0] == "opened" and "update" in kinds and kinds[-1] == "resolved"
            assert kinds.index("escalated") < kinds.index("acknowledged")
        finally:
            endpoint.stop()
            detect.close()
            notify.close()
            escalation.close()
            wiring.close()
