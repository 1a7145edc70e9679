"""Brand teams route a brand's alerts, staff its rota and archive it in the browser; the pipeline follows.

Everything goes through the app's test client over a real store and a real
web.db. The stages and the Slack notifier are the real ones, built before the
change and never restarted, posting through slack_sdk to the loopback Slack
stand-in.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alertstory import T0, Clock, make_alert, scored
from slack_server import TOKEN, FakeSlack, fake_slack

from alerts.digest import DigestLog, WeeklyDigest
from alerts.escalation import EscalationStage
from alerts.incidents import IncidentStore
from alerts.live_detect import LiveDetectStage
from alerts.response import Desk
from alerts.slack import SlackNotifier
from alerts.source_notices import SourceNotices
from alerts.stages import NotifyStage
from crawlers.factory import build_sources
from crawlers.health import HealthLog
from crawlers.scheduler import Scheduler
from crawlers.state import FetchState
from listener.brand_settings import LiveBrands
from listener.config import Config
from listener.datadir import StateDatabases
from listener.live_sources import SourceSync
from listener.records import Alert, Document, Mention, document_id
from listener.stage_process import build_stage
from listener.stages import LiveMatchStage
from listener.web.accounts import AccountStore
from listener.wiring import Wiring
from pipelines.store_sqlite import EmbeddedStore
from tests.store_contract import make_mention
from tests.webapp import WebWorld, csrf_of, field_errors, web_db

HOSTILE = '<img src=x onerror="window.__x=1"> Evil'
MONDAY_9 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with fake_slack() as server:
        yield server


@pytest.fixture
def world(tmp_path: Path, slack: FakeSlack) -> Iterator[WebWorld]:
    config = Config.model_validate(
        {
            "data_dir": str(tmp_path / "data"),
            "slack": {"bot_token": TOKEN, "base_url": slack.url, "default_channel": "#listening-ops"},
            "brands": [
                {
                    "name": "Acme",
                    "queries": ["acme"],
                    "slack_channel": "#acme-alerts",
                    "sources": [{"type": "feed", "name": "acme-news", "url": "https://news.example/rss"}],
                },
                {"name": "Globex", "queries": ["globex"]},
            ],
        }
    )
    store = EmbeddedStore(tmp_path / "data" / "store.db")
    yield WebWorld(config, store, AccountStore(tmp_path / "data" / "web.db"))
    store.close()




def slack_notifier(world: WebWorld) -> SlackNotifier:
    """The monitor's own Slack notifier (the `notify` stage builds the same one)."""
    slack = Wiring(world.config, classifier_factory=lambda: None).slack  # type: ignore[arg-type,return-value]
    assert slack is not None
    return slack


def rota_form(token: str, **extra: str) -> dict[str, str]:
    """Dana and Lee a week each from 29 April 2024, Lee the next level; blank rows as the page sends."""
    return {
        "csrf": token,
        "responders.0.name": "Dana",
        "responders.0.slack_user": "U0DANA",
        "responders.1.name": "",
        "responders.1.slack_user": "",
        "responders.2.name": "Lee",
        "responders.2.slack_user": "U0LEE",
        "escalation.0.responder": "Lee",
        "escalation.0.channel": "#acme-escalations",
        "response_time": "15m",
        "remind_every": "1h",
        "handover_every": "7d",
        "handover_at": "2024-04-29T09:00:00Z",
        "digest": "1",
        "digest_day": "mon",
        "digest_hour": "9",
        **extra,
    }


def texts(slack: FakeSlack) -> list[tuple[str, str]]:
    return [(p.body["channel"], p.body["text"]) for p in slack.posted]


