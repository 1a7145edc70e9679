"""One generic, configurable Scrapy spider for sites that publish no feed.

The spider only extracts: it walks listing pages (`links`, `next_page`), reads
item pages or inline items with the configured selectors and yields plain dicts.
Everything cross-cutting lives where Scrapy intends it (see `crawlers.spider_plugins`):
skipping pages already read and the page budget are downloader middlewares, turning
raw fields into `Document`s and dropping items without text is an item pipeline.

Selectors are CSS, or XPath when they start with `/`, `(` or `./`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

import scrapy
from parsel import Selector, SelectorList
from scrapy.http import Response, TextResponse
from twisted.python.failure import Failure

from crawlers.text import canonical_url, html_to_text, site_of
from listener.config import Limits, SpiderSelectors, SpiderSourceConfig
from listener.errors import ConfigError

__all__ = ["ConfiguredSpider", "build_settings", "select", "settings_key", "validate_selectors"]

log = logging.getLogger(__name__)

ITEM_KEY = "listener_item_key"
Node = Selector | TextResponse


def _is_xpath(expression: str) -> bool:
    return expression.startswith(("/", "(", "./"))


def select(node: Node, expression: str) -> SelectorList[Selector]:
    if _is_xpath(expression):
        return node.xpath(expression)
    return node.css(expression)


def validate_selectors(source: SpiderSourceConfig) -> None:
    """Fail at start-up, naming the source and field, rather than on every page."""
    probe = Selector(text="<html><body></body></html>")
    problems = []
    for field, expression in source.selectors.model_dump().items():
        if not expression:
            continue
        try:
            select(probe, expression)
        except Exception as exc:  # cssselect and lxml raise several unrelated types
            problems.append(f"source {source.name!r}: selectors.{field}: {expression!r} is invalid ({exc})")
    if problems:
        raise ConfigError(problems)


def settings_key(source: SpiderSourceConfig) -> str:
    """A digest of the source's whole section, stored with each page found empty.

    Any change (selectors, URLs, patterns) gives another key, as it makes the
    running monitor rebuild the source, so pages found empty under the old
    settings are read again at once, also when the change was made while stopped.
    """
    raw = json.dumps(source.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _strings(selection: SelectorList[Selector]) -> list[str]:
    """Text of a selection: markup reduced to text, attribute/text nodes as they are."""
    out = []
    for sel in selection:
        value = sel.get()
        text = " ".join(value.split()) if isinstance(sel.root, str) else html_to_text(value)
        if text:
            out.append(text)
    return out


def _first(node: Node, expression: str | None) -> str | None:
    """A one-line field (title, author): the first line of the first match.

    On broken markup an unclosed tag can swallow the rest of the page; the first
    line is still the field the selector was aimed at.
    """
    if not expression:
        return None
    for value in _strings(select(node, expression)):
        line = value.strip().split("\n", 1)[0].strip()
        if line:
            return line
    return None


def _date_value(node: Node, expression: str | None) -> str | None:
    """Prefer machine-readable dates (`<time datetime>`, `content=`) over visible text."""
    if not expression:
        return None
    for sel in select(node, expression):
        if not isinstance(sel.root, str):
            for attribute in ("datetime", "content", "title"):
                value = sel.attrib.get(attribute)
                if value and value.strip():
                    return value.strip()
        text = _strings(SelectorList([sel]))
        if text:
            return text[0]
    return None


def _hrefs(selection: SelectorList[Selector]) -> list[str]:
    out = []
    for sel in selection:
        if isinstance(sel.root, str):
            value: str | None = sel.get()
        else:
            value = sel.attrib.get("href") or sel.xpath(".//a/@href").get()
        if value and value.strip() and not value.strip().startswith("#"):
            out.append(value.strip())
    return out


class ConfiguredSpider(scrapy.Spider):
    """Extracts raw item fields; `crawlers.spider_plugins` turns them into documents."""

    name = "listener"

    def __init__(self, source: SpiderSourceConfig, **kwargs: Any) -> None:
        super().__init__(name=f"listener-{source.name}", **kwargs)
        self.source = source
        self.selectors: SpiderSelectors = source.selectors
        self.start_urls = list(source.start_urls)
        self.allowed_domains = sorted({host for url in source.start_urls if (host := site_of(url))})
        self.start_errors: dict[str, str] = {}
        self.start_ok: set[str] = set()

    def start_requests(self) -> Iterator[scrapy.Request]:
        for url in self.start_urls:
            yield scrapy.Request(
                url,
                callback=self.parse_listing,
                errback=self.start_failed,
                dont_filter=True,
                meta={"listener_start": url},
            )

    async def start(self) -> Any:  # Scrapy >= 2.13 reads this; older versions use start_requests
        for request in self.start_requests():
            yield request

    def start_failed(self, failure: Failure) -> None:
        request = getattr(failure, "request", None)
        url = request.meta.get("listener_start", request.url) if request is not None else "?"
        self.start_errors[url] = f"{type(failure.value).__name__}: {failure.getErrorMessage()}"

    def parse_listing(self, response: Response) -> Iterator[Any]:
        if "listener_start" in response.meta:
            self.start_ok.add(response.meta["listener_start"])
        if not isinstance(response, TextResponse):
            self.logger.warning("skipped %s: not a text page (%s)", response.url, _content_type(response))
            return
        if self.selectors.item:
            for index, container in enumerate(select(response, self.selectors.item)):
                yield self._inline_item(response, container, index)
        elif self.selectors.links:
            for href in _hrefs(select(response, self.selectors.links)):
                url = response.urljoin(href)
                if not _is_web(url):
                    continue
                yield response.follow(
                    url, callback=self.parse_item, priority=1, meta={ITEM_KEY: canonical_url(url)}
                )
        else:
            yield from self.parse_item(response)
        if self.selectors.next_page:
            for url in [response.urljoin(h) for h in _hrefs(select(response, self.selectors.next_page))]:
                if _is_web(url):
                    yield response.follow(url, callback=self.parse_listing)
                    break

    def parse_item(self, response: Response) -> Iterator[dict[str, Any]]:
        if not isinstance(response, TextResponse):
            self.logger.warning("skipped %s: not a text page (%s)", response.url, _content_type(response))
            return
        requested = response.meta.get("redirect_urls", [response.url])[0]
        yield {
            "key": response.meta.get(ITEM_KEY) or canonical_url(requested),
            "url": response.url,
            "title": _first(response, self.selectors.title) or _first(response, "title"),
            "text": "\n".join(_strings(select(response, self.selectors.text))),
            "author": _first(response, self.selectors.author),
            "date": _date_value(response, self.selectors.date),
            "language": response.xpath("/html/@lang").get(),
            "text_selector": self.selectors.text,
            "item_page": ITEM_KEY in response.meta,  # a page of its own, skipped when known empty
        }

    def _inline_item(self, response: TextResponse, node: Selector, index: int) -> dict[str, Any]:
        found = _hrefs(select(node, self.selectors.links)) if self.selectors.links else []
        found = found or _hrefs(node.xpath(".//a[@href]"))
        links = [url for url in (urljoin(response.url, href) for href in found) if _is_web(url)]
        title = _first(node, self.selectors.title)
        text = "\n".join(_strings(select(node, self.selectors.text)))
        if links:
            url, key = links[0], canonical_url(links[0])
        else:
            # No permalink: the page plus what the item says identifies it.
            digest = hashlib.sha256(f"{title}\x1f{text}".encode()).hexdigest()[:16]
            url, key = response.url, f"{canonical_url(response.url)}#item-{digest}"
        return {
            "key": key,
            "url": url,
            "title": title,
            "text": text,
            "author": _first(node, self.selectors.author),
            "date": _date_value(node, self.selectors.date),
            "language": response.xpath("/html/@lang").get(),
            "text_selector": self.selectors.text,
            "position": index,
        }


def _is_web(url: str) -> bool:
    """Pages may link anywhere (javascript:, mailto:, file:); only http(s) is followed."""
    return url.lower().startswith(("http://", "https://"))


def _content_type(response: Response) -> str:
    raw = response.headers.get(b"Content-Type") or b"no content type"
    return raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)


def _no_jitter() -> dict[str, Any]:
    """`per_host_delay` means what it says; newer Scrapy renamed the switch that adds jitter."""
    from scrapy.settings import default_settings

    if hasattr(default_settings, "DOWNLOAD_DELAY_JITTER"):
        return {"DOWNLOAD_DELAY_JITTER": 0}
    return {"RANDOMIZE_DOWNLOAD_DELAY": False}


def build_settings(
    source: SpiderSourceConfig,
    limits: Limits,
    *,
    state_address: str | None = None,
    crawl_timeout: float = 600.0,
    log_level: str = "INFO",
    now: float | None = None,
) -> dict[str, Any]:
    """Scrapy settings in code, so no Scrapy project is needed on disk."""
    plugins = "crawlers.spider_plugins"
    return {
        "BOT_NAME": "listener",
        "USER_AGENT": limits.user_agent,
        "ROBOTSTXT_OBEY": limits.obey_robots_txt,
        "DOWNLOAD_DELAY": limits.per_host_delay,
        **_no_jitter(),
        "CONCURRENT_REQUESTS_PER_DOMAIN": limits.per_host_concurrency,
        "CONCURRENT_REQUESTS": max(8, limits.per_host_concurrency),
        "DOWNLOAD_TIMEOUT": limits.timeout,
        "DOWNLOAD_MAXSIZE": limits.max_document_bytes,
        "DOWNLOAD_WARNSIZE": max(1, limits.max_document_bytes // 2),
        # Backstop only: the page budget middleware enforces max_pages exactly.
        # Every host's robots.txt also counts as a response here.
        "CLOSESPIDER_PAGECOUNT": source.max_pages + len(source.start_urls),
        "CLOSESPIDER_TIMEOUT": crawl_timeout,
        "AUTOTHROTTLE_ENABLED": False,
        "COOKIES_ENABLED": False,
        "RETRY_TIMES": 1,
        "TELNETCONSOLE_ENABLED": False,
        "HTTPCACHE_ENABLED": False,
        # A hostile page must not make the crawler read local files or other protocols.
        "DOWNLOAD_HANDLERS": {"file": None, "s3": None, "ftp": None, "data": None},
        "LOG_LEVEL": log_level,
        "DOWNLOADER_MIDDLEWARES": {
            f"{plugins}.SkipSeenMiddleware": 110,
            f"{plugins}.PageBudgetMiddleware": 120,
        },
        "ITEM_PIPELINES": {f"{plugins}.DocumentPipeline": 100, f"{plugins}.JsonLinesWriter": 900},
        "LISTENER_SOURCE_NAME": source.name,
        "LISTENER_STATE_ADDRESS": state_address,
        "LISTENER_MAX_PAGES": source.max_pages,
        "LISTENER_SETTINGS_KEY": settings_key(source),
        "LISTENER_NOW": now,  # the launching process's clock decides which back-offs have ended
    }
