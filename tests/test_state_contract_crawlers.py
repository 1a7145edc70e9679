"""Fetch state and source health keep their promises on every state engine (SQLite and PostgreSQL).

In the distributed deployment `crawl` may run as several copies and may be
restarted in the middle of a poll; the web app and the CLI read the health log
it writes. These stories run both stores over both engines, the shared-use ones
from threads with their own transactions, as several processes would.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest
from state_engines import migrated

from crawlers import health, state
from crawlers.health import HealthLog
from crawlers.state import EmptyPage, FetchState, PendingPoll, SourceState, empty_backoff
from listener.errors import StateError
from listener.records import Document, document_id
from listener.statedb import StateDB

T0 = 1_763_600_000.0
HOUR = 3600.0
R = TypeVar("R")


def fetch_state(db: StateDB) -> FetchState:
    return FetchState(migrated(db, "fetch", state.MIGRATIONS))


def health_log(db: StateDB) -> HealthLog:
    return HealthLog(migrated(db, "source_health", health.MIGRATIONS))


def feed_items(*keys: str) -> list[Document]:
    when = datetime(2026, 3, 1, tzinfo=UTC)
    fields = {"source": "feed", "source_type": "feed", "published": when, "fetched": when}
    return [Document(id=document_id("feed", key), text=f"story {key}", **fields) for key in keys]


def at_once(*calls: Callable[[], R]) -> list[R]:
    """Run the calls in threads released together; their results, re-raising the first error."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], R]) -> R:
        start.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


# --- per-source state ------------------------------------------------------------------------


def test_a_restarted_crawl_picks_up_the_failure_run_and_poll_time_where_they_were(state_db: StateDB) -> None:
    first = fetch_state(state_db)
    assert first.get("news") == SourceState("news")
    assert first.record_failure("news", "HTTP 503", when=T0) == 1
    assert first.record_failure("news", "timed out " + "x" * 3000, when=T0 + 60) == 2

    restarted = fetch_state(state_db)
    known = restarted.get("news")
    assert (known.failures, known.last_poll) == (2, T0 + 60)
    assert known.last_error is not None and known.last_error.startswith("timed out")
    assert len(known.last_error) == 2000  # an error page is not stored whole

    restarted.record_success("news", when=T0 + 120)
    assert restarted.get("news") == SourceState("news", last_poll=T0 + 120)
    assert restarted.record_failure("news", "HTTP 500", when=T0 + 180) == 1


def test_failures_counted_by_two_copies_at_once_are_all_counted(state_db: StateDB) -> None:
    one, other = fetch_state(state_db), fetch_state(state_db)

    def fail(store: FetchState) -> list[int]:
        return [store.record_failure("api", "HTTP 429", when=T0) for _ in range(15)]

    counts = at_once(lambda: fail(one), lambda: fail(other))
    assert sorted(counts[0] + counts[1]) == list(range(1, 31))
    assert one.get("api").failures == 30


# --- seen items, validators and cursors ------------------------------------------------------


def test_items_come_back_until_published_and_the_validators_wait_for_all_of_them(
    state_db: StateDB,
) -> None:
    store = fetch_state(state_db)
    docs = feed_items("a", "b", "c")
    pending = PendingPoll(etag='"v2"', last_modified="Tue, 03 Mar 2026 20:00:00 GMT", cursor="page-9")
    handed = pending.hand_out(docs, store.unseen("feed", (d.id for d in docs)))
    first = next(handed)

    # The crawl stops after publishing one item: it is seen, but the position stays behind.
    assert store.settle("feed", pending, [first.id]) is False
    assert store.is_seen("feed", first.id)
    assert store.get("feed").etag is None and store.get_cursor("feed") is None
    assert store.unseen("feed", [d.id for d in docs]) == {docs[1].id, docs[2].id}

    rest = list(handed)
    assert pending.complete and [d.id for d in rest] == [docs[1].id, docs[2].id]
    assert store.settle("feed", pending, [first.id, *(d.id for d in rest)]) is True
    known = store.get("feed")
    assert (known.etag, known.last_modified) == ('"v2"', "Tue, 03 Mar 2026 20:00:00 GMT")
    assert store.get_cursor("feed") == "page-9"
    assert store.unseen("feed", [d.id for d in docs]) == set()
    assert store.settle("feed", None, []) is False  # a stream with nothing pending stores no position