def test_an_editor_gives_a_new_brand_a_channel_and_its_next_alert_is_posted_there(
    world: WebWorld, slack: FakeSlack
) -> None:
    clock = Clock(T0)
    detect = LiveDetectStage(
        world.config.brands,
        web_db(world),
        world.config.data_dir / "detector.db",
        check_every_s=0.0,
        clock=clock,
    )
    notify = NotifyStage([slack_notifier(world)], sleep=lambda s: None)
    editor = world.user("ed", "editor")
    token = csrf_of(editor.get("/watch-terms").text)
    assert (
        editor.post("/brands", data={"csrf": token, "name": "Zephyro", "queries": "zephyro"}).status_code
        == 303
    )

    bad = editor.post("/watch-terms/Zephyro/channel", data={"csrf": token, "slack_channel": "zephyro alerts"})
    assert bad.status_code == 400 and "#name (no spaces)" in field_errors(bad.text)["slack_channel"]
    assert 'value="zephyro alerts"' in bad.text
    good = editor.post(
        "/watch-terms/Zephyro/channel", data={"csrf": token, "slack_channel": "#zephyro-alerts"}
    )
    assert good.status_code == 303
    assert editor.get("/api/brands/Zephyro").json()["slack_channel"] == "#zephyro-alerts"

    # A quiet hour, then complaints pile up: the running detect stage fires into the new channel.
    for minute in range(75):
        negatives = 12 if minute >= 70 else (1 if minute % 5 == 0 else 0)
        start = clock.now
        batch = [scored(start + timedelta(seconds=i), brand="Zephyro") for i in range(negatives)]
        clock.now = start + timedelta(minutes=1)
        notify.handle([o.record for o in detect.handle(batch) if isinstance(o.record, Alert)])
    firing = [p for p in slack.posted if "Negative spike for Zephyro" in p.body["text"]]
    assert [p.body["channel"] for p in firing] == ["#zephyro-alerts"]
    history = editor.get("/api/brands/Zephyro/history").json()["history"]
    assert (history[0]["part"], history[0]["detail"]) == ("channel", "Slack channel: #zephyro-alerts")


def test_a_separate_notify_process_follows_a_cleared_channel_to_the_default(
    world: WebWorld, slack: FakeSlack
) -> None:
    notify = build_stage("notify", world.config, lambda: None)  # type: ignore[arg-type,return-value]
    notify.handle([make_alert(id="a1", channel=None)])
    editor = world.user("ed", "editor", "Acme")
    token = csrf_of(editor.get("/watch-terms/Acme").text)
    put = editor.put(
        "/api/brands/Acme/channel", json={"slack_channel": None}, headers={"X-CSRF-Token": token}
    )
    assert put.status_code == 200 and put.json()["slack_channel"] is None
    notify.handle([make_alert(id="a2", channel=None)])
    assert [channel for channel, _ in texts(slack)] == ["#acme-alerts", "#listening-ops"]
    notify.close()


def test_an_editor_sets_a_rota_and_an_unanswered_alert_escalates_to_its_responder(
    world: WebWorld, slack: FakeSlack, tmp_path: Path
) -> None:
    data = world.config.data_dir
    now = [T0.timestamp()]
    notifier = slack_notifier(world)
    # The stages run from before the rota exists, and are never restarted.
    state = StateDatabases.from_config(world.config)
    notify = NotifyStage(
        [notifier], sleep=lambda s: None, desk=Desk.from_state(state, world.config, lambda: now[0])
    )
    digest = WeeklyDigest(
        IncidentStore(data / "incidents.db"),
        LiveBrands(world.config.brands, web_db(world)).current,
        notifier,
        DigestLog(data / "digests.db"),
    )
    escalation = EscalationStage(Desk.from_state(state, world.config, lambda: now[0]), notifier, digest)

    editor = world.user("ed", "editor", "Acme")
    token = csrf_of(editor.get("/watch-terms/Acme").text)
    assert (
        editor.post(
            "/watch-terms/Acme/channel", data={"csrf": token, "slack_channel": "#acme-web"}
        ).status_code
        == 303
    )
    saved = editor.post("/watch-terms/Acme/oncall", data=rota_form(token))
    assert saved.status_code == 303
    rota = editor.get("/api/brands/Acme").json()["oncall"]
    assert [r["name"] for r in rota["responders"]] == ["Dana", "Lee"] and rota["response_time"] == 900.0
    page = editor.get("/watch-terms/Acme").text
    assert 'name="responders.1.slack_user" value="U0LEE"' in page
    assert "responders: Dana (U0DANA), Lee (U0LEE); escalation: Lee in #acme-escalations" in page

    alert = make_alert(channel=None)
    notify.handle([alert])
    escalation.handle([alert])
    (incident,) = IncidentStore(data / "incidents.db").find()
    assert incident.responder == "Dana" and incident.channel == "#acme-web"

    now[0] += 16 * 60  # nobody acknowledges within the rota's 15 minutes
    escalation.tick()
    escalated = [(c, t) for c, t in texts(slack) if "<@U0LEE>" in t]
    assert {c for c, _ in escalated} == {"#acme-escalations", "#acme-web"}
    # Lee answers by Slack id; the live rota knows him by name, and the digest thanks him there.
    escalation.desk.acknowledge(incident.alert_id, "U0LEE")
    escalation.desk.resolve(incident.alert_id, "Lee", "Refunds issued")
    now[0] = MONDAY_9.timestamp() + 60
    escalation.tick()
    channel, text = texts(slack)[-1]
    assert channel == "#acme-web" and "<@U0LEE> handled 1" in text
    notify.close()
    escalation.close()
    state.close()


