"""Brands, alert rules and sources saved in the web app reach the running pipeline without a restart.

Each test runs a real stage (match, detect) or a real scheduler polling a
loopback feed server, saves a version the way the web app does, and watches
the running object change behaviour on its next batch or tick.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from alerts.live_detect import LiveDetectStage
from listener.brand_settings import BrandSettingsStore, effective_brands
from listener.config import AlertRule, BrandConfig, Limits
from listener.records import Document, Mention, document_id
from listener.stages import LiveMatchStage
from listener.watch_versions import WatchTermStore
from tests.alertstory import Story
from tests.fixture_server import FixtureServer, Route

RSS = """<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<item><title>{title}</title><link>https://zf.example/{key}</link><guid>{key}</guid>
<description>{title}</description><pubDate>Mon, 23 Nov 2026 06:00:00 GMT</pubDate></item>
</channel></rss>"""


def doc(text: str) -> Document:
    now = datetime.now(UTC)
    return Document(
        id=document_id("feed", text), source="feed", source_type="feed", text=text, published=now, fetched=now
    )


def test_a_brand_added_in_the_web_app_is_matched_by_the_running_stage(tmp_path: Path) -> None:
    web = tmp_path / "web.db"
    stage = LiveMatchStage([BrandConfig(name="Acme", queries=["acme"])], web, check_every_s=0.0)
    assert stage.handle([doc("zephyro fiber is down again")]) == []
    BrandSettingsStore(web).save("Zephyro", "brand", {"name": "Zephyro", "queries": ["zephyro"]}, "ed")
    outputs = stage.handle([doc("zephyro fiber is down again")])
    assert [o.record.brand for o in outputs if isinstance(o.record, Mention)] == ["Zephyro"]
    # Later query versions of the new brand apply like any brand's.
    WatchTermStore(web).save("Zephyro", ["zephyro AND outage"], "ed")
    assert stage.handle([doc("zephyro fiber is down again, third time")]) == []


def test_effective_brands_keep_watch_yaml_as_the_start_and_saved_versions_over_it(tmp_path: Path) -> None:
    web = tmp_path / "web.db"
    yaml_brand = BrandConfig.model_validate(
        {
            "name": "Acme",
            "queries": ["acme"],
            "sources": [{"type": "feed", "name": "news", "url": "https://news.example/rss"}],
        }
    )
    assert effective_brands([yaml_brand], web) == [yaml_brand]  # nothing saved: watch.yaml as it is
    settings = BrandSettingsStore(web)
    settings.save("Acme", "alert", {**AlertRule().model_dump(), "min_count": 9}, "ed")
    added = {"type": "feed", "name": "blog", "url": "https://blog.example/rss"}
    settings.save("Acme", "sources", {"disabled": ["news"], "added": [added]}, "ed")
    (acme,) = effective_brands([yaml_brand], web)
    assert acme.alert.min_count == 9
    assert [s.name for s in acme.sources] == ["blog"]


def spike_story(tmp_path: Path, rule: AlertRule) -> tuple[Story, Path]:
    """A DetectStage that follows saved rules, driven minute by minute by the alert story helpers."""
    web = tmp_path / "web.db"
    story = Story(tmp_path, rule)
    story.stage = LiveDetectStage(
        [BrandConfig(name="Acme", queries=["acme"], alert=rule)],
        web,
        tmp_path / "detector.sqlite",
        check_every_s=0.0,
        clock=story.clock,
    )
    return story, web


def test_a_saved_alert_rule_judges_the_next_windows_without_a_restart(tmp_path: Path) -> None:
    strict = AlertRule(bucket=60, baseline=3600, window=300, min_count=40)
    story, web = spike_story(tmp_path, strict)
    story.quiet_hour()
    for _ in range(3):
        story.minute(negatives=6)
    assert story.firing() == []  # 18 negatives: well above normal, but under the rule's 40
    stage = story.stage
    BrandSettingsStore(web).save("Acme", "alert", {**strict.model_dump(), "min_count": 5}, "ed")
    for _ in range(3):
        story.minute(negatives=6)
    assert story.stage is stage  # the same running stage, not a restarted one
    assert len(story.firing()) == 1
    assert story.detector.rule.min_count == 5


def test_a_new_bucket_length_restarts_the_counts_but_keeps_an_open_spike(tmp_path: Path) -> None:
    rule = AlertRule(bucket=60, baseline=3600, window=300, min_count=5)
    story, web = spike_story(tmp_path, rule)
    story.quiet_hour()
    for _ in range(3):
        story.minute(negatives=8)
    assert len(story.firing()) == 1
    open_spike = story.detector.state.open_spike
    BrandSettingsStore(web).save("Acme", "alert", {**rule.model_dump(), "bucket": 120.0}, "ed")
    story.minute()
    assert story.detector.rule.bucket == 120.0
    assert story.detector.state.open_spike == open_spike
    assert story.detector.state.first_bucket is not None
    assert story.detector.state.first_bucket >= int(story.clock.now.timestamp() // 120) - 1


def test_a_brand_added_in_the_web_app_gets_a_spike_detector(tmp_path: Path) -> None:
    story, web = spike_story(tmp_path, AlertRule())
    assert story.stage.detector("Zephyro") is None
    rule = {**AlertRule().model_dump(), "min_count": 3}
    settings = BrandSettingsStore(web)
    settings.save("Zephyro", "brand", {"name": "Zephyro", "queries": ["zephyro"]}, "ed")
    settings.save("Zephyro", "alert", rule, "ed")
    story.minute()
    detector = story.stage.detector("zephyro")
    assert detector is not None and detector.rule.min_count == 3


def test_a_new_channel_applies_from_the_next_spike_while_an_open_one_keeps_its_thread(tmp_path: Path) -> None:
    rule = AlertRule(bucket=60, baseline=3600, window=300, min_count=5)
    story, web = spike_story(tmp_path, rule)
    story.quiet_hour()
    for _ in range(3):
        story.minute(negatives=8)
    (firing,) = story.firing()
    BrandSettingsStore(web).save("Acme", "channel", {"slack_channel": "#acme-web"}, "ed")
    while not story.resolved():
        story.minute()
    assert story.resolved()[0].channel == firing.channel  # the end replies in the open spike's thread
    story.quiet_hour()
    for _ in range(3):
        story.minute(negatives=8)
    assert [a.channel for a in story.firing()] == [firing.channel, "#acme-web"]


def test_an_archived_brand_is_left_out_unless_asked_for_and_a_rota_replaces_watch_yamls(
    tmp_path: Path,
) -> None:
    web = tmp_path / "web.db"
    brands = [BrandConfig(name="Acme", queries=["acme"]), BrandConfig(name="Globex", queries=["globex"])]
    settings = BrandSettingsStore(web)
    rota = {"responders": [{"name": "Dana", "slack_user": "U0DANA"}]}
    settings.save("acme", "oncall", {"oncall": rota}, "ed")
    settings.save("Globex", "archived", {"archived": True}, "ed")
    assert [b.name for b in effective_brands(brands, web)] == ["Acme"]
    acme, globex = effective_brands(brands, web, archived=True)
    assert acme.oncall is not None and acme.oncall.responders[0].slack_user == "U0DANA"
    assert globex.name == "Globex"
    settings.save("Globex", "archived", {"archived": False}, "ed")
    settings.save("Acme", "oncall", {"oncall": None}, "ed")
    assert [(b.name, b.oncall) for b in effective_brands(brands, web)] == [("Acme", None), ("Globex", None)]


class Published:
    def __init__(self) -> None:
        self.docs: list[Document] = []

    def __call__(self, docs: list[Document]) -> None:
        self.docs.extend(docs)


def test_sources_switched_on_off_and_changed_in_the_web_app_reach_the_running_scheduler(
    tmp_path: Path,
) -> None:
    from crawlers.scheduler import Scheduler
    from crawlers.state import FetchState
    from listener.live_sources import SourceSync

    server = FixtureServer()
    try:
        server.routes["/a.xml"] = Route(
            RSS.format(title="zephyro outage", key="a").encode(), 200, "application/rss+xml"
        )
        server.routes["/b.xml"] = Route(
            RSS.format(title="zephyro refund", key="b").encode(), 200, "application/rss+xml"
        )
        web = tmp_path / "web.db"
        brands = [BrandConfig(name="Acme", queries=["acme"])]
        state = FetchState(tmp_path / "fetch.db")
        published = Published()
        scheduler = Scheduler([], state, publish=published)
        limits = Limits(obey_robots_txt=False, per_host_delay=0)
        sync = SourceSync(scheduler, brands, web, limits, state, check_every_s=0.0)
        settings = BrandSettingsStore(web)
        feed = {"type": "feed", "name": "zf", "url": server.url("/a.xml"), "poll_interval": 3600}
        settings.save("Acme", "sources", {"disabled": [], "added": [feed]}, "ed")

        stop = threading.Event()
        ticks = 0

        def tick() -> None:
            nonlocal ticks
            sync.check()
            ticks += 1
            if ticks >= 20 or published.docs:
                stop.set()

        scheduler.run_forever(stop, tick=0.05, on_tick=tick)  # the hook adds it, the loop polls it
        assert [d.title for d in published.docs] == ["zephyro outage"]

        settings.save(
            "Acme", "sources", {"disabled": [], "added": [{**feed, "url": server.url("/b.xml")}]}, "ed"
        )
        first = scheduler.sources["zf"]
        sync.check()
        assert scheduler.sources["zf"] is not first  # rebuilt with the new URL
        # ...and polled at once, without the old feed's validators, though its hour is not up.
        stop.clear()
        deadline = time.monotonic() + 10
        scheduler.run_forever(
            stop,
            tick=0.05,
            on_tick=lambda: stop.set() if len(published.docs) > 1 or time.monotonic() > deadline else None,
        )
        assert [d.title for d in published.docs] == ["zephyro outage", "zephyro refund"]
        assert server.log[-1].path == "/b.xml" and "if-modified-since" not in {
            k.lower() for k in server.log[-1].headers
        }
        settings.save("Acme", "sources", {"disabled": ["zf"], "added": [feed]}, "ed")
        sync.check()
        assert "zf" not in scheduler.sources
        scheduler.close()
    finally:
        server.close()
