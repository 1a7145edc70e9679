"""The cross-cutting parts of a crawl, as Scrapy middlewares and item pipelines.

Kept out of the spider so that it only extracts:

* `SkipSeenMiddleware` drops requests for item pages already handed on, and for
  item pages found without text whose back-off has not ended (read from the fetch
  state, read-only), so a second poll does not fetch them again.
* `PageBudgetMiddleware` stops scheduling downloads once `max_pages` pages have
  been requested (robots.txt and skipped pages do not count).
* `DocumentPipeline` turns raw fields into `Document`s and drops items without text;
  an item page dropped so is listed in the crawl's stats for the launcher to remember.
* `JsonLinesWriter` writes one JSON document per line to the runner's output.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from scrapy import Request, Spider
from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem, IgnoreRequest
from scrapy.statscollectors import StatsCollector

from crawlers.spider import ITEM_KEY
from crawlers.state import FetchState
from crawlers.text import language_tag, parse_date, site_of
from listener.records import Document, document_id
from listener.statedb import is_file_address, open_address

__all__ = ["DocumentPipeline", "JsonLinesWriter", "PageBudgetMiddleware", "SkipSeenMiddleware"]

log = logging.getLogger(__name__)


def _fetch_state(address: str | None) -> FetchState | None:
    """The launching process's fetch state, read-only; none for a first crawl with no file yet."""
    if not address:
        return None
    if is_file_address(address):
        # From the path, so the store owns the file and opens it query-only.
        return FetchState(address, readonly=True) if Path(address).exists() else None
    return FetchState(open_address(address), readonly=True)


class SkipSeenMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.source = str(crawler.settings.get("LISTENER_SOURCE_NAME"))
        self.settings_key = str(crawler.settings.get("LISTENER_SETTINGS_KEY") or "")
        now = crawler.settings.get("LISTENER_NOW")
        self.now = time.time() if now is None else float(now)
        self.state = _fetch_state(crawler.settings.get("LISTENER_STATE_ADDRESS"))

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SkipSeenMiddleware:
        return cls(crawler)

    def process_request(self, request: Request, spider: Spider | None = None) -> None:
        key = request.meta.get(ITEM_KEY)
        if self.state is None or not key:
            return
        item_id = document_id(self.source, key)
        if self.state.is_seen(self.source, item_id):
            self._count("listener/skipped_seen")
            raise IgnoreRequest(f"already read: {request.url}")
        if self.state.backed_off(self.source, item_id, self.settings_key, self.now):
            self._count("listener/skipped_empty")
            raise IgnoreRequest(f"had no text last time, not yet due again: {request.url}")

    def _count(self, stat: str) -> None:
        if self.crawler.stats is not None:
            self.crawler.stats.inc_value(stat)


class PageBudgetMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.max_pages = int(crawler.settings.getint("LISTENER_MAX_PAGES", 50))
        self.requested = 0
        self._told = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> PageBudgetMiddleware:
        return cls(crawler)

    def process_request(self, request: Request, spider: Spider | None = None) -> None:
        if request.meta.get("dont_obey_robotstxt"):
            return  # robots.txt itself
        if self.requested >= self.max_pages:
            if not self._told:
                log.info("page limit of %d reached; not fetching further pages", self.max_pages)
                self._told = True
            if self.crawler.stats is not None:
                self.crawler.stats.inc_value("listener/over_page_budget")
            raise IgnoreRequest(f"page limit of {self.max_pages} reached: {request.url}")
        self.requested += 1


class DocumentPipeline:
    """Raw fields -> `Document`; an item with no text is dropped with the reason logged."""

    def __init__(self, source: str, stats: StatsCollector | None = None) -> None:
        self.source = source
        self.stats = stats

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> DocumentPipeline:
        return cls(str(crawler.settings.get("LISTENER_SOURCE_NAME")), crawler.stats)

    def process_item(self, item: dict[str, Any], spider: Spider | None = None) -> dict[str, Any]:
        text = (item.get("text") or "").strip()
        if not text:
            raise self._no_text(item)
        fetched = datetime.now(UTC)
        published = parse_date(item.get("date"))
        if published is None:
            log.debug("%s: no usable date (%r); using the fetch time", item.get("url"), item.get("date"))
            published = fetched
        item["document"] = Document(
            id=document_id(self.source, item["key"]),
            source=self.source,
            source_type="spider",
            url=item.get("url"),
            site=site_of(item.get("url")),
            author=item.get("author") or None,
            title=item.get("title") or None,
            text=text,
            published=published,
            fetched=fetched,
            language=language_tag(item.get("language")),
        )
        return item

    def _no_text(self, item: dict[str, Any]) -> DropItem:
        """The drop of an item without text; an item page is also listed for the launcher.

        The launcher logs the warning for an item page, with its back-off, once per
        fetch; Scrapy's own line for it is then only information. Inline items and
        single-page sources are read on every crawl anyway and keep Scrapy's warning.
        """
        reason = f"no text at {item.get('url')}: selector {item.get('text_selector')!r} matched nothing"
        drop = DropItem(reason)
        if item.get("item_page") and self.stats is not None:
            pages = list(self.stats.get_value("listener/empty_pages") or [])
            pages.append(
                {
                    "id": document_id(self.source, item["key"]),
                    "url": item.get("url"),
                    "selector": item.get("text_selector"),
                }
            )
            self.stats.set_value("listener/empty_pages", pages)
            drop.log_level = "INFO"  # read by Scrapy >= 2.13; older ones keep WARNING
        return drop


class JsonLinesWriter:
    """One `Document` JSON per line, to the file descriptor the runner reserved for output."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.written = 0

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> JsonLinesWriter:
        fd = crawler.settings.get("LISTENER_OUTPUT_FD")
        if fd is None:
            return cls(sys.stdout)
        return cls(os.fdopen(int(fd), "w", encoding="utf-8", closefd=False))

    def process_item(self, item: dict[str, Any], spider: Spider | None = None) -> dict[str, Any]:
        document: Document = item["document"]
        self.stream.write(document.model_dump_json() + "\n")
        self.stream.flush()
        self.written += 1
        return item
