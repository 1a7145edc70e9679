"""Brand teams add brands and tune alert rules and sources in the browser; the running pipeline follows.

Everything goes through the app's test client over a real store and a real
web.db; the stages that follow the saved versions are the real ones, running
over the same web.db, and are never restarted.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from alerts.live_detect import LiveDetectStage
from listener.config import Config
from listener.records import Document, Mention, document_id
from listener.stages import LiveMatchStage
from listener.web.accounts import AccountStore
from pipelines.store_sqlite import EmbeddedStore
from tests.webapp import WebWorld, csrf_of, field_errors, web_db

HOSTILE = '<img src=x onerror="window.__x=1"> Evil'


@pytest.fixture
def world(tmp_path: Path) -> Iterator[WebWorld]:
    config = Config.model_validate(
        {
            "data_dir": str(tmp_path / "data"),
            "brands": [
                {
                    "name": "Acme",
                    "queries": ["acme"],
                    "sources": [{"type": "feed", "name": "acme-news", "url": "https://news.example/rss"}],
                },
                {
                    "name": "Globex",
                    "queries": ["globex"],
                    "sources": [{"type": "feed", "name": "globex-blog", "url": "https://globex.example/rss"}],
                },
            ],
        }
    )
    store = EmbeddedStore(tmp_path / "data" / "store.db")
    yield WebWorld(config, store, AccountStore(tmp_path / "data" / "web.db"))
    store.close()




def doc(text: str) -> Document:
    now = datetime.now(UTC)
    return Document(
        id=document_id("feed", text), source="feed", source_type="feed", text=text, published=now, fetched=now
    )


def matched(stage: LiveMatchStage, text: str) -> list[str]:
    return [o.record.brand for o in stage.handle([doc(text)]) if isinstance(o.record, Mention)]


def test_an_editor_adds_a_brand_fixes_its_query_and_the_running_pipeline_picks_it_up(world: WebWorld) -> None:
    match = LiveMatchStage(world.config.brands, web_db(world), check_every_s=0.0)
    detect = LiveDetectStage(
        world.config.brands, web_db(world), world.config.data_dir / "detector.db", check_every_s=0.0
    )
    assert matched(match, "zephyro fiber is down") == []

    analyst = world.user("ann", "viewer")  # another web process, started before the brand exists
    editor = world.user("ed", "editor")
    token = csrf_of(editor.get("/watch-terms").text)
    bad = editor.post(
        "/brands", data={"csrf": token, "name": "Zephyro", "queries": "zephyro\nzephyro NEAR/x down"}
    )
    assert bad.status_code == 400
    shown = field_errors(bad.text)
    assert "line 2" in shown["queries"] and "^" in shown["queries"]  # the caret under the column
    assert 'value="Zephyro"' in bad.text  # what was typed is kept

    good = editor.post(
        "/brands", data={"csrf": token, "name": "Zephyro", "queries": "zephyro\nzephyro AND down"}
    )
    assert good.status_code == 303 and good.headers["location"] == "/watch-terms/Zephyro?saved=1"
    history = editor.get("/api/brands/Zephyro/history").json()["history"]
    assert [(h["part"], h["author"]) for h in history] == [("brand", "ed")]

    assert matched(match, "zephyro fiber is down") == ["Zephyro"]  # same stage object, no restart
    detect.handle([])
    assert detect.detector("Zephyro") is not None
    assert editor.get("/api/dashboard/Zephyro").status_code == 200  # dashboards know it too
    assert "Zephyro" in editor.get("/dashboard").text
    assert '<option value="Zephyro"' in analyst.get("/search").text
    assert analyst.get("/api/dashboard/Zephyro").status_code == 200


def test_a_brand_name_is_checked_like_watch_yaml(world: WebWorld) -> None:
    admin = world.user("root", "admin")
    token = csrf_of(admin.get("/watch-terms").text)
    answer = admin.post(
        "/api/brands", json={"name": "acme", "queries": ["x"]}, headers={"X-CSRF-Token": token}
    )
    assert answer.status_code == 400
    assert (
        answer.json()["detail"][0]["field"] == "name" and "already" in answer.json()["detail"][0]["message"]
    )
    answer = admin.post("/api/brands", json={"name": "a/b", "queries": []}, headers={"X-CSRF-Token": token})
    assert {p["field"] for p in answer.json()["detail"]} == {"name", "queries"}


def test_an_editor_tunes_the_alert_rule_and_the_running_spike_stage_uses_it(world: WebWorld) -> None:
    detect = LiveDetectStage(
        world.config.brands, web_db(world), world.config.data_dir / "detector.db", check_every_s=0.0
    )
    editor = world.user("ed", "editor", "Acme")
    page = editor.get("/watch-terms/Acme")
    assert 'name="min_count" value="5"' in page.text and 'name="window" value="5m"' in page.text
    token = csrf_of(page.text)

    bad = editor.post("/watch-terms/Acme/alert", data={"csrf": token, "min_count": "0", "window": "five"})
    assert bad.status_code == 400
    shown = field_errors(bad.text)
    assert "greater than or equal to 1" in shown["min_count"]
    assert "not a duration" in shown["window"]
    assert 'name="min_count" value="0" aria-invalid="true"' in bad.text

    good = editor.post("/watch-terms/Acme/alert", data={"csrf": token, "min_count": "12", "window": "10m"})
    assert good.status_code == 303
    saved = editor.get("/api/brands/Acme").json()
    assert saved["alert"]["min_count"] == 12 and saved["alert"]["window"] == 600.0
    assert saved["history"][0]["part"] == "alert" and "min_count: 5 → 12" in saved["history"][0]["detail"]
    assert "min_count: 5 → 12" in editor.get("/watch-terms/Acme").text

    detect.handle([])
    detector = detect.detector("Acme")
    assert detector is not None and detector.rule.min_count == 12 and detector.window_buckets == 10


def test_the_alert_rule_api_names_the_field_in_error(world: WebWorld) -> None:
    editor = world.user("ed", "editor")
    token = csrf_of(editor.get("/watch-terms").text)
    put = editor.put(
        "/api/brands/Acme/alert", json={"min_ratio": 0.5, "colour": "red"}, headers={"X-CSRF-Token": token}
    )
    assert put.status_code == 400
    assert {p["field"] for p in put.json()["detail"]} == {"min_ratio", "colour"}
    put = editor.put("/api/brands/Acme/alert", json={"sensitivity": 4}, headers={"X-CSRF-Token": token})
    assert put.status_code == 200 and put.json()["alert"]["sensitivity"] == 4.0


def test_an_editor_switches_a_source_off_and_adds_a_feed_and_the_scheduler_follows(world: WebWorld) -> None:
    from crawlers.factory import build_sources
    from crawlers.scheduler import Scheduler
    from crawlers.state import FetchState
    from listener.live_sources import SourceSync

    state = FetchState(world.config.data_dir / "fetch.db")
    scheduler = Scheduler(build_sources(world.config, state), state, publish=lambda docs: None)
    sync = SourceSync(
        scheduler, world.config.brands, web_db(world), world.config.limits, state, check_every_s=0.0
    )
    editor = world.user("ed", "editor", "Acme")
    token = csrf_of(editor.get("/watch-terms/Acme").text)
    bad = editor.post(
        "/watch-terms/Acme/sources",
        data={"csrf": token, "enabled": [], "feed_name": "acme-blog", "feed_url": "ftp://blog.example/rss"},
    )
    assert bad.status_code == 400 and "http:// or https://" in field_errors(bad.text)["feed_url"]
    good = editor.post(
        "/watch-terms/Acme/sources",
        data={
            "csrf": token,
            "feed_name": "acme-blog",
            "feed_url": "https://blog.example/rss",
            "feed_interval": "10m",
        },
    )
    assert good.status_code == 303
    rows = {r["name"]: r for r in editor.get("/api/brands/Acme").json()["sources"]}
    assert rows["acme-news"]["enabled"] is False  # its box was left unticked
    assert rows["acme-blog"]["origin"] == "web" and rows["acme-blog"]["settings"]["poll_interval"] == 600.0

    health = editor.get("/api/sources").json()["sources"]
    assert sorted(row["source"] for row in health) == ["acme-blog", "globex-blog"]

    sync.check()
    assert sorted(scheduler.sources) == ["acme-blog", "globex-blog"]
    scheduler.close()


def test_a_source_section_is_validated_like_watch_yaml(world: WebWorld) -> None:
    editor = world.user("ed", "editor")
    token = csrf_of(editor.get("/watch-terms/Acme").text)
    secret = "type: reddit\nname: r\nquery: acme\nclient_secret: hunter2"
    answer = editor.post(
        "/watch-terms/Acme/sources", data={"csrf": token, "enabled": ["acme-news"], "source_yaml": secret}
    )
    assert answer.status_code == 400 and "watch.yaml as ${VAR}" in field_errors(answer.text)["source_yaml"]
    spider = "type: spider\nname: acme-site\nstart_urls: [https://acme.example/]\nselectors: {}"
    answer = editor.post(
        "/watch-terms/Acme/sources", data={"csrf": token, "enabled": ["acme-news"], "source_yaml": spider}
    )
    assert answer.status_code == 400 and "selectors.text" in field_errors(answer.text)["source_yaml"]
    # A name that another brand uses for a different source is refused, as watch.yaml would be.
    clash = {"type": "feed", "name": "globex-blog", "url": "https://elsewhere.example/rss"}
    put = editor.put("/api/brands/Acme/sources", json={"added": [clash]}, headers={"X-CSRF-Token": token})
    assert put.status_code == 400 and "defined differently" in put.json()["detail"][0]["message"]


def test_viewers_and_editors_of_other_brands_may_read_but_not_change(world: WebWorld) -> None:
    viewer = world.user("vi", "viewer")
    page = viewer.get("/watch-terms/Acme")
    assert page.status_code == 200 and "Save alert rule" not in page.text and "readonly" in page.text
    assert "Add a brand" not in viewer.get("/watch-terms").text
    token = csrf_of(page.text)
    assert viewer.post("/watch-terms/Acme/alert", data={"csrf": token, "min_count": "9"}).status_code == 403
    assert (
        viewer.post("/brands", data={"csrf": token, "name": "Initech", "queries": "initech"}).status_code
        == 403
    )
    assert viewer.put("/api/brands/Acme/sources", json={}, headers={"X-CSRF-Token": token}).status_code == 403

    acme_only = world.user("ed", "editor", "Acme")
    token = csrf_of(acme_only.get("/watch-terms").text)
    assert (
        acme_only.post("/watch-terms/Globex/alert", data={"csrf": token, "min_count": "9"}).status_code == 403
    )
    assert (
        acme_only.post("/brands", data={"csrf": token, "name": "Initech", "queries": "initech"}).status_code
        == 403
    )
    assert acme_only.get("/api/brands/Globex").json()["alert"]["min_count"] == 5  # unchanged


def test_every_change_needs_the_csrf_token(world: WebWorld) -> None:
    editor = world.user("ed", "editor")
    assert editor.post("/brands", data={"name": "Initech", "queries": "initech"}).status_code == 403
    assert editor.post("/watch-terms/Acme/alert", data={"min_count": "9"}).status_code == 403
    assert editor.post("/watch-terms/Acme/sources", data={"enabled": []}).status_code == 403
    assert editor.put("/api/brands/Acme/alert", json={"min_count": 9}).status_code == 403
    assert editor.get("/api/brands/Acme").json()["history"] == []


def test_hostile_brand_and_source_names_are_escaped_everywhere(world: WebWorld) -> None:
    editor = world.user("ed", "editor")
    token = csrf_of(editor.get("/watch-terms").text)
    added = editor.post("/brands", data={"csrf": token, "name": HOSTILE, "queries": '"evil corp"'})
    assert added.status_code == 303
    feed = f"type: feed\nname: '{HOSTILE}'\nurl: https://evil.example/rss"
    url = "/watch-terms/" + added.headers["location"].split("/watch-terms/")[1].split("?")[0]
    assert editor.post(f"{url}/sources", data={"csrf": token, "source_yaml": feed}).status_code == 303
    for path in ("/watch-terms", url, "/dashboard", "/search"):
        html = editor.get(path).text
        assert "<img src=x" not in html, path
    assert "&lt;img src=x" in editor.get(url).text


def test_watch_yaml_secrets_never_leave_the_server(tmp_path: Path) -> None:
    config = Config.model_validate(
        {
            "data_dir": str(tmp_path / "data"),
            "brands": [
                {
                    "name": "Acme",
                    "queries": ["acme"],
                    "sources": [
                        {
                            "type": "reddit",
                            "name": "r",
                            "query": "acme",
                            "client_id": "id",
                            "client_secret": "hunter2",
                        }
                    ],
                }
            ],
        }
    )
    store = EmbeddedStore(tmp_path / "data" / "store.db")
    world = WebWorld(config, store, AccountStore(tmp_path / "data" / "web.db"))
    editor = world.user("ed", "editor")
    token = csrf_of(editor.get("/watch-terms/Acme").text)
    # Switching the source off and on again re-saves nothing but its name.
    assert (
        editor.put(
            "/api/brands/Acme/sources", json={"disabled": ["r"]}, headers={"X-CSRF-Token": token}
        ).status_code
        == 200
    )
    assert (
        editor.put(
            "/api/brands/Acme/sources", json={"disabled": []}, headers={"X-CSRF-Token": token}
        ).status_code
        == 200
    )
    for path in ("/api/brands/Acme", "/watch-terms/Acme", "/api/sources"):
        assert "hunter2" not in editor.get(path).text, path
    raw = (tmp_path / "data" / "web.db").read_bytes()
    assert b"hunter2" not in raw
    store.close()


def test_a_source_name_cannot_carry_control_characters(world: WebWorld) -> None:
    editor = world.user("ed", "editor")
    token = csrf_of(editor.get("/watch-terms").text)
    feed = {"type": "feed", "name": "news\x1b[2Jwiped", "url": "https://x.example/rss"}
    put = editor.put("/api/brands/Acme/sources", json={"added": [feed]}, headers={"X-CSRF-Token": token})
    assert put.status_code == 400 and put.json()["detail"][0]["field"] == "added[0].name"
