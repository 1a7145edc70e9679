"""An item page with no text is not fetched on every crawl, yet read once it has text.

The crawls are real (the spider subprocess against a local server); the clock the
source hands to each crawl is a list the test moves forward, so hours of back-off
pass in milliseconds. Requests are counted on the server.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fixture_server import FixtureServer

from crawlers.spider_source import SpiderSource
from crawlers.state import EMPTY_BACKOFF_MAX, FetchState, empty_backoff
from listener.config import Limits, SpiderSourceConfig
from listener.records import document_id

FAST = Limits(per_host_delay=0.05, timeout=5)
T0 = 1_800_000_000.0
HOUR = 3600.0


def story(title: str, text: str | None) -> str:
    body = f"<div class='body'><p>{text}</p></div>" if text else "<p class='teaser'>Subscribe to read.</p>"
    return f"<html><body><h1 class='title'>{title}</h1>{body}</body></html>"


def listing(*paths: str) -> str:
    links = "".join(f"<li><a href='{path}'>{path}</a></li>" for path in paths)
    return f"<html><body><ul class='stories'>{links}</ul></body></html>"


@pytest.fixture
def site() -> Iterator[FixtureServer]:
    with FixtureServer() as server:
        server.add("/robots.txt", "", content_type="text/plain")
        server.add("/news/", listing("/news/stub.html", "/news/good.html"))
        server.add("/news/stub.html", story("Members only", None))
        server.add("/news/good.html", story("Acme Air on time", "Flights left on time today."))
        yield server


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                messages.append(record.getMessage())

    handler = Collect()
    logger = logging.getLogger("crawlers.spider_source")
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


def config(server: FixtureServer, text: str = "div.body p", max_pages: int = 20) -> SpiderSourceConfig:
    return SpiderSourceConfig.model_validate(
        {
            "type": "spider",
            "name": "acme-news",
            "start_urls": [server.url("/news/")],
            "selectors": {"links": "ul.stories a", "text": text, "title": "h1.title"},
            "max_pages": max_pages,
        }
    )


def crawl(source: SpiderSource) -> set[str | None]:
    """One poll, published and committed as the scheduler would."""
    docs = list(source.poll())
    source.commit(docs)
    return {doc.title for doc in docs}


def fetches(server: FixtureServer, path: str) -> int:
    return len(server.requests_for(path))


@pytest.mark.slow
def test_an_empty_page_waits_out_a_growing_back_off_and_is_read_once_it_has_text(
    site, warnings, tmp_path
):
    now = [T0]
    path = tmp_path / "state.sqlite3"
    with FetchState(path) as state:
        source = SpiderSource(config(site), FAST, state, clock=lambda: now[0])
        assert crawl(source) == {"Acme Air on time"}
    assert fetches(site, "/news/stub.html") == 1
    assert len(warnings) == 1
    assert "no text at" in warnings[0] and "/news/stub.html" in warnings[0]
    assert "'div.body p'" in warnings[0] and "for 1 h" in warnings[0]

    # A restart later, within the hour: the stub is remembered and not requested.
    now[0] = T0 + 0.5 * HOUR
    with FetchState(path) as state:
        source = SpiderSource(config(site), FAST, state, clock=lambda: now[0])
        assert crawl(source) == set()
        assert source.last_summary["skipped_empty"] == 1
        assert source.last_summary["skipped_seen"] == 1
        assert fetches(site, "/news/stub.html") == 1
        assert len(warnings) == 1  # the same warning is not repeated on every poll

        # The hour is over: fetched again, still empty, so the next wait is two hours.
        now[0] = T0 + HOUR + 1
        crawl(source)
        assert fetches(site, "/news/stub.html") == 2
        assert len(warnings) == 2 and "2 fetches in a row" in warnings[1] and "for 2 h" in warnings[1]
        stub = state.empty_pages("acme-news")[document_id("acme-news", site.url("/news/stub.html"))]
        assert stub.strikes == 2 and stub.retry_at == now[0] + 2 * HOUR

        now[0] += 1.5 * HOUR
        crawl(source)
        assert fetches(site, "/news/stub.html") == 2

        # The article is published behind the stub's URL: read at the next due fetch.
        site.add("/news/stub.html", story("Members only", "Acme Air opens its lounge to all."))
        now[0] += 0.5 * HOUR + 1
        assert crawl(source) == {"Members only"}
        assert fetches(site, "/news/stub.html") == 3
        assert state.empty_pages("acme-news") == {}
        assert len(warnings) == 2


@pytest.mark.slow
def test_changing_the_selectors_reads_an_empty_page_again_at_once(site, tmp_path):
    now = [T0]
    with FetchState(tmp_path / "state.sqlite3") as state:
        crawl(SpiderSource(config(site), FAST, state, clock=lambda: now[0]))
        assert fetches(site, "/news/stub.html") == 1

        # Fixed while stopped (no live reconfiguration told the state): the settings differ.
        now[0] += 60
        fixed = SpiderSource(config(site, text="p.teaser"), FAST, state, clock=lambda: now[0])
        assert crawl(fixed) == {"Members only"}
        assert fetches(site, "/news/stub.html") == 2
        assert fixed.last_summary["skipped_empty"] == 0


@pytest.mark.slow
def test_a_live_settings_change_forgets_the_empty_pages(site, tmp_path):
    now = [T0]
    with FetchState(tmp_path / "state.sqlite3") as state:
        source = SpiderSource(config(site), FAST, state, clock=lambda: now[0])
        crawl(source)
        assert state.empty_pages("acme-news")
        # What the scheduler does for a source saved with other settings (`set_source(fresh=True)`).
        state.forget_position("acme-news")
        assert state.empty_pages("acme-news") == {}
        now[0] += 60
        crawl(source)
    assert fetches(site, "/news/stub.html") == 2


@pytest.mark.slow
def test_a_backed_off_page_does_not_spend_the_page_budget(site, tmp_path):
    now = [T0]
    with FetchState(tmp_path / "state.sqlite3") as state:
        source = SpiderSource(config(site, max_pages=3), FAST, state, clock=lambda: now[0])
        assert crawl(source) == {"Acme Air on time"}  # the listing, the stub and the story

        site.add("/news/", listing("/news/stub.html", "/news/good.html", "/news/b.html", "/news/c.html"))
        site.add("/news/b.html", story("Second", "Acme Air adds a route."))
        site.add("/news/c.html", story("Third", "Acme Air adds another route."))
        now[0] += 60
        # Listing, b and c fill the budget of 3: neither the stub nor the story read before takes a place.
        assert crawl(source) == {"Second", "Third"}
        assert source.last_summary["skipped_empty"] == 1
    assert fetches(site, "/news/stub.html") == 1


def test_the_back_off_doubles_from_an_hour_up_to_a_week():
    assert [empty_backoff(n) / HOUR for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 64, 128, 168]
    assert empty_backoff(1000) == EMPTY_BACKOFF_MAX == 7 * 24 * HOUR


def test_empty_fetches_count_in_a_row_under_the_same_settings_only(tmp_path):
    with FetchState(tmp_path / "state.sqlite3") as state:
        assert [p.strikes for p in state.record_empty("s", ["a", "b"], "k1", when=T0)] == [1, 1]
        (again,) = state.record_empty("s", ["a"], "k1", when=T0 + HOUR)
        assert again.strikes == 2 and again.retry_at == T0 + 3 * HOUR
        assert state.backed_off("s", "a", "k1", now=T0 + 2 * HOUR)
        assert not state.backed_off("s", "a", "k1", now=T0 + 3 * HOUR)
        assert not state.backed_off("s", "a", "k2", now=T0 + 2 * HOUR)  # other settings: due now
        (other,) = state.record_empty("s", ["a"], "k2", when=T0 + 2 * HOUR)
        assert other.strikes == 1
        state.forget_empty("s", ["a"])
        assert set(state.empty_pages("s")) == {"b"}
        # Pruning drops only memories whose back-off ended before the cutoff.
        state.prune_seen(older_than=T0 + 0.5 * HOUR)
        assert set(state.empty_pages("s")) == {"b"}
        state.prune_seen(older_than=T0 + 2 * HOUR)
        assert state.empty_pages("s") == {}
