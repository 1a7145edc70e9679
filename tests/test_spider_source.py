"""A site with no feed: Listener crawls it politely with one configured Scrapy spider."""

from __future__ import annotations

import itertools
import logging
import socket
from datetime import UTC, datetime

import pytest
from fixture_server import FixtureServer

from crawlers.spider import build_settings, validate_selectors
from crawlers.spider_source import SpiderSource
from crawlers.state import FetchState
from listener.config import Limits, SpiderSourceConfig
from listener.errors import ConfigError, SourceError
from listener.records import document_id

SELECTORS = {
    "links": "ul.stories a",
    "next_page": "a[rel=next]",
    "text": "div.body p",
    "title": "h1.title",
    "author": "//span[@class='author']",
    "date": "time",
}
SITE = {
    "/robots.txt": "robots.txt",
    "/news/": "listing1.html",
    "/news/page2.html": "listing2.html",
    "/news/page3.html": "listing3.html",
    "/news/a1.html": "a1.html",
    "/news/a2.html": "a2.html",
    "/news/a3.html": "a3.html",
    "/news/a4.html": "a4.html",
    "/news/a5.html": "a5.html",
    "/private/secret.html": "secret.html",
    "/forum": "inline.html",
}
ITEM_PAGES = {"/news/a1.html", "/news/a2.html", "/news/a3.html", "/news/a4.html", "/news/a5.html"}


def serve_site() -> FixtureServer:
    server = FixtureServer()
    for path, name in SITE.items():
        kind = "text/plain" if name.endswith(".txt") else "text/html; charset=utf-8"
        server.add_file(path, f"pages/{name}", content_type=kind)
    return server


def spider_config(server: FixtureServer, **overrides: object) -> SpiderSourceConfig:
    fields: dict[str, object] = {
        "type": "spider",
        "name": "acme-site",
        "start_urls": [server.url("/news/")],
        "selectors": SELECTORS,
        "max_pages": 20,
    }
    fields.update(overrides)
    return SpiderSourceConfig.model_validate(fields)


FAST = Limits(per_host_delay=0.05, timeout=5)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def crawled(tmp_path_factory):
    """One crawl of the fixture site, shared by the tests that only read its outcome."""
    server = serve_site()
    state = FetchState(tmp_path_factory.mktemp("spider") / "state.sqlite3")
    source = SpiderSource(spider_config(server), FAST, state)
    handler = _Collect()
    logging.getLogger("crawlers.spider_source").addHandler(handler)
    try:
        docs = {doc.title: doc for doc in source.poll()}
    finally:
        logging.getLogger("crawlers.spider_source").removeHandler(handler)
    yield server, source, docs, [r.getMessage() for r in handler.records]
    state.close()
    server.close()


@pytest.mark.slow
def test_a_listing_and_its_pagination_become_documents(crawled):
    server, _, docs, _ = crawled
    assert set(docs) == {"Acme Air launches app", "Delays at the hub", "Broken page", "Oldest story"}
    app = docs["Acme Air launches app"]
    assert app.text == "Acme Air released a new app today.\nReviews so far are mixed & loud."
    assert app.author == "Sam Writer"
    assert app.published == datetime(2026, 3, 1, 8, 15, tzinfo=UTC)
    assert app.language == "en"
    assert app.source_type == "spider" and app.site == "127.0.0.1"
    assert app.id == document_id("acme-site", server.url("/news/a1.html"))
    assert {"/news/page2.html", "/news/page3.html"} <= set(server.paths())


@pytest.mark.slow
def test_dates_are_read_from_time_elements_and_rfc_2822_text(crawled):
    _, _, docs, _ = crawled
    assert docs["Delays at the hub"].published == datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
    assert docs["Oldest story"].published.tzinfo is not None
    assert docs["Oldest story"].language is None


@pytest.mark.slow
def test_a_link_with_a_fragment_is_remembered_by_its_canonical_url(crawled):
    server, _, docs, _ = crawled
    hub = docs["Delays at the hub"]
    assert hub.id == document_id("acme-site", server.url("/news/a2.html"))


@pytest.mark.slow
def test_broken_html_and_garbage_bytes_still_give_the_readable_text(crawled):
    _, _, docs, _ = crawled
    broken = docs["Broken page"]
    assert "Acme Air survives broken markup" in broken.text
    assert broken.author == "Pat Garbage"
    assert broken.published == datetime(2026, 3, 3, tzinfo=UTC)
    assert "\x00" not in broken.text


@pytest.mark.slow
def test_a_page_without_text_is_skipped_and_the_reason_logged(crawled):
    server, _, docs, messages = crawled
    assert server.requests_for("/news/a4.html")
    assert "Nothing to read" not in docs
    assert any("no text at" in m and "/news/a4.html" in m and "div.body p" in m for m in messages)


@pytest.mark.slow
def test_robots_txt_is_read_and_a_disallowed_path_is_never_fetched(crawled):
    server, _, _, _ = crawled
    assert server.paths()[0] == "/robots.txt"
    assert not server.requests_for("/private/secret.html")
    assert all(r.headers["user-agent"].startswith("Listener/") for r in server.log)


