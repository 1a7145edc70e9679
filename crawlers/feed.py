"""The feed reader: RSS 0.9x/1.0/2.0 and Atom through feedparser, politely.

Contract with the caller (the scheduler):

1. `poll()` fetches the feed (conditional GET with the stored validators) and
   yields the documents not seen before. It marks nothing as seen.
2. After the documents are safely published, the caller calls `commit(docs)`.
   That marks them seen and, if every new item of the poll was committed,
   stores the new ETag/Last-Modified in the same transaction.

If the process dies, or publishing fails, between 1 and 2, nothing is recorded:
the next poll fetches the full feed again (no 304) and the same items come back
with the same deterministic ids, so downstream upserts stay idempotent.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import feedparser
import requests

from crawlers.http import FetchResult, fetch, make_session
from crawlers.state import FetchState, PendingPoll
from crawlers.text import html_to_text, language_tag, site_of, web_url
from listener.config import FeedSourceConfig, Limits
from listener.errors import SourceError
from listener.records import Document, document_id

__all__ = ["FeedSource", "parse_feed"]

log = logging.getLogger(__name__)

Now = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class FeedSource:
    """One configured feed; implements `crawlers.source.Source` plus `commit`."""

    source_type = "feed"

    def __init__(
        self,
        config: FeedSourceConfig,
        limits: Limits,
        state: FetchState,
        *,
        now: Now = _utcnow,
        session: requests.Session | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.poll_interval = float(config.poll_interval)
        self.limits = limits
        self.state = state
        self._now = now
        self._session = session or make_session(limits)
        self._pending: PendingPoll | None = None

    @classmethod
    def from_config(cls, config: FeedSourceConfig, limits: Limits, state: FetchState) -> FeedSource:
        return cls(config, limits, state)

    def poll(self) -> Iterator[Document]:
        """Yield unseen entries; see the module docstring for the commit contract."""
        self._pending = None
        known = self.state.get(self.name)
        result = fetch(
            self._session,
            self.config.url,
            self.limits,
            etag=known.etag,
            last_modified=known.last_modified,
        )
        if result.not_modified:
            log.debug("%s: %s not modified since last poll", self.name, self.config.url)
            return
        documents = parse_feed(result, self.name, fetched=self._now())
        fresh = self.state.unseen(self.name, (doc.id for doc in documents))
        self._pending = PendingPoll(etag=result.etag, last_modified=result.last_modified)
        yield from self._pending.hand_out(documents, fresh)

    def commit(self, documents: Iterable[Document]) -> None:
        """Mark published documents seen; store validators only when nothing is left behind."""
        if self.state.settle(self.name, self._pending, (doc.id for doc in documents)):
            self._pending = None

    def close(self) -> None:
        self._session.close()


# A numeric character reference, `&#55357;` or `&#x110000;`, with or without its `;`.
_CHAR_REF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));?")
_REPLACEMENT_REF = b"&#65533;"


def _valid_char_refs(body: bytes) -> bytes:
    """Rewrite references to no character (a surrogate, past U+10FFFF) as U+FFFD.

    feedparser raises on them (UnicodeEncodeError, ValueError, OverflowError)
    from deep inside its parser, for the whole document, so one hostile entry
    would lose every entry of the feed on every poll.
    """

    def repair(match: re.Match[bytes]) -> bytes:
        digits = match.group(1) or match.group(2)
        if len(digits) > 8:  # more than any code point, whatever the base; int() of it costs
            return _REPLACEMENT_REF
        code = int(digits, 16 if match.group(1) else 10)
        return _REPLACEMENT_REF if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF else match.group(0)

    return _CHAR_REF.sub(repair, body) if b"&#" in body else body


def parse_feed(result: FetchResult, source: str, *, fetched: datetime) -> list[Document]:
    """Parse fetched bytes into documents, in feed order, without duplicates."""
    parsed = feedparser.parse(
        _valid_char_refs(result.body),
        response_headers={
            "content-location": result.url,
            "content-type": result.headers.get("content-type", "application/xml"),
        },
        sanitize_html=True,
        resolve_relative_uris=True,
    )
    entries: list[Any] = list(parsed.get("entries", []))
    _check_usable(parsed, entries, result.url)
    feed_language = language_tag(parsed.get("feed", {}).get("language"))
    documents: list[Document] = []
    ids: set[str] = set()
    for index, entry in enumerate(entries):
        doc = _entry_document(entry, source, result.url, feed_language, fetched)
        if doc is None:
            log.info("%s: entry %d of %s has neither text nor title; skipped", source, index, result.url)
        elif doc.id not in ids:
            ids.add(doc.id)
            documents.append(doc)
    return documents


def _check_usable(parsed: Any, entries: list[Any], url: str) -> None:
    if parsed.get("bozo"):
        reason = parsed.get("bozo_exception")
        if not entries:
            raise SourceError(f"{url}: not a usable RSS or Atom feed: {reason or 'unparseable'}")
        log.warning("%s: malformed feed, kept %d recovered entries (%s)", url, len(entries), reason)
    elif not entries and not parsed.get("version"):
        raise SourceError(f"{url}: does not look like an RSS or Atom feed")


def _entry_document(
    entry: Any, source: str, feed_url: str, feed_language: str | None, fetched: datetime
) -> Document | None:
    title = html_to_text(entry.get("title")) or None
    text = _entry_text(entry) or (title or "")
    if not text:
        return None
    link = web_url(entry.get("link"))
    key = entry.get("id") or link or _content_key(title or "", text)
    published = _struct_to_datetime(
        entry.get("published_parsed") or entry.get("updated_parsed") or entry.get("created_parsed")
    )
    if published is None:
        log.debug("%s: entry %r has no usable date; using the fetch time", source, key)
        published = fetched
    return Document(
        id=document_id(source, key),
        source=source,
        source_type="feed",
        url=link,
        site=site_of(link or feed_url),
        author=html_to_text(entry.get("author")) or None,
        title=title,
        text=text,
        published=published,
        fetched=fetched,
        language=_entry_language(entry) or feed_language,
    )


def _entry_text(entry: Any) -> str:
    candidates = [part.get("value", "") for part in entry.get("content", []) or []]
    candidates.append(entry.get("summary", ""))
    texts = [html_to_text(value) for value in candidates if value]
    return max(texts, key=len, default="")


def _entry_language(entry: Any) -> str | None:
    for detail in (*(entry.get("content", []) or []), entry.get("summary_detail") or {}):
        tag = language_tag(detail.get("language"))
        if tag:
            return tag
    return None


def _content_key(title: str, text: str) -> str:
    return "sha256:" + hashlib.sha256(f"{title}\x1f{text}".encode()).hexdigest()


def _struct_to_datetime(value: time.struct_time | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime(*value[:6], tzinfo=UTC)
    except (TypeError, ValueError, OverflowError):
        return None