def test_a_bad_slack_user_id_and_an_unknown_escalation_responder_show_next_to_their_fields(
    world: WebWorld,
) -> None:
    editor = world.user("ed", "editor")
    token = csrf_of(editor.get("/watch-terms/Acme").text)
    bad = editor.post("/watch-terms/Acme/oncall", data=rota_form(token, **{"responders.2.slack_user": "lee"}))
    assert bad.status_code == 400
    shown = field_errors(bad.text)
    assert "not a Slack user id" in shown["responders.2.slack_user"]  # the row typed in, blank rows counted
    assert 'name="responders.2.slack_user" value="lee" aria-invalid="true"' in bad.text
    bad = editor.post(
        "/watch-terms/Acme/oncall",
        data=rota_form(token, **{"escalation.0.responder": "Kim", "response_time": "soon"}),
    )
    shown = field_errors(bad.text)
    assert "not a duration" in shown["response_time"]
    bad = editor.post("/watch-terms/Acme/oncall", data=rota_form(token, **{"escalation.0.responder": "Kim"}))
    assert "'Kim' is not among the responders" in field_errors(bad.text)["escalation"]
    put = editor.put(
        "/api/brands/Acme/oncall",
        json={"responders": [{"name": "Dana", "slack_user": "U0DANA", "token": "xoxb-1"}]},
        headers={"X-CSRF-Token": token},
    )
    assert put.status_code == 400 and put.json()["detail"][0]["field"] == "responders.0.token"
    assert editor.get("/api/brands/Acme").json()["oncall"] is None  # nothing was saved


def test_archiving_stops_matching_alerting_and_polling_but_old_mentions_stay_searchable(
    world: WebWorld,
) -> None:
    world.store.upsert([make_mention("acme battery died again", label="negative", brand="Acme", key="old")])
    match = LiveMatchStage(world.config.brands, web_db(world), check_every_s=0.0)
    detect = LiveDetectStage(
        world.config.brands, web_db(world), world.config.data_dir / "detector.db", check_every_s=0.0
    )
    state = FetchState(world.config.data_dir / "fetch.db")
    scheduler = Scheduler(build_sources(world.config, state), state, publish=lambda docs: None)
    sync = SourceSync(
        scheduler, world.config.brands, web_db(world), world.config.limits, state, check_every_s=0.0
    )

    def running() -> dict[str, Any]:
        now = datetime.now(UTC)
        doc = Document(
            id=document_id("feed", f"acme {now}"), source="feed", source_type="feed",
            text="acme outage again", published=now, fetched=now,
        )  # fmt: skip
        detect.handle([])
        sync.check()
        return {
            "matched": [o.record.brand for o in match.handle([doc]) if isinstance(o.record, Mention)],
            "detects": detect.detector("Acme") is not None,
            "polls": sorted(scheduler.sources),
        }

    assert running() == {"matched": ["Acme"], "detects": True, "polls": ["acme-news"]}
    editor = world.user("ed", "editor", "Acme")
    token = csrf_of(editor.get("/watch-terms/Acme").text)
    assert editor.post("/watch-terms/Acme/archive", data={"csrf": token, "archived": "1"}).status_code == 303
    assert running() == {"matched": [], "detects": False, "polls": []}
    assert detect.handle([scored(datetime.now(UTC)) for _ in range(50)]) == []  # no alert either
    assert "Archived: this brand is not matched" in editor.get("/watch-terms/Acme").text
    assert "(archived)" in editor.get("/watch-terms").text
    assert editor.get("/api/brands").json()["brands"][0] == {
        "name": "Acme", "queries": ["acme"], "sources": ["acme-news"], "archived": True,
    }  # fmt: skip
    found = editor.get("/api/search", params={"q": "battery", "brand": "Acme"}).json()
    assert found["total"] == 1
    assert '<option value="Acme"' in editor.get("/search").text

    restored = editor.put(
        "/api/brands/Acme/archived", json={"archived": False}, headers={"X-CSRF-Token": token}
    )
    assert restored.status_code == 200
    assert running() == {"matched": ["Acme"], "detects": True, "polls": ["acme-news"]}
    parts = [(h["part"], h["detail"]) for h in editor.get("/api/brands/Acme/history").json()["history"]]
    assert parts[:2] == [("archived", "restored"), ("archived", "archived: no matching, alerts or polling")]
    scheduler.close()


