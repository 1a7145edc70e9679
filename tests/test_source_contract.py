"""The source contract over the feed reader, the spider and two API sources (Hacker News,
Reddit), each against its origin played on loopback: a fixture feed, a small website, and
JSON APIs that page and filter like the real ones."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from api_server import ApiRequest, ApiServer, Reply, fixture
from fixture_server import FIXTURES, FixtureServer
from source_contract import SourceContract, SourceSite, closed_port_url

from crawlers.api_http import ApiClient, HostGate
from crawlers.feed import FeedSource
from crawlers.hackernews import HackerNewsSource
from crawlers.reddit import RedditSource
from crawlers.source import Source
from crawlers.spider_source import SpiderSource
from crawlers.state import FetchState
from listener.config import (
    FeedSourceConfig,
    HackerNewsSourceConfig,
    Limits,
    RedditSourceConfig,
    SpiderSourceConfig,
)

QUICK = Limits(per_host_delay=0.05, timeout=3)

# --- a feed ---------------------------------------------------------------------------------


class FeedSite:
    """An RSS feed that answers conditional GETs, as a well-behaved origin does."""

    def __init__(self, server: FixtureServer) -> None:
        self.server = server
        self.body = (FIXTURES / "feeds" / "rss20.xml").read_text(encoding="utf-8")
        self.server.add("/feed", self.body, content_type="application/rss+xml", etag='"v1"')

    def config(self, url: str) -> FeedSourceConfig:
        return FeedSourceConfig(type="feed", name="acme-news", url=url, poll_interval=60)

    def source(self, state: FetchState) -> Source:
        return FeedSource(self.config(self.server.url("/feed")), QUICK, state)

    def add_bad_item(self) -> None:
        empty = "<item><link>https://News.Example.com/2026/empty</link></item>\n  </channel>"
        self.body = self.body.replace("</channel>", empty)
        self.server.add("/feed", self.body, content_type="application/rss+xml", etag='"v2"')

    def unreachable(self, state: FetchState) -> Source:
        return FeedSource(self.config(closed_port_url("/feed")), QUICK, state)


class TestFeedSourceContract(SourceContract):
    @pytest.fixture
    def site(self) -> Iterator[SourceSite]:
        with FixtureServer() as server:
            yield FeedSite(server)


# --- a website without a feed ---------------------------------------------------------------

LISTING = """<!DOCTYPE html><html><body><ul class="stories">
<li><a href="/news/a1.html">Acme Air launches app</a></li>
<li><a href="/news/a2.html">Delays at the hub</a></li>
<li><a href="/news/a5.html">Oldest story</a></li>
{extra}</ul></body></html>"""
SELECTORS = {"links": "ul.stories a", "text": "div.body p", "title": "h1.title", "date": "time"}


class SpiderSite:
    """A newsroom listing three article pages, crawled by one configured Scrapy spider."""

    def __init__(self, server: FixtureServer) -> None:
        self.server = server
        server.add_file("/robots.txt", "pages/robots.txt", content_type="text/plain")
        server.add("/news/", LISTING.format(extra=""))
        for page in ("a1", "a2", "a5"):
            server.add_file(f"/news/{page}.html", f"pages/{page}.html")

    def config(self, start: str) -> SpiderSourceConfig:
        return SpiderSourceConfig.model_validate(
            {"type": "spider", "name": "acme-site", "start_urls": [start], "selectors": SELECTORS}
        )

    def source(self, state: FetchState) -> Source:
        return SpiderSource(self.config(self.server.url("/news/")), QUICK, state)

    def add_bad_item(self) -> None:
        self.server.add("/news/", LISTING.format(extra='<li><a href="/news/down.html">Down</a></li>'))
        self.server.add("/news/down.html", "upstream exploded", status=500)

    def unreachable(self, state: FetchState) -> Source:
        limits = Limits(obey_robots_txt=False, timeout=3)
        return SpiderSource(self.config(closed_port_url("/news/")), limits, state)


@pytest.mark.slow
class TestSpiderSourceContract(SourceContract):
    @pytest.fixture
    def site(self) -> Iterator[SourceSite]:
        with FixtureServer() as server:
            yield SpiderSite(server)


# --- Hacker News (Algolia search) -------------------------------------------------------------

HN_PATH = "/api/v1/search_by_date"


class HackerNewsSite:
    """Algolia's search_by_date over a fixed set of hits: filtered by `created_at_i>=N`, newest
    first, `hitsPerPage` a page."""

    def __init__(self, api: ApiServer) -> None:
        self.api = api
        self.hits: list[dict[str, Any]] = [
            *fixture("hn_search_page0.json")["hits"],
            *fixture("hn_search_page1.json")["hits"],
        ]
        api.route(HN_PATH, self.answer)

    def answer(self, request: ApiRequest) -> Reply:
        since = int(request.query.get("numericFilters", "created_at_i>=0").split(">=")[1])
        hits = [h for h in self.hits if int(h.get("created_at_i", 0)) >= since]
        size, page = int(request.query["hitsPerPage"]), int(request.query.get("page", "0"))
        pages = max(1, -(-len(hits) // size))
        return Reply({"hits": hits[page * size : (page + 1) * size], "nbPages": pages, "page": page})

    def build(self, base_url: str, state: FetchState) -> Source:
        config = HackerNewsSourceConfig(
            type="hackernews", name="hn", query="zephyro", base_url=base_url, hits_per_page=2
        )
        return HackerNewsSource(config, QUICK, state, client=ApiClient(QUICK, gate=HostGate()))

    def source(self, state: FetchState) -> Source:
        return self.build(self.api.base + "/api/v1", state)

    def add_bad_item(self) -> None:
        newest = max(int(h["created_at_i"]) for h in self.hits)
        # The API changed under us: a hit without its objectID.
        self.hits.insert(0, {"title": "Zephyro again", "author": "ghost", "created_at_i": newest + 1})

    def unreachable(self, state: FetchState) -> Source:
        return self.build(closed_port_url("/api/v1"), state)


class TestHackerNewsSourceContract(SourceContract):
    @pytest.fixture
    def site(self) -> Iterator[SourceSite]:
        api = ApiServer()
        yield HackerNewsSite(api)
        api.close()


# --- Reddit (search listing) ------------------------------------------------------------------


class RedditSite:
    """Reddit's search listing over a fixed set of posts: newest first, paged with `after`."""

    def __init__(self, api: ApiServer) -> None:
        self.api = api
        self.children: list[dict[str, Any]] = [
            *fixture("reddit_search_page1.json")["data"]["children"],
            *fixture("reddit_search_page2.json")["data"]["children"],
        ]
        api.route("/search.json", self.answer)

    def answer(self, request: ApiRequest) -> Reply:
        names = [c["data"].get("name") for c in self.children]
        start = names.index(request.query["after"]) + 1 if "after" in request.query else 0
        page = self.children[start : start + int(request.query["limit"])]
        more = start + len(page) < len(self.children)
        after = page[-1]["data"].get("name") if page and more else None
        return Reply({"kind": "Listing", "data": {"after": after, "children": page}})

    def build(self, base_url: str, state: FetchState) -> Source:
        config = RedditSourceConfig(
            type="reddit",
            name="reddit",
            query="zephyro",
            user_agent="python:acme-listener:1.2 (by /u/acme_social)",
            base_url=base_url,
            limit=2,
        )
        client = ApiClient(QUICK, user_agent=config.user_agent, gate=HostGate())
        return RedditSource(config, QUICK, state, client=client)

    def source(self, state: FetchState) -> Source:
        return self.build(self.api.base, state)

    def add_bad_item(self) -> None:
        broken = copy.deepcopy(self.children[0])
        del broken["data"]["name"]  # the API changed under us
        broken["data"]["created_utc"] += 60
        self.children.insert(0, broken)

    def unreachable(self, state: FetchState) -> Source:
        return self.build(closed_port_url(""), state)


class TestRedditSourceContract(SourceContract):
    @pytest.fixture
    def site(self) -> Iterator[SourceSite]:
        api = ApiServer()
        yield RedditSite(api)
        api.close()