def test_a_poll_committed_again_moves_the_cursor_and_keeps_the_first_sighting(state_db: StateDB) -> None:
    store = fetch_state(state_db)
    store.commit_poll("api", ["x"], cursor="c1", when=T0)
    store.commit_poll("api", ["x", "y"], cursor="c2", etag='"e"', when=T0 + HOUR)
    store.commit_poll("api", [])  # nothing new, nothing stored
    assert store.get_cursor("api") == "c2" and store.get("api").etag == '"e"'
    assert store.prune_seen(T0 + 1) == 1  # "x" was first seen at T0
    assert store.unseen("api", ["x", "y"]) == {"x"}


def test_a_long_listing_is_checked_in_one_pass_and_each_source_keeps_its_own_items(
    state_db: StateDB,
) -> None:
    store = fetch_state(state_db)
    listing = [f"item-{n:04d}" for n in range(1234)]
    store.mark_seen("sitemap", listing[::2], when=T0)
    assert store.unseen("sitemap", listing) == set(listing[1::2])
    assert store.unseen("sitemap", []) == set()
    assert store.unseen("other-site", listing[:3]) == set(listing[:3])
    assert store.is_seen("sitemap", "item-0000") and not store.is_seen("sitemap", "item-0001")
    assert not store.is_seen("other-site", "item-0000")


def test_two_crawl_copies_settling_the_same_new_items_at_once_both_finish(state_db: StateDB) -> None:
    """Copies inserting the same ids in opposite orders would deadlock on PostgreSQL; sorted, they queue."""
    one, other = fetch_state(state_db), fetch_state(state_db)
    rounds = [[f"round-{r}-post-{n:03d}" for n in range(200)] for r in range(8)]

    def settle(store: FetchState, backwards: bool) -> int:
        for ids in rounds:
            store.commit_poll("stream", ids[::-1] if backwards else ids, cursor=ids[0], when=T0)
        return len(rounds)

    assert at_once(lambda: settle(one, False), lambda: settle(other, True)) == [8, 8]
    everything = [item for ids in rounds for item in ids]
    assert one.unseen("stream", everything) == set()
    assert one.prune_seen(T0 + 1) == len(everything)  # each item was stored once


def test_a_settle_of_one_source_does_not_wait_for_another_sources_open_commit(state_db: StateDB) -> None:
    if state_db.engine == "sqlite":
        pytest.skip("one SQLite file has one writer at a time; only a shared database runs them side by side")
    store = fetch_state(state_db)
    inside, release = threading.Event(), threading.Event()

    def slow_commit() -> None:
        with state_db.transaction():
            store.commit_poll("slow-feed", ["a", "b"], etag='"s"', cursor="s1")
            inside.set()
            release.wait(10)

    pending = PendingPoll(etag='"f"', new_ids={"z"}, complete=True)
    with ThreadPoolExecutor(2) as pool:
        holder = pool.submit(slow_commit)
        try:
            assert inside.wait(10)
            fast = pool.submit(store.settle, "fast-feed", pending, ["z"])
            assert fast.result(timeout=5) is True  # done while the other commit is still open
            assert store.get("fast-feed").etag == '"f"' and store.get("slow-feed").etag is None
        finally:
            release.set()
        holder.result()
    assert store.get("slow-feed").etag == '"s"'


def test_changed_settings_forget_the_position_and_empty_pages_but_not_the_seen_items(
    state_db: StateDB,
) -> None:
    store = fetch_state(state_db)
    store.commit_poll("feed", ["a"], etag='"v1"', last_modified="Mon", cursor="c1", when=T0)
    store.record_failure("feed", "HTTP 500", when=T0)
    store.record_empty("feed", ["stub"], "selectors-v1", when=T0)
    store.commit_poll("other", ["a"], cursor="keep")

    store.forget_position("feed")
    assert store.get("feed") == SourceState("feed")
    assert store.get_cursor("feed") is None and store.empty_pages("feed") == {}
    assert store.is_seen("feed", "a")
    assert store.get_cursor("other") == "keep"


