"""The `MentionStore` seam: idempotent upserts, search, time buckets, retention."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from listener.errors import StoreError
from listener.query.ast import Node
from listener.records import ScoredMention, decode

__all__ = [
    "SHOWN_COUNT_LIMIT",
    "Bucket",
    "Hit",
    "MentionStore",
    "SearchRequest",
    "SearchResult",
    "decode_stored",
]

# How far the search page, the search API and `listener search` count before saying "10,000+":
# counting every match of a very common word would cost more than finding the page.
SHOWN_COUNT_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """What an analyst asks; `query` is parsed watch-term syntax (None matches all)."""

    query: Node | None = None
    brand: str | None = None
    sentiment: str | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    order: Literal["newest", "relevance"] = "newest"
    limit: int = 20
    offset: int = 0
    # One hit per story (the best-ranked member, with the story's matching member count);
    # mentions without a story id are stories of their own. `total` then counts stories.
    collapse_story: bool = False
    # Count no further than this (None: count every match). Past it, `total` is the limit and
    # `total_at_least` is set, as search engines show "10,000+": counting the rest of a very
    # common word is what a search would otherwise spend its time on.
    count_limit: int | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    mention: ScoredMention
    snippet: str = field(default="", metadata={"doc": "text with matches wrapped in [[ ]]"})
    score: float = 0.0
    members: int = 1  # matching mentions of this hit's story, when the search collapses by story


@dataclass(frozen=True, slots=True)
class SearchResult:
    total: int
    hits: list[Hit]
    total_at_least: bool = False  # `total` is a lower bound: the request's count_limit was reached


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    counts: dict[str, int]  # sentiment label -> count


class MentionStore(Protocol):
    def upsert(self, mentions: Sequence[ScoredMention]) -> None:
        """Insert or replace by mention id; re-delivery must not duplicate."""
        ...

    def get(self, mention_id: str) -> ScoredMention | None: ...

    def search(self, request: SearchRequest) -> SearchResult: ...

    def histogram(self, request: SearchRequest, bucket_seconds: int) -> list[Bucket]:
        """Counts per time bucket (by publication time) and sentiment label."""
        ...

    def delete_older_than(self, cutoff: datetime) -> int: ...

    def close(self) -> None: ...


def decode_stored(record: str, where: str) -> ScoredMention:
    """A stored record back as a mention; a damaged or foreign record names the store it came from."""
    try:
        mention = decode(record.encode("utf-8"))
    except ValueError as exc:
        raise StoreError(f"a stored record in {where} cannot be read: {exc}") from exc
    if not isinstance(mention, ScoredMention):
        raise StoreError(f"a stored record in {where} is a {mention.kind}, not a scored mention")
    return mention
