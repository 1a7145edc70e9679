"""Serve the demo world over real HTTP on loopback.

The demo's point is that nothing is faked downstream: the feed reader and the
Scrapy spider fetch from this server exactly as they would from the web, with
conditional GET, robots.txt and pagination. What the server shows is gated by
its clock, so the crisis appears post by post as its publication times come;
tests inject a clock they can move instead of waiting.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from email.message import Message
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from listener.demo import pages
from listener.demo.world import World

__all__ = ["DemoServer", "Response"]

log = logging.getLogger(__name__)

_FEED_TYPES = {
    "social": "application/rss+xml; charset=utf-8",
    "news": "application/atom+xml; charset=utf-8",
    "forum": "application/rdf+xml; charset=utf-8",
}
_HTML = "text/html; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Response:
    """What one request gets; `last_modified` (epoch seconds) makes it conditional-GET capable."""

    status: int
    body: bytes
    content_type: str = _TEXT
    last_modified: int | None = None

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:24] + '"'


def _text(status: int, message: str) -> Response:
    return Response(status, (message + "\n").encode("utf-8"))


class DemoServer:
    """A threaded stdlib HTTP server for one `World`, bound to 127.0.0.1.

    `clock` returns epoch seconds; items whose publication time is later than
    `clock()` do not exist yet, in feeds, listings or item pages alike.
    """

    def __init__(
        self,
        world: World,
        clock: Callable[[], float] = time.time,
        *,
        port: int = 0,
        feed_limit: int = 500,
        reviews_per_page: int = pages.REVIEWS_PER_PAGE,
    ) -> None:
        self.world = world
        self.clock = clock
        self.feed_limit = feed_limit
        self.reviews_per_page = reviews_per_page
        self.hits: Counter[str] = Counter()
        self._port = port
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> str:
        """Bind and serve in a daemon thread; returns the base URL, e.g. `http://127.0.0.1:PORT`."""
        if self._httpd is not None:
            return self.url
        httpd = ThreadingHTTPServer(("127.0.0.1", self._port), _handler_for(self))
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="demo-server", daemon=True
        )
        self._thread.start()
        log.info("demo world served at %s", self.url)
        return self.url

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the demo server is not running; call start() first")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> DemoServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- routing ------------------------------------------------------------------------

    def respond(self, target: str) -> Response:
        """The response for a request target (path and query), at the clock's current time."""
        parts = urlsplit(target)
        path, now = parts.path, self.clock()
        with self._lock:
            self.hits[path] += 1
        if path == "/robots.txt":
            return Response(200, pages.ROBOTS_TXT.encode("utf-8"))
        if path == "/":
            return Response(200, pages.index_page(self.url), _HTML)
        if path.startswith("/admin"):
            return _text(403, "staff only")
        if path in pages.FEEDS:
            return self._feed(path, now)
        if path in ("/reviews", "/reviews/"):
            return self._listing(parse_qs(parts.query).get("page", ["1"])[-1], now)
        return self._item(path, now)

    def _feed(self, path: str, now: float) -> Response:
        channel = pages.FEEDS[path]
        items = self.world.visible(channel, now, self.feed_limit)
        render = {"social": pages.rss2_feed, "news": pages.atom_feed, "forum": pages.rdf_feed}[channel]
        body = render(self.world, items, self.url)
        newest = items[0].published if items else self.world.t0
        return Response(200, body, _FEED_TYPES[channel], newest)

    def _listing(self, raw_page: str, now: float) -> Response:
        if not (raw_page.isascii() and raw_page.isdigit()) or int(raw_page) < 1:
            return _text(400, f"page must be a whole number from 1, not {raw_page[:40]!r}")
        page = int(raw_page)
        reviews = self.world.visible("reviews", now)
        size = self.reviews_per_page
        pages_total = max(1, -(-len(reviews) // size))
        if page > pages_total:
            return _text(404, f"there are only {pages_total} pages of reviews")
        chunk = reviews[(page - 1) * size : page * size]
        newest = reviews[0].published if reviews else self.world.t0
        return Response(200, pages.review_listing(chunk, page, pages_total), _HTML, newest)

    def _item(self, path: str, now: float) -> Response:
        channel, _, slug = path.strip("/").partition("/")
        item = self.world.item(channel, slug) if slug and "/" not in slug else None
        if item is None or item.published > now:
            return _text(404, "no such page")
        return Response(200, pages.item_page(item), _HTML, item.published)


def _not_modified(headers: Message, response: Response) -> bool:
    """RFC 9110: If-None-Match wins over If-Modified-Since when both are sent."""
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        tags = [tag.strip().removeprefix("W/") for tag in str(if_none_match).split(",")]
        return "*" in tags or response.etag in tags
    if_modified_since = headers.get("If-Modified-Since")
    if if_modified_since is None or response.last_modified is None:
        return False
    try:
        since = parsedate_to_datetime(str(if_modified_since))
    except (TypeError, ValueError):
        return False
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return response.last_modified <= since.timestamp()


def _handler_for(server: DemoServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "ListenerDemo/1.0"

        def do_GET(self) -> None:
            self._answer(send_body=True)

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def _answer(self, send_body: bool) -> None:
            response = server.respond(self.path)
            conditional = response.status == 200 and response.last_modified is not None
            if conditional and _not_modified(self.headers, response):
                self.send_response(304)
                self._validators(response)
                self.end_headers()
                return
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            if conditional:
                self._validators(response)
            self.end_headers()
            if send_body:
                self.wfile.write(response.body)

        def _validators(self, response: Response) -> None:
            self.send_header("ETag", response.etag)
            self.send_header("Last-Modified", formatdate(response.last_modified, usegmt=True))
            self.send_header("Cache-Control", "no-cache")

        def log_message(self, format: str, *args: object) -> None:
            log.debug("%s " + format, self.address_string(), *args)

    return Handler