# --- item pages without text -----------------------------------------------------------------


def test_an_empty_page_waits_longer_each_time_and_starts_over_under_new_settings(state_db: StateDB) -> None:
    store = fetch_state(state_db)
    assert store.record_empty("site", [], "v1") == []
    assert store.record_empty("site", ["stub", "stub", "teaser"], "v1", when=T0) == [
        EmptyPage("stub", 1, T0 + HOUR),
        EmptyPage("teaser", 1, T0 + HOUR),
    ]
    (again,) = store.record_empty("site", ["stub"], "v1", when=T0 + 2 * HOUR)
    assert (again.strikes, again.retry_at, again.backoff) == (2, T0 + 4 * HOUR, 2 * HOUR)

    assert store.backed_off("site", "stub", "v1", now=T0 + 3 * HOUR)
    assert not store.backed_off("site", "stub", "v1", now=T0 + 4 * HOUR)
    assert not store.backed_off("site", "stub", "v2", now=T0 + 3 * HOUR)  # new selectors get a try
    assert not store.backed_off("other-site", "stub", "v1", now=T0)

    (fresh_start,) = store.record_empty("site", ["stub"], "v2", when=T0 + 5 * HOUR)
    assert fresh_start == EmptyPage("stub", 1, T0 + 6 * HOUR)
    assert set(store.empty_pages("site")) == {"stub", "teaser"}

    store.forget_empty("site", ["teaser", "never-empty"])
    store.forget_empty("site", [])
    assert store.empty_pages("site") == {"stub": fresh_start}


def test_a_page_empty_for_weeks_is_asked_for_once_a_week(state_db: StateDB) -> None:
    store = fetch_state(state_db)
    for day in range(12):
        (page,) = store.record_empty("site", ["paywall"], "v1", when=T0 + day * 86400)
    assert page.strikes == 12 and page.backoff == empty_backoff(12) == state.EMPTY_BACKOFF_MAX


def test_pruning_forgets_old_items_and_empty_pages_whose_wait_is_long_over(state_db: StateDB) -> None:
    store = fetch_state(state_db)
    store.mark_seen("feed", ["old-1", "old-2"], when=T0)
    store.mark_seen("feed", ["new"], when=T0 + 10 * 86400)
    store.record_empty("feed", ["gone"], "v1", when=T0)
    store.record_empty("feed", ["recent"], "v1", when=T0 + 9 * 86400)

    assert store.prune_seen(T0 + 86400) == 2
    assert store.unseen("feed", ["old-1", "old-2", "new"]) == {"old-1", "old-2"}
    assert set(store.empty_pages("feed")) == {"recent"}
    assert store.prune_seen(T0 + 86400) == 0


# --- readers and ownership -------------------------------------------------------------------


def test_the_spider_reads_what_the_poller_committed_without_writing(state_db: StateDB) -> None:
    poller = fetch_state(state_db)
    poller.commit_poll("spider", ["read-before"])
    poller.record_empty("spider", ["stub"], "v1", when=T0)

    reader = FetchState(state_db, readonly=True)
    assert reader.readonly and reader.db is state_db
    assert reader.is_seen("spider", "read-before")
    assert reader.backed_off("spider", "stub", "v1", now=T0 + 1)
    reader.close()  # a store handed a database leaves it open for its owner
    assert poller.is_seen("spider", "read-before")

    if state_db.engine == "sqlite":
        with FetchState(poller.path, readonly=True) as spider:
            assert spider.is_seen("spider", "read-before")
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                spider.mark_seen("spider", ["written-by-the-spider"])
    else:
        with pytest.raises(StateError, match="not a file"):
            _ = poller.path
    assert not poller.is_seen("spider", "written-by-the-spider")


