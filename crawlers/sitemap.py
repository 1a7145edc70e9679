"""News-site sitemaps through Scrapy's `SitemapSpider`, run by the existing spider runner.

Many news sites publish no feed but keep a sitemap (often a Google News
sitemap refreshed every few minutes). `SitemapSource` is a `SpiderSource` whose
crawl uses `ConfiguredSitemapSpider`: it reads the sitemap (or the `Sitemap:`
lines of robots.txt), follows sub-sitemaps matching `follow`, reads the pages
matching `allow` with the configured selectors, and skips entries whose
`lastmod` is older than `max_age`. Pages already read are skipped before they
are downloaded, exactly as for listing crawls, and the same page budget applies.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import scrapy
from scrapy.http import Response
from scrapy.spiders import SitemapSpider
from twisted.python.failure import Failure

from crawlers.factory import register_source
from crawlers.spider import ITEM_KEY, ConfiguredSpider
from crawlers.spider_source import SpiderSource
from crawlers.state import FetchState
from crawlers.text import canonical_url, parse_date, site_of
from listener.config import Limits, SitemapSourceConfig

__all__ = ["ConfiguredSitemapSpider", "SitemapSource"]

log = logging.getLogger(__name__)


class ConfiguredSitemapSpider(SitemapSpider):
    """Walks sitemaps; item pages are parsed exactly as `ConfiguredSpider` parses them."""

    name = "listener-sitemap"

    def __init__(self, source: SitemapSourceConfig, **kwargs: Any) -> None:
        self.source = source
        self.selectors = source.selectors
        self.sitemap_urls = list(source.start_urls)
        self.sitemap_rules = [(pattern, "parse_item") for pattern in source.allow or [""]]
        self.sitemap_follow = list(source.follow or [""])
        super().__init__(name=f"listener-{source.name}", **kwargs)
        self.allowed_domains = sorted({host for url in source.start_urls if (host := site_of(url))})
        self.start_errors: dict[str, str] = {}
        self.start_ok: set[str] = set()

    async def start(self) -> AsyncIterator[Any]:
        for url in self.sitemap_urls:
            yield scrapy.Request(
                url, self._parse_sitemap, errback=self.start_failed, dont_filter=True,
                meta={"listener_start": url},
            )  # fmt: skip

    def start_failed(self, failure: Failure) -> None:
        ConfiguredSpider.start_failed(self, failure)  # type: ignore[arg-type]

    def _parse_sitemap(self, response: Response) -> Iterable[scrapy.Request]:
        if "listener_start" in response.meta:
            self.start_ok.add(response.meta["listener_start"])
        for request in super()._parse_sitemap(response):
            if request.callback != self._parse_sitemap:
                request.meta[ITEM_KEY] = canonical_url(request.url)  # lets SkipSeenMiddleware skip it
            yield request

    def sitemap_filter(self, entries: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
        """`max_age` judges pages only: an index's lastmod is often stale or missing."""
        if self.source.max_age is None or getattr(entries, "type", None) != "urlset":
            yield from entries
            return
        oldest = datetime.now(UTC) - timedelta(seconds=self.source.max_age)
        for entry in entries:
            modified = parse_date(entry.get("lastmod"))
            if modified is None or modified >= oldest:
                yield entry

    def parse_item(self, response: Response) -> Iterator[dict[str, Any]]:
        yield from ConfiguredSpider.parse_item(self, response)  # type: ignore[arg-type]


class SitemapSource(SpiderSource):
    source_type = "sitemap"

    @classmethod
    def from_config(  # type: ignore[override]
        cls, config: SitemapSourceConfig, limits: Limits, state: FetchState
    ) -> SitemapSource:
        return cls(config, limits, state)


register_source(SitemapSourceConfig)(SitemapSource.from_config)
