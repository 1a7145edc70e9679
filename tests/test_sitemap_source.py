"""A news site without a feed: its sitemap tells the crawler what to read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fixture_server import FIXTURES, FixtureServer
from pydantic import ValidationError

from crawlers.sitemap import SitemapSource
from crawlers.state import FetchState
from listener.config import Limits, SitemapSourceConfig

pytestmark = pytest.mark.slow  # each poll is a Scrapy subprocess

FAST = Limits(per_host_delay=0.05, timeout=5)
SELECTORS = {"text": "div.body p", "title": "h1.title", "author": "//span[@class='author']", "date": "time"}


@pytest.fixture
def site():
    server = FixtureServer()
    recent = datetime.now(UTC).isoformat(timespec="seconds")
    for path, name in {"/sitemap_index.xml": "sitemap_index.xml", "/sitemaps/news.xml": "sitemap_news.xml",
                       "/sitemaps/archive-2019.xml": "sitemap_archive.xml"}.items():  # fmt: skip
        body = (FIXTURES / "apis" / name).read_text().format(base=server.base, recent=recent)
        server.add(path, body, content_type="application/xml")
    for page in ("a1", "a2", "a3", "a4"):
        server.add_file(f"/news/{page}.html", f"pages/{page}.html")
    server.add_file("/private/secret.html", "pages/secret.html")
    server.add_file("/robots.txt", "pages/robots.txt", content_type="text/plain")
    yield server
    server.close()


def sitemap_config(site, **extra) -> SitemapSourceConfig:
    fields = {"type": "sitemap", "name": "newsroom", "start_urls": [site.url("/sitemap_index.xml")],
              "follow": ["/sitemaps/news"], "allow": ["/news/", "/private/"], "max_age": "2d",
              "selectors": SELECTORS, **extra}  # fmt: skip
    return SitemapSourceConfig.model_validate(fields)


def drain(source) -> list:
    docs = list(source.poll())
    source.commit(docs)
    return docs


def test_recent_pages_listed_in_followed_sitemaps_are_read_once_and_robots_is_obeyed(site, tmp_path):
    with FetchState(tmp_path / "fetch.db") as state:
        source = SitemapSource(sitemap_config(site), FAST, state)
        docs = drain(source)
        assert sorted(d.title or "" for d in docs) == ["Acme Air launches app", "Delays at the hub"]
        paths = site.paths()
        assert "/sitemaps/archive-2019.xml" not in paths  # not in `follow`
        assert "/news/a3.html" not in paths  # lastmod older than max_age
        assert "/private/secret.html" not in paths  # robots.txt disallows it
        assert drain(SitemapSource(sitemap_config(site), FAST, state)) == []
        assert site.paths().count("/news/a1.html") == 1  # a page already read is not fetched again


def test_a_broken_follow_pattern_is_refused_at_load_time(site):
    with pytest.raises(ValidationError, match="not a regular expression"):
        sitemap_config(site, follow=["(unclosed"])
