"""The cross-cutting parts of a crawl, as Scrapy middlewares and item pipelines.

Kept out of the spider so that it only extracts:

* `SkipSeenMiddleware` drops requests for item pages already handed on (read from
  the fetch state, read-only), so a second poll does not fetch them again.
* `PageBudgetMiddleware` stops scheduling downloads once `max_pages` pages have
  been requested (robots.txt and skipped pages do not count).
* `DocumentPipeline` turns raw fields into `Document`s and drops items without text.
* `JsonLinesWriter` writes one JSON document per line to the runner's output.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from scrapy import Request, Spider
from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem, IgnoreRequest

from crawlers.spider import ITEM_KEY
from crawlers.state import FetchState
from crawlers.text import language_tag, parse_date, site_of
from listener.records import Document, document_id

__all__ = ["DocumentPipeline", "JsonLinesWriter", "PageBudgetMiddleware", "SkipSeenMiddleware"]

log = logging.getLogger(__name__)


class SkipSeenMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.source = str(crawler.settings.get("LISTENER_SOURCE_NAME"))
        path = crawler.settings.get("LISTENER_STATE_PATH")
        self.state = FetchState(path, readonly=True) if path and Path(path).exists() else None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SkipSeenMiddleware:
        return cls(crawler)

    def process_request(self, request: Request, spider: Spider | None = None) -> None:
        key = request.meta.get(ITEM_KEY)
        if self.state is None or not key:
            return
        if self.state.is_seen(self.source, document_id(self.source, key)):
            if self.crawler.stats is not None:
                self.crawler.stats.inc_value("listener/skipped_seen")
            raise IgnoreRequest(f"already read: {request.url}")


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

    def __init__(self, source: str) -> None:
        self.source = source

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> DocumentPipeline:
        return cls(str(crawler.settings.get("LISTENER_SOURCE_NAME")))

    def process_item(self, item: dict[str, Any], spider: Spider | None = None) -> dict[str, Any]:
        text = (item.get("text") or "").strip()
        if not text:
            raise DropItem(
                f"no text at {item.get('url')}: selector {item.get('text_selector')!r} matched nothing"
            )
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
