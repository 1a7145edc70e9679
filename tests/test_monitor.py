"""A brand team points Listener at its feed: mentions are matched, scored, indexed, searchable."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from fixture_server import FixtureServer

from listener.app import Monitor, open_store
from listener.config import load_config
from listener.query.parser import parse
from models.loader import load_classifier
from pipelines.store import SearchRequest

pytestmark = pytest.mark.slow

NOW = datetime.now(UTC).replace(microsecond=0)
ITEMS = [
    ("a1", "Acme lost my luggage again and nobody answers the phone. Worst airline ever.", NOW),
    ("a2", "Lovely flight with Acme today, the crew were fantastic!", NOW - timedelta(minutes=3)),
    ("a3", "Holiday snaps from Acmeville, a quiet town by the sea.", NOW - timedelta(minutes=5)),
    ("a4", "Acme announced its schedule for the spring season.", NOW - timedelta(days=800)),
]


def rss(items: list[tuple[str, str, datetime]]) -> str:
    entries = "".join(
        f"<item><guid>{guid}</guid><title>post {guid}</title><link>http://example.com/{guid}</link>"
        f"<description>{text}</description><pubDate>{format_datetime(when)}</pubDate></item>"
        for guid, text, when in items
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{entries}</channel></rss>'


def write_config(tmp_path: Path, feed_url: str) -> Path:
    path = tmp_path / "watch.yaml"
    path.write_text(
        f"""
data_dir: ./data
brands:
  - name: Acme
    queries: ['acme OR "acme air"']
    sources:
      - {{type: feed, name: acme-feed, url: "{feed_url}", poll_interval: 1s}}
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def classifier():
    from listener.config import ClassifierConfig

    return load_classifier(ClassifierConfig())


def run_until(monitor: Monitor, done, timeout: float = 60.0) -> None:
    stop = threading.Event()
    monitor.start(stop)
    deadline = time.monotonic() + timeout
    try:
        while not done() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        monitor.join()
        monitor.close()


def test_mentions_from_a_feed_are_scored_indexed_and_searchable_once(tmp_path, classifier):
    with FixtureServer() as server:
        feed = server.add("/acme.rss", rss(ITEMS), content_type="application/rss+xml")
        config = load_config(write_config(tmp_path, feed))

        def indexed() -> int:
            with open_store(config) as reader:
                return reader.search(SearchRequest(limit=0)).total

        run_until(Monitor(config, classifier_factory=lambda: classifier), lambda: indexed() >= 3)

        store = open_store(config)
        everything = store.search(SearchRequest(limit=10))
        assert {hit.mention.url for hit in everything.hits} == {
            "http://example.com/a1",
            "http://example.com/a2",
            "http://example.com/a4",
        }, "Acmeville is not Acme"
        complaint = store.search(SearchRequest(query=parse("luggage"))).hits[0].mention
        assert complaint.sentiment.label == "negative"
        praise = store.search(SearchRequest(query=parse("fantastic"))).hits[0].mention
        assert praise.sentiment.label == "positive"

        # A restart polls the same feed again: nothing new, nothing duplicated; and its
        # housekeeping drops what is older than the store's retention (365 days by default).
        second = Monitor(config, classifier_factory=lambda: classifier)
        run_until(second, lambda: False, timeout=4.0)
        remaining = store.search(SearchRequest(limit=10))
        assert remaining.total == 2
        assert {hit.mention.url for hit in remaining.hits} == {"http://example.com/a1", "http://example.com/a2"}
        store.close()
