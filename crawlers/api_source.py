"""What every API source shares: cursor memory, seen items and the commit contract.

A subclass implements `fetch(cursor)`: call the API, page as far as it needs,
and return the documents with the cursor to resume from next time. This class
then does what the feed reader does:

1. `poll()` yields the documents not seen before and records nothing.
2. After they are published, the scheduler calls `commit(docs)`: the ids are
   marked seen and, if every new item was committed, the new cursor is stored
   in the same transaction.

A failure anywhere in a poll (a 429 on page three, a truncated page) raises
`SourceError` before anything is yielded: the cursor does not move, and the
next poll asks for the same span again. Items it had already published come
back with the same ids and are dropped by the seen-item memory, so a source
that recovers neither loses nor repeats anything.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from crawlers.api_http import ApiClient
from crawlers.state import FetchState, PendingPoll
from crawlers.text import html_to_text, site_of, web_url
from listener.config import Limits
from listener.errors import SourceError
from listener.records import Document, document_id

__all__ = ["ApiSource", "Batch", "as_list", "parse_time", "plain_text"]

log = logging.getLogger(__name__)

Now = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Batch:
    documents: list[Document]
    cursor: str | None  # None: keep the stored cursor


class ApiSource(ABC):
    """Base of the API sources; implements `crawlers.source.Source` plus `commit`."""

    source_type: ClassVar[str] = "api"

    def __init__(
        self,
        name: str,
        poll_interval: float,
        limits: Limits,
        state: FetchState,
        *,
        client: ApiClient | None = None,
        now: Now = _utcnow,
    ) -> None:
        self.name = name
        self.poll_interval = float(poll_interval)
        self.limits = limits
        self.state = state
        self.client = client or ApiClient(limits)
        self._now = now
        self._pending: PendingPoll | None = None

    @abstractmethod
    def fetch(self, cursor: str | None) -> Batch:
        """Call the API from `cursor` (None: first poll) and return what it had."""

    def poll(self) -> Iterator[Document]:
        self._pending = None
        batch = self.fetch(self.state.get_cursor(self.name))
        unique: dict[str, Document] = {}
        for doc in batch.documents:
            unique.setdefault(doc.id, doc)
        fresh = self.state.unseen(self.name, unique)
        self._pending = PendingPoll(cursor=batch.cursor)
        yield from self._pending.hand_out(unique.values(), fresh)

    def commit(self, documents: Iterable[Document]) -> None:
        """Mark published documents seen; move the cursor only when nothing is left behind."""
        if self.state.settle(self.name, self._pending, (doc.id for doc in documents)):
            self._pending = None

    def close(self) -> None:
        self.client.close()

    # --- helpers for subclasses -------------------------------------------------------

    def convert_all(self, items: Iterable[Any], convert: Callable[[Any], Document | None]) -> list[Document]:
        """Convert items one by one; an item the API changed under us is logged and skipped."""
        out: list[Document] = []
        for index, item in enumerate(items):
            try:
                doc = convert(item)
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
                why = f"{type(exc).__name__}: {exc}"
                log.warning("%s: item %d skipped, unexpected shape: %s", self.name, index, why)
                continue
            if doc is not None:
                out.append(doc)
        return out

    def document(
        self,
        key: str,
        *,
        text: str,
        published: datetime | None,
        url: str | None = None,
        author: str | None = None,
        title: str | None = None,
        language: str | None = None,
        engagement: dict[str, Any] | None = None,
    ) -> Document | None:
        text = text.strip() or (title or "").strip()
        if not text:
            return None
        link = web_url(url)
        fetched = self._now()
        return Document(
            id=document_id(self.name, key),
            source=self.name,
            source_type=self.source_type,
            url=link,
            site=site_of(link) if link else None,
            author=author or None,
            title=title or None,
            text=text,
            published=published or fetched,
            fetched=fetched,
            language=language or None,
            engagement={k: int(v) for k, v in (engagement or {}).items() if _is_count(v)},
        )


def as_list(data: Any, *path: str, url: str = "") -> list[Any]:
    """`data[path...]` as a list, or a `SourceError` saying the API changed shape."""
    node = data
    for part in path:
        if not isinstance(node, dict) or part not in node:
            raise SourceError(f"{url}: response has no {'.'.join(path)!r}; has the API changed?")
        node = node[part]
    if node is None:
        return []
    if isinstance(node, dict):
        return [node]  # some feeds collapse a one-item list into the item
    if not isinstance(node, list):
        raise SourceError(f"{url}: {'.'.join(path)!r} is {type(node).__name__}, not a list")
    return node


def parse_time(value: Any) -> datetime | None:
    """ISO 8601 (with `Z`), or epoch seconds; None when absent, unreadable or out of range.

    None gives the item its fetch time (see `ApiSource.document`) rather than
    losing it, or failing the poll that carries it.
    """
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError):  # 1e20, inf, nan: no time at all
            log.warning("timestamp %r is out of range; the item gets its fetch time", value)
            return None
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def plain_text(value: Any) -> str:
    return html_to_text(value) if isinstance(value, str) and value else ""


def _is_count(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and value.lstrip("-").isdigit()
