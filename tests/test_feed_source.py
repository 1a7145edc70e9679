"""A brand team points Listener at feeds; it reads them politely and never loses an item."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime

import pytest
from fixture_server import FixtureServer

from crawlers.feed import FeedSource
from crawlers.state import FetchState
from crawlers.text import html_to_text, parse_date
from listener.config import FeedSourceConfig, Limits
from listener.errors import SourceError
from listener.records import document_id

RSS = "application/rss+xml; charset=utf-8"
FIXED_NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def make_source(url: str, state: FetchState, *, name: str = "acme-news", **limits: object) -> FeedSource:
    config = FeedSourceConfig(type="feed", name=name, url=url, poll_interval=60)
    return FeedSource(config, Limits(**limits), state, now=lambda: FIXED_NOW)


@pytest.fixture
def fixture_server():
    with FixtureServer() as server:
        yield server


@pytest.fixture
def state(tmp_path):
    with FetchState(tmp_path / "fetch-state.sqlite3") as store:
        yield store


def poll_and_commit(source: FeedSource):
    docs = list(source.poll())
    source.commit(docs)
    return docs


@pytest.mark.parametrize(
    ("fixture", "titles", "language"),
    [
        ("rss091.xml", ["Acme Air adds routes", "Café on board"], "en"),
        ("rss10.rdf", ["Acme Air Verspätung", "Neue Lounge"], "de"),
        ("rss20.xml", ["Acme Air outage & delays", "Acme Air refunds", "Undated note"], "en"),
        ("atom.xml", ["Acme Air nouvelle cabine", "Second billet"], "fr"),
    ],
)
def test_every_common_feed_dialect_becomes_documents(fixture_server, state, fixture, titles, language):
    url = fixture_server.add_file("/feed", f"feeds/{fixture}", content_type=RSS)
    docs = list(make_source(url, state).poll())
    assert [d.title for d in docs] == titles
    assert all(d.source == "acme-news" and d.source_type == "feed" for d in docs)
    assert all(d.language == language for d in docs)
    assert all(d.text and d.published.tzinfo is not None for d in docs)
    assert all(d.site == (d.url or "").split("/")[2].lower() for d in docs)


def test_ids_dates_and_authors_come_from_the_feed(fixture_server, state):
    url = fixture_server.add_file("/feed", "feeds/rss20.xml", content_type=RSS)
    outage, refunds, undated = make_source(url, state).poll()
    assert outage.id == document_id("acme-news", "urn:acme-watch:1001")
    assert refunds.id == document_id("acme-news", "https://News.Example.com/2026/refunds")
    assert outage.published == datetime(2026, 3, 3, 19, 5, tzinfo=UTC)
    assert outage.author == "Jane Reporter"
    assert outage.site == "news.example.com"
    assert undated.published == FIXED_NOW


def test_html_in_an_entry_is_reduced_to_clean_text(fixture_server, state):
    url = fixture_server.add_file("/feed", "feeds/rss20.xml", content_type=RSS)
    outage = next(iter(make_source(url, state).poll()))
    assert "alert(" not in outage.text and "color:red" not in outage.text
    assert "<b>" not in outage.text and "&mdash;" not in outage.text
    assert "Acme Air check-in is down — again." in outage.text
    assert "Queues <3 hours> long & growing." in outage.text


def test_the_text_helper_drops_scripts_and_keeps_paragraphs():
    text = html_to_text("<p>One&nbsp;&amp;&#32;two</p><script>x()</script><p>Three</p>")
    assert text.splitlines()[0] == "One & two"
    assert text.splitlines()[-1] == "Three"


def test_lenient_dates_cover_iso_rfc2822_and_written_forms():
    expected = datetime(2026, 3, 3, 19, 5, tzinfo=UTC)
    assert parse_date("2026-03-03T14:05:00-05:00") == expected
    assert parse_date("2026-03-03T19:05:00Z") == expected
    assert parse_date("Tue, 03 Mar 2026 14:05:00 -0500") == expected
    assert parse_date("March 3rd, 2026") == datetime(2026, 3, 3, tzinfo=UTC)
    assert parse_date("not a date") is None


def test_a_feed_that_was_not_modified_yields_nothing_new(fixture_server, state):
    url = fixture_server.add_file(
        "/feed",
        "feeds/rss20.xml",
        content_type=RSS,
        etag='"v1"',
        last_modified="Tue, 03 Mar 2026 20:00:00 GMT",
    )
    source = make_source(url, state)
    assert len(poll_and_commit(source)) == 3
    assert poll_and_commit(source) == []
    first, second = fixture_server.requests_for("/feed")
    assert "if-none-match" not in first.headers
    assert second.headers["if-none-match"] == '"v1"'
    assert second.headers["if-modified-since"] == "Tue, 03 Mar 2026 20:00:00 GMT"


def test_a_feed_that_was_already_read_yields_nothing_new_even_after_a_restart(fixture_server, tmp_path):
    url = fixture_server.add_file("/feed", "feeds/atom.xml", content_type=RSS)
    path = tmp_path / "state.sqlite3"
    with FetchState(path) as first_run:
        assert len(poll_and_commit(make_source(url, first_run))) == 2
    with FetchState(path) as second_run:
        assert list(make_source(url, second_run).poll()) == []


def test_items_not_committed_come_back_on_the_next_poll(fixture_server, state):
    # The publish step failed: the caller never commits, so nothing may be lost.
    url = fixture_server.add_file("/feed", "feeds/rss20.xml", content_type=RSS, etag='"v1"')
    source = make_source(url, state)
    lost_in_flight = list(source.poll())
    again = list(source.poll())
    assert [d.id for d in again] == [d.id for d in lost_in_flight]
    assert "if-none-match" not in fixture_server.requests_for("/feed")[1].headers


def test_only_new_entries_are_yielded_when_the_feed_grows(fixture_server, state):
    url = fixture_server.add_file("/feed", "feeds/rss091.xml", content_type=RSS)
    source = make_source(url, state)
    poll_and_commit(source)
    grown = (fixture_server.routes["/feed"].body.decode("latin-1")).replace(
        "<item>",
        "<item><title>Fresh</title><link>http://bulletin.example.com/fresh</link>"
        "<description>Acme Air news</description></item><item>",
        1,
    )
    fixture_server.add("/feed", grown.encode("latin-1"), content_type=RSS)
    assert [d.title for d in source.poll()] == ["Fresh"]


def test_a_malformed_feed_keeps_what_could_be_recovered(fixture_server, state, caplog):
    url = fixture_server.add_file("/feed", "feeds/malformed_recoverable.xml", content_type=RSS)
    with caplog.at_level(logging.WARNING, logger="crawlers.feed"):
        docs = list(make_source(url, state).poll())
    assert [d.title for d in docs] == ["Acme Air & friends", "Second & last"]
    assert any("malformed feed" in r.getMessage() for r in caplog.records)


def test_an_unusable_feed_is_a_clear_source_error(fixture_server, state):
    url = fixture_server.add_file("/feed", "feeds/unusable.bin", content_type=RSS)
    with pytest.raises(SourceError, match=r"/feed: not a usable RSS or Atom feed: .*not well-formed"):
        list(make_source(url, state).poll())


def test_an_html_page_is_not_mistaken_for_a_feed(fixture_server, state):
    url = fixture_server.add("/feed", "<!doctype html><html><body><p>Hi</p></body></html>")
    with pytest.raises(SourceError, match="RSS or Atom"):
        list(make_source(url, state).poll())


@pytest.mark.parametrize("send_length", [True, False])
def test_an_oversize_response_is_refused_naming_the_limit(fixture_server, state, send_length):
    big = b"<rss version='2.0'><channel>" + b"<!-- padding -->" * 20_000 + b"</channel></rss>"
    url = fixture_server.add("/feed", big, content_type=RSS, send_length=send_length)
    with pytest.raises(SourceError, match=r"max_document_bytes=100000"):
        list(make_source(url, state, max_document_bytes=100_000).poll())


def test_an_unreachable_server_is_a_source_error(state):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/feed"
    with pytest.raises(SourceError, match=r"cannot connect \(Connection refused\)"):
        list(make_source(url, state).poll())


def test_a_slow_server_times_out(fixture_server, state):
    url = fixture_server.add_file("/feed", "feeds/rss20.xml", content_type=RSS, delay=1.5)
    with pytest.raises(SourceError, match=r"timed out: no complete answer within 0.3 s"):
        list(make_source(url, state, timeout=0.3).poll())


@pytest.mark.parametrize("status", [500, 503, 404])
def test_an_error_status_is_a_source_error(fixture_server, state, status):
    url = fixture_server.add("/feed", "oops", status=status)
    with pytest.raises(SourceError, match=f"HTTP {status}"):
        list(make_source(url, state).poll())


def test_the_server_sees_a_user_agent_naming_listener(fixture_server, state):
    url = fixture_server.add_file("/feed", "feeds/atom.xml", content_type=RSS)
    list(make_source(url, state).poll())
    (request,) = fixture_server.requests_for("/feed")
    assert request.headers["user-agent"].startswith("Listener/")


def test_the_same_entry_twice_in_one_feed_is_yielded_once(fixture_server, state):
    entry = (
        "<item><guid isPermaLink='false'>dup-1</guid>"
        "<title>Twice</title><description>Same</description></item>"
    )
    body = f"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title>{entry}{entry}</channel></rss>"
    url = fixture_server.add("/feed", body, content_type=RSS)
    assert [d.id for d in make_source(url, state).poll()] == [document_id("acme-news", "dup-1")]


def test_hostile_markup_in_a_title_arrives_as_inert_text(fixture_server, state):
    body = (
        "<?xml version='1.0'?><rss version='2.0'><channel><title>t</title><item><guid>x</guid>"
        "<title>&lt;img src=x onerror=alert(1)&gt;Acme</title><description>ok</description>"
        "<link>javascript:alert(1)</link>"
        "</item></channel></rss>"
    )
    url = fixture_server.add("/feed", body, content_type=RSS)
    (doc,) = make_source(url, state).poll()
    assert "<img" not in (doc.title or "") and "Acme" in (doc.title or "")
    assert doc.url is None


@pytest.mark.parametrize(
    "reference", ["&#55357;", "&#xD83D;", "&#1114112;", "&#x110000;", "&#" + "9" * 30 + ";", "&#55357"]
)
def test_a_reference_to_no_character_costs_nothing_but_itself_and_the_other_entries_arrive(
    fixture_server, state, reference
):
    """feedparser raised on these for the whole document: every entry was lost on every poll."""
    body = (
        "<?xml version='1.0'?><rss version='2.0'><channel><title>t</title>"
        "<item><guid>good-1</guid><title>Acme refunds</title><description>fine</description></item>"
        f"<item><guid>bad</guid><title>Acme {reference} half an emoji</title>"
        f"<description>Acme {reference} again</description></item>"
        "<item><guid>good-2</guid><title>Acme lounge</title>"
        "<description>also fine &#233;</description></item>"
        "</channel></rss>"
    )
    url = fixture_server.add("/feed", body, content_type=RSS)
    docs = poll_and_commit(make_source(url, state))
    assert [d.title for d in docs] == ["Acme refunds", "Acme \ufffd half an emoji", "Acme lounge"]
    assert docs[1].text == "Acme \ufffd again" and docs[2].text == "also fine é"
