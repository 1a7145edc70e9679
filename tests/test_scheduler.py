"""Sources are polled on their own clocks; failures back off; nothing is lost when publishing fails."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

import pytest
from api_server import FakeClock
from fixture_server import FixtureServer

from crawlers.factory import brands_by_source, build_sources
from crawlers.feed import FeedSource
from crawlers.scheduler import PUBLISH_MAX_BACKOFF, Scheduler, backoff_delay
from crawlers.spider_source import SpiderSource
from crawlers.state import FetchState
from listener.config import Config, FeedSourceConfig, Limits
from listener.errors import ConfigError, SourceError
from listener.records import Document, document_id

RSS = "application/rss+xml"


class ScriptedSource:
    """A source whose polls follow a script: a list of documents, or an exception to raise."""

    def __init__(self, name: str, interval: float, script: list[list[Document] | Exception]) -> None:
        self.name = name
        self.poll_interval = interval
        self.script = script
        self.polls = 0
        self.committed: list[str] = []

    def poll(self) -> Iterator[Document]:
        step = self.script[min(self.polls, len(self.script) - 1)]
        self.polls += 1
        if isinstance(step, Exception):
            raise step
        yield from step

    def commit(self, documents: Iterable[Document]) -> None:
        self.committed.extend(d.id for d in documents)

    def close(self) -> None:
        pass


def doc(source: str, key: str) -> Document:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    return Document(
        id=document_id(source, key),
        source=source,
        source_type="test",
        text=f"text of {key}",
        published=now,
        fetched=now,
    )


@pytest.fixture
def state(tmp_path):
    with FetchState(tmp_path / "state.sqlite3") as store:
        yield store


@pytest.fixture
def clock():
    return FakeClock()


def test_each_source_is_polled_on_its_own_interval(state, clock):
    fast = ScriptedSource("fast", 60, [[]])
    slow = ScriptedSource("slow", 300, [[]])
    with Scheduler([fast, slow], state, lambda docs: None, clock) as scheduler:
        assert sorted(scheduler.run_once().polled) == ["fast", "slow"]
        clock.advance(30)
        assert scheduler.run_once().polled == []
        clock.advance(30)
        assert scheduler.run_once().polled == ["fast"]
        clock.advance(240)
        assert sorted(scheduler.run_once().polled) == ["fast", "slow"]
    assert (fast.polls, slow.polls) == (3, 2)


def test_a_failing_source_backs_off_exponentially_and_recovers(state, clock):
    flaky = ScriptedSource(
        "flaky", 10, [SourceError("boom 1"), SourceError("boom 2"), [doc("flaky", "a")], []]
    )
    with Scheduler([flaky], state, lambda docs: None, clock) as scheduler:
        first = scheduler.run_once()
        assert first.failed == {"flaky": "boom 1"} and first.outcomes[0].next_in == 20
        clock.advance(10)
        assert scheduler.run_once().polled == []
        clock.advance(10)
        second = scheduler.run_once()
        assert second.outcomes[0].failures == 2 and second.outcomes[0].next_in == 40
        assert state.get("flaky").failures == 2
        assert state.get("flaky").last_error == "boom 2"
        clock.advance(40)
        recovered = scheduler.run_once()
        assert recovered.documents == 1 and recovered.outcomes[0].next_in == 10
        assert state.get("flaky").failures == 0


def test_backoff_is_capped():
    assert backoff_delay(60, 0) == 60
    assert backoff_delay(60, 3) == 480
    assert backoff_delay(60, 30, cap=3600) == 3600
    assert backoff_delay(7200, 5, cap=3600) == 7200  # never sooner than the interval itself


def test_one_failing_source_does_not_stop_the_others(state, clock):
    published: list[list[Document]] = []
    broken = ScriptedSource("broken", 60, [SourceError("http://x: HTTP 500")])
    crashing = ScriptedSource("crashing", 60, [RuntimeError("a bug")])
    healthy = ScriptedSource("healthy", 60, [[doc("healthy", "1"), doc("healthy", "2")]])
    with Scheduler([broken, crashing, healthy], state, published.append, clock) as scheduler:
        summary = scheduler.run_once()
    assert set(summary.failed) == {"broken", "crashing"}
    assert "RuntimeError: a bug" in summary.failed["crashing"]
    assert [[d.id for d in batch] for batch in published] == [
        [doc("healthy", "1").id, doc("healthy", "2").id]
    ]
    assert summary.documents == 2


def test_items_are_committed_only_after_publishing(state, clock):
    items = [doc("plain", "1")]
    plain = ScriptedSource("plain", 60, [items])

    def publish(docs):
        assert plain.committed == [], "committed before it was published"

    with Scheduler([plain], state, publish, clock) as scheduler:
        scheduler.run_once()
    assert plain.committed == [items[0].id]


def test_when_publishing_fails_the_feed_items_come_back_next_poll(state, clock):
    with FixtureServer() as server:
        url = server.add_file("/feed", "feeds/rss20.xml", content_type=RSS, etag='"v1"')
        feed = FeedSource(
            FeedSourceConfig(type="feed", name="news", url=url, poll_interval=60), Limits(), state
        )
        attempts: list[list[str]] = []

        def publish(docs):
            attempts.append([d.id for d in docs])
            if len(attempts) == 1:
                raise ConnectionError("bus is down")

        with Scheduler([feed], state, publish, clock) as scheduler:
            failed = scheduler.run_once()
            assert state.get("news").failures == 1  # counted, so it backs off and shows as failing
            clock.advance(60)
            assert scheduler.run_once().polled == []
            clock.advance(60)
            scheduler.run_once()
            clock.advance(60)
            quiet = scheduler.run_once()
        assert failed.failed == {"news": "publish failed: bus is down"} and failed.outcomes[0].next_in == 120
        assert state.get("news").failures == 0
        assert len(attempts) == 2 and attempts[0] == attempts[1] and len(attempts[0]) == 3
        assert quiet.polled == ["news"] and quiet.documents == 0
        assert server.requests_for("/feed")[-1].headers.get("if-none-match") == '"v1"'


def test_after_a_long_bus_outage_a_restart_waits_no_more_than_the_publish_back_off_cap(state, clock):
    """Forty refused publishes would mean six hours of back-off; the bus coming back needs far less."""
    source = ScriptedSource("feed", 60, [[]])
    for _ in range(40):
        state.record_failure("feed", "publish failed: bus is down", when=10_000.0)
    with Scheduler([source], state, lambda docs: None, clock, wall_clock=lambda: 10_000.0) as scheduler:
        assert scheduler.next_due("feed") - clock() == PUBLISH_MAX_BACKOFF


def test_a_restart_waits_out_the_rest_of_the_interval(state, clock):
    source = ScriptedSource("feed", 300, [[]])
    state.record_success("feed", when=10_000.0)
    with Scheduler([source], state, lambda docs: None, clock, wall_clock=lambda: 10_100.0) as scheduler:
        assert scheduler.run_once().polled == []
        clock.advance(199)
        assert scheduler.run_once().polled == []
        clock.advance(1)
        assert scheduler.run_once().polled == ["feed"]


def test_a_slow_source_does_not_hold_up_the_others(state):
    class Slow(ScriptedSource):
        def poll(self) -> Iterator[Document]:
            time.sleep(1.0)
            yield from super().poll()

    slow = Slow("slow", 60, [[doc("slow", "1")]])
    quick = ScriptedSource("quick", 0.05, [[]])
    published: list[str] = []
    stop = threading.Event()
    with Scheduler([slow, quick], state, lambda docs: published.extend(d.source for d in docs)) as scheduler:
        runner = threading.Thread(target=scheduler.run_forever, args=(stop,), kwargs={"tick": 0.02})
        runner.start()
        time.sleep(0.6)
        quick_polls_while_slow_ran = quick.polls
        time.sleep(0.8)
        stop.set()
        runner.join(timeout=5)
    assert not runner.is_alive()
    assert quick_polls_while_slow_ran >= 3
    assert published == ["slow"]


def make_config(brands: list[dict[str, object]]) -> Config:
    return Config.model_validate({"brands": brands})


FEED = {"type": "feed", "name": "shared-news", "url": "http://news.test/rss", "poll_interval": "5m"}
SPIDER = {
    "type": "spider",
    "name": "forum",
    "start_urls": ["http://forum.test/"],
    "selectors": {"item": "div.post", "text": "p"},
}


def test_a_source_listed_under_two_brands_is_fetched_once(state):
    config = make_config(
        [
            {"name": "Acme", "queries": ["acme"], "sources": [FEED, SPIDER]},
            {"name": "Globex", "queries": ["globex"], "sources": [FEED]},
        ]
    )
    sources = build_sources(config, state)
    assert [s.name for s in sources] == ["shared-news", "forum"]
    assert isinstance(sources[0], FeedSource) and isinstance(sources[1], SpiderSource)
    assert sources[0].poll_interval == 300
    assert brands_by_source(config) == {"shared-news": ["Acme", "Globex"], "forum": ["Acme"]}


def test_two_different_sources_under_one_name_are_a_config_error(state):
    config = make_config(
        [
            {"name": "Acme", "queries": ["acme"], "sources": [FEED]},
            {"name": "Globex", "queries": ["globex"], "sources": [{**FEED, "url": "http://other.test/"}]},
        ]
    )
    with pytest.raises(
        ConfigError, match=r"'shared-news' is defined differently under brands 'Acme' and 'Globex'"
    ):
        build_sources(config, state)