def test_a_fetch_file_from_before_the_state_seam_keeps_its_items_and_validators(tmp_path: Path) -> None:
    """An embedded data dir upgraded in place (old files only ever were SQLite): the old
    tables are adopted, not recreated."""
    path = tmp_path / "fetch.db"
    with sqlite3.connect(path) as old:
        old.executescript(
            "CREATE TABLE source_state (source TEXT PRIMARY KEY, etag TEXT, last_modified TEXT,"
            " last_poll REAL, failures INTEGER NOT NULL DEFAULT 0, last_error TEXT);"
            "CREATE TABLE seen (source TEXT NOT NULL, item_id TEXT NOT NULL, seen_at REAL NOT NULL,"
            " PRIMARY KEY (source, item_id)) WITHOUT ROWID;"
            "INSERT INTO seen VALUES ('feed', 'a', 1.0);"
            "INSERT INTO source_state (source, etag) VALUES ('feed', '\"v1\"');"
        )
    old.close()
    with FetchState(path) as upgraded:
        assert upgraded.is_seen("feed", "a") and upgraded.get("feed").etag == '"v1"'
        assert upgraded.record_empty("feed", ["stub"], "v1", when=T0) == [EmptyPage("stub", 1, T0 + HOUR)]
        assert upgraded.db.schema_version("fetch") == len(state.MIGRATIONS)


# --- source health ---------------------------------------------------------------------------


def test_the_health_log_written_by_crawl_tells_the_web_app_a_source_is_failing(state_db: StateDB) -> None:
    crawl, web = health_log(state_db), health_log(state_db)
    crawl.record("api", ok=True, items=3, lags=[30, 90, -5, 60], when=T0)
    for n in range(1, 4):
        crawl.record("api", ok=False, error=f"HTTP 503 (try {n}) " + "x" * 2000, when=T0 + n * 60)

    report = web.report("api", now=T0 + 300, window=HOUR)
    assert report.flags == ("failing",) and report.status == "failing"
    assert (report.polls, report.items, report.consecutive_failures) == (4, 3, 3)
    assert report.error_rate == 0.75 and report.items_per_hour == 3.0
    assert report.last_success == T0 and report.last_item_at == T0
    assert report.lag_median == 60.0  # of the lags that make sense; a clock skew's negative one is left out
    assert report.last_error is not None and report.last_error.startswith("HTTP 503 (try 3)")
    assert len(report.last_error) == 1000 and report.last_error_at == T0 + 180

    crawl.record("api", ok=True, when=T0 + 400)
    assert web.report("api", now=T0 + 500).flags == ()
    assert web.report("never-configured", now=T0).status == "never polled"


def test_a_source_that_keeps_answering_with_nothing_reads_silent_and_an_unpolled_one_stale(
    state_db: StateDB,
) -> None:
    log = health_log(state_db)
    for hour in range(6):
        log.record("news", ok=True, items=4, when=T0 + hour * HOUR)
    for quarter in range(1, 21):
        log.record("news", ok=True, items=0, when=T0 + 5 * HOUR + quarter * 900)
    assert log.report("news", now=T0 + 6 * HOUR, poll_interval=900).typical_gap == HOUR
    assert log.report("news", now=T0 + 10 * HOUR, poll_interval=900).flags == ("silent",)
    assert log.report("news", now=T0 + 12 * HOUR, poll_interval=900).flags == ("silent", "stale")


def test_old_poll_rows_are_pruned_and_the_log_shares_the_fetch_database(state_db: StateDB) -> None:
    fetch = fetch_state(state_db)
    log = health_log(fetch.db)
    log.record("feed", ok=True, items=1, when=T0)
    log.record("feed", ok=False, error="DNS", when=T0 + 86400)
    assert log.prune(T0 + 1) == 1
    assert log.report("feed", now=T0 + 86400).polls == 1
    log.close()  # handed the database: closing the log leaves it to its owner
    assert fetch.get("feed") == SourceState("feed")
