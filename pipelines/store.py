"""The `MentionStore` seam: idempotent upserts, search, time buckets, retention."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
    "TopField",
    "decode_stored",
]

# How far the search page, the search API and `listener search` count before saying "10,000+":
# counting every match of a very common word would cost more than finding the page.
SHOWN_COUNT_LIMIT = 10_000

# The fields the dashboard's "who is talking" tables rank, in the matcher's normal form.
TopField = Literal["source", "site", "author"]


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

    def top_values(self, request: SearchRequest, field: TopField, limit: int = 10) -> list[tuple[str, int]]:
        """The `limit` most frequent non-empty values of `field` among the matching mentions,
        most frequent first, ties by value (the dashboard's "who is talking")."""
        ...

    def delete_older_than(self, cutoff: datetime) -> int: ...

    def scan(self, batch: int = 500) -> Iterator[list[ScoredMention]]:
        """Every stored mention once, in batches of at most `batch`, for `listener reindex`."""
        ...

    def refresh(self) -> None:
        """Make every write so far visible to searches now (a no-op where writes are visible at
        once); the reindex command calls it so a copied index answers at once."""
        ...

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