def test_a_web_added_brands_source_notices_go_to_its_web_channel(world: WebWorld, slack: FakeSlack) -> None:
    notices = SourceNotices(world.config, slack_notifier(world))
    editor = world.user("ed", "editor")
    token = csrf_of(editor.get("/watch-terms").text)
    headers = {"X-CSRF-Token": token}
    assert (
        editor.post(
            "/api/brands", json={"name": "Zephyro", "queries": ["zephyro"]}, headers=headers
        ).status_code
        == 201
    )
    hn = {"type": "hackernews", "name": "hn-zephyro", "query": "zephyro", "base_url": "http://127.0.0.1:9"}
    assert editor.put("/api/brands/Zephyro/sources", json={"added": [hn]}, headers=headers).status_code == 200
    assert (
        editor.put(
            "/api/brands/Zephyro/channel", json={"slack_channel": "#zephyro"}, headers=headers
        ).status_code
        == 200
    )
    health = HealthLog(world.config.data_dir / "fetch.db")
    for n in range(3):
        health.record("hn-zephyro", ok=False, error="HTTP 503", when=1_763_600_000.0 + n)
    assert notices.check(now=1_763_600_010.0) == 1
    assert texts(slack)[0][0] == "#zephyro" and "hn-zephyro" in texts(slack)[0][1]
    notices.close()


def test_viewers_and_editors_of_other_brands_cannot_route_staff_or_archive(world: WebWorld) -> None:
    viewer = world.user("vi", "viewer")
    page = viewer.get("/watch-terms/Acme")
    assert (
        "Save channel" not in page.text
        and "Save rota" not in page.text
        and "Archive this brand" not in page.text
    )
    token = csrf_of(page.text)
    forms = {
        "/watch-terms/Acme/channel": {"slack_channel": "#x"},
        "/watch-terms/Acme/oncall": rota_form(token),
        "/watch-terms/Acme/archive": {"archived": "1"},
    }
    for path, form in forms.items():
        assert viewer.post(path, data={**form, "csrf": token}).status_code == 403, path
    headers = {"X-CSRF-Token": token}
    assert (
        viewer.put("/api/brands/Acme/archived", json={"archived": True}, headers=headers).status_code == 403
    )
    assert viewer.delete("/api/brands/Acme/oncall", headers=headers).status_code == 403

    acme_only = world.user("ed", "editor", "Acme")
    token = csrf_of(acme_only.get("/watch-terms").text)
    assert (
        acme_only.post("/watch-terms/Globex/archive", data={"csrf": token, "archived": "1"}).status_code
        == 403
    )
    put = acme_only.put(
        "/api/brands/Globex/channel", json={"slack_channel": "#x"}, headers={"X-CSRF-Token": token}
    )
    assert put.status_code == 403
    # Without the CSRF token nothing changes either.
    assert acme_only.post("/watch-terms/Acme/archive", data={"archived": "1"}).status_code == 403
    assert acme_only.put("/api/brands/Acme/channel", json={"slack_channel": "#x"}).status_code == 403
    assert acme_only.get("/api/brands/Acme/history").json()["history"] == []


def test_hostile_brand_and_responder_names_are_escaped_and_control_characters_refused(
    world: WebWorld,
) -> None:
    editor = world.user("ed", "editor")
    token = csrf_of(editor.get("/watch-terms").text)
    added = editor.post("/brands", data={"csrf": token, "name": HOSTILE, "queries": '"evil corp"'})
    url = added.headers["location"].split("?")[0]
    form = rota_form(token, **{"responders.0.name": HOSTILE, "escalation.0.responder": HOSTILE})
    assert editor.post(f"{url}/oncall", data=form).status_code == 303
    assert editor.post(f"{url}/archive", data={"csrf": token, "archived": "1"}).status_code == 303
    for path in (url, "/watch-terms"):
        html = editor.get(path).text
        assert "<img src=x" not in html and "&lt;img src=x" in html, path
    wiped = rota_form(token, **{"responders.0.name": "Dana\x1b[2J"})
    answer = editor.post("/watch-terms/Acme/oncall", data=wiped)
    assert answer.status_code == 400
    assert "control characters" in field_errors(answer.text)["responders.0.name"]
    # A row number no page shows cannot make the server loop over it: it is left out.
    huge = rota_form(token, **{"responders.999999999.name": "X", "responders.999999999.slack_user": "U0X"})
    assert editor.post("/watch-terms/Acme/oncall", data=huge).status_code == 303
    assert [r["name"] for r in editor.get("/api/brands/Acme").json()["oncall"]["responders"]] == [
        "Dana",
        "Lee",
    ]