@pytest.mark.slow
def test_pages_already_read_are_skipped_on_the_next_poll(crawled):
    server, source, docs, _ = crawled
    source.commit(docs.values())
    before = len(server.log)
    assert list(source.poll()) == []
    second_poll = [r.path for r in server.log[before:]]
    assert "/news/page2.html" in second_poll
    # The page dropped for having no text is backed off, not fetched again at once.
    assert [p for p in second_poll if p in ITEM_PAGES] == []
    assert source.last_summary["skipped_seen"] == 4
    assert source.last_summary["skipped_empty"] == 1


@pytest.mark.slow
def test_the_page_limit_is_respected(tmp_path):
    with serve_site() as server, FetchState(tmp_path / "s.sqlite3") as state:
        source = SpiderSource(spider_config(server, max_pages=3), FAST, state)
        docs = list(source.poll())
        pages = [p for p in server.paths() if p != "/robots.txt"]
    assert len(pages) == 3
    assert len(docs) == 2


@pytest.mark.slow
def test_the_per_host_delay_spaces_requests(tmp_path):
    delay = 0.4
    with serve_site() as server, FetchState(tmp_path / "s.sqlite3") as state:
        source = SpiderSource(spider_config(server, max_pages=4), Limits(per_host_delay=delay), state)
        list(source.poll())
        times = [r.at for r in server.log if r.path != "/robots.txt"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(gaps) == 3
    assert min(gaps) >= delay * 0.9


def test_politeness_limits_become_scrapy_settings():
    config = SpiderSourceConfig.model_validate(
        {"type": "spider", "name": "s", "start_urls": ["http://x.test/"], "selectors": {"text": "p"}}
    )
    limits = Limits(per_host_delay=2.5, per_host_concurrency=3, timeout=7, max_document_bytes=12345)
    settings = build_settings(config, limits)
    assert settings["DOWNLOAD_DELAY"] == 2.5
    assert settings["CONCURRENT_REQUESTS_PER_DOMAIN"] == 3
    assert settings["DOWNLOAD_TIMEOUT"] == 7
    assert settings["DOWNLOAD_MAXSIZE"] == 12345
    assert settings["ROBOTSTXT_OBEY"] is True
    assert settings["USER_AGENT"].startswith("Listener/")
    assert settings["LISTENER_MAX_PAGES"] == 50


@pytest.mark.slow
def test_inline_items_on_one_page_become_documents(tmp_path):
    with serve_site() as server, FetchState(tmp_path / "s.sqlite3") as state:
        config = spider_config(
            server,
            start_urls=[server.url("/forum")],
            selectors={
                "item": "div.post",
                "text": "div.msg",
                "title": "h2",
                "author": ".who",
                "date": "time",
            },
        )
        docs = list(SpiderSource(config, FAST, state).poll())
    by_title = {d.title: d for d in docs}
    assert set(by_title) == {"Acme Air perdeu minha mala", "Sem link"}
    first = by_title["Acme Air perdeu minha mala"]
    assert first.url == server.url("/forum/post-1")
    assert first.author == "maria" and first.language == "pt"
    assert first.published == datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
    assert by_title["Sem link"].url == server.url("/forum")


@pytest.mark.slow
def test_an_oversize_page_is_not_downloaded_and_the_rest_still_are(tmp_path):
    with serve_site() as server, FetchState(tmp_path / "s.sqlite3") as state:
        server.add("/news/a1.html", "<div class='body'><p>" + "x" * 50_000 + "</p></div>")
        limits = Limits(per_host_delay=0.05, max_document_bytes=20_000)
        titles = {d.title for d in SpiderSource(spider_config(server), limits, state).poll()}
    assert "Delays at the hub" in titles
    assert all("x" * 100 not in (t or "") for t in titles)
    assert len(titles) == 3


@pytest.mark.slow
def test_an_unreachable_site_is_a_source_error(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = SpiderSourceConfig.model_validate(
        {
            "type": "spider",
            "name": "gone",
            "start_urls": [f"http://127.0.0.1:{port}/"],
            "selectors": {"text": "p"},
        }
    )
    with FetchState(tmp_path / "s.sqlite3") as state:
        source = SpiderSource(config, Limits(obey_robots_txt=False, timeout=3), state)
        with pytest.raises(SourceError, match=r"crawl failed .*127\.0\.0\.1.*(refused|Connect)"):
            list(source.poll())


def test_an_invalid_selector_fails_at_start_up_naming_the_field():
    config = SpiderSourceConfig.model_validate(
        {"type": "spider", "name": "s", "start_urls": ["http://x.test/"], "selectors": {"text": "p[[["}}
    )
    with pytest.raises(ConfigError, match=r"selectors\.text: 'p\[\[\['"):
        validate_selectors(config)


@pytest.mark.slow
def test_shutting_down_stops_a_crawl_in_progress_and_commits_nothing(tmp_path):
    import threading
    import time

    with FixtureServer() as server, FetchState(tmp_path / "s.sqlite3") as state:
        server.add("/robots.txt", "", content_type="text/plain")
        server.add("/slow/", "<ul><li>never</li></ul>", delay=30.0)
        source = SpiderSource(spider_config(server, start_urls=[server.url("/slow/")]), FAST, state)
        outcome: list[BaseException] = []

        def crawl() -> None:
            try:
                list(source.poll())
            except SourceError as exc:
                outcome.append(exc)

        worker = threading.Thread(target=crawl)
        worker.start()
        time.sleep(2.0)
        started = time.monotonic()
        source.close()
        worker.join(10)
        assert not worker.is_alive()
        assert time.monotonic() - started < 10
        assert outcome and "shutting down" in str(outcome[0])
