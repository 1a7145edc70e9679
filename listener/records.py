"""The records that flow between stages, and their wire format on the bus.

One `Mention` type runs through the whole flow: a `ScoredMention` is a
`Mention` that the classifier has labelled, so every later stage (index,
detect, notify) reads the same fields. Ids are deterministic so that
at-least-once delivery turns into idempotent upserts downstream.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "SCHEMA_VERSION",
    "Alert",
    "AlertStory",
    "Document",
    "Mention",
    "Record",
    "ScoredMention",
    "Sentiment",
    "SentimentLabel",
    "WindowPoint",
    "decode",
    "document_id",
    "encode",
    "mention_id",
]

SCHEMA_VERSION = 1


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))  # same bytes for any encodable key
        h.update(b"\x1f")
    return h.hexdigest()[:32]


def document_id(source: str, item_key: str) -> str:
    """Same source item, same id: `item_key` is the feed guid, or the page URL."""
    return _digest("doc", source, item_key)


def mention_id(doc_id: str, brand: str) -> str:
    """A document can mention several brands; each pair is its own mention."""
    return _digest("mention", doc_id, brand.casefold())


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _encodable(value: str | None) -> str | None:
    """Lone surrogates (`"\\ud83d"` in an API's JSON) as U+FFFD, so the record can be published.

    A pair split into two code points is joined back into its character.
    """
    if value is None:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: ClassVar[str] = "record"


class Document(_Record):
    """What a source fetched, before any brand is attached."""

    kind: ClassVar[str] = "document"

    id: str
    source: str = Field(description="the configured source's name, e.g. 'acme-news'")
    source_type: str = Field(description="feed, spider, ...")
    url: str | None = None
    site: str | None = Field(default=None, description="host name of the url, lower-case")
    author: str | None = None
    title: str | None = None
    text: str
    published: datetime
    fetched: datetime
    language: str | None = None
    engagement: dict[str, int] = Field(default_factory=dict)

    _normalise_published = field_validator("published", "fetched")(_utc)
    # Every source builds its items as Documents, so text is made encodable here, once for all.
    _encodable_text = field_validator(
        "id", "source", "source_type", "url", "site", "author", "title", "text", "language"
    )(_encodable)


class Mention(Document):
    """A document matched to one brand by that brand's watch terms."""

    kind: ClassVar[str] = "mention"

    document_id: str
    brand: str
    matched_queries: tuple[str, ...] = ()
    # Set by the index stage when it files the mention into a story (listener.stories).
    story_id: str | None = None

    @classmethod
    def from_document(cls, doc: Document, brand: str, matched: tuple[str, ...]) -> Mention:
        fields = doc.model_dump()
        fields["id"] = mention_id(doc.id, brand)
        return cls(**fields, document_id=doc.id, brand=brand, matched_queries=matched)


class SentimentLabel(StrEnum):
    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"
    UNSCORED = "unscored"


class Sentiment(BaseModel):
    """The classifier's verdict, with enough provenance to re-score later."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: SentimentLabel
    negative: float = 0.0
    neutral: float = 0.0
    positive: float = 0.0
    model_id: str
    model_version: str
    language: str | None = None  # ISO 639-1 as detected; None when undetermined or not detected


class ScoredMention(Mention):
    kind: ClassVar[str] = "scored_mention"

    sentiment: Sentiment

    @classmethod
    def from_mention(cls, mention: Mention, sentiment: Sentiment) -> ScoredMention:
        return cls(**mention.model_dump(), sentiment=sentiment)


class WindowPoint(BaseModel):
    """One window of the alert's chart: its negatives against the expected band."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    end: datetime
    observed: int
    expected: float
    threshold: float = Field(description="the count at which such a window would fire")


class AlertStory(BaseModel):
    """One story among a spike's negatives: a syndicated article is one story with many members."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str = Field(description="the representative (first) member's text")
    url: str | None = None
    members: int = Field(ge=1, description="negative mentions of this story in the window")
    sites: tuple[tuple[str, int], ...] = Field(default=(), description="sites (or sources), busiest first")


class Alert(_Record):
    """A negative spike for one brand and rule, with the evidence a responder needs."""

    kind: ClassVar[str] = "alert"

    id: str
    brand: str
    rule: str = "negative-spike"
    status: Literal["firing", "update", "resolved"] = "firing"
    revision: int = Field(default=0, ge=0, description="numbers the updates of one open alert")
    window_start: datetime
    window_end: datetime
    observed: int = Field(description="negative mentions in the window")
    expected: float = Field(description="baseline negative mentions for such a window")
    total: int = Field(description="all mentions of the brand in the window")
    negative_share: float
    samples: tuple[ScoredMention, ...] = ()
    channel: str | None = None
    created: datetime
    # Evidence (added later; defaults keep older envelopes decodable).
    mix: dict[str, int] = Field(default_factory=dict, description="mentions per label in the window")
    top_terms: tuple[tuple[str, int], ...] = Field(default=(), description="over-represented negative words")
    top_sources: tuple[tuple[str, int], ...] = Field(default=(), description="sites/sources of the negatives")
    history: tuple[WindowPoint, ...] = Field(default=(), description="recent windows, oldest first")
    top_stories: tuple[AlertStory, ...] = Field(default=(), description="biggest stories among the negatives")
    story_count: int = Field(default=0, ge=0, description="distinct stories among the window's negatives")
    trigger: Literal["spike", "climb"] = Field(
        default="spike", description="a burst of minutes, or a share that climbed over hours"
    )
    usual_share: float | None = Field(default=None, description="the brand's usual negative share")

    _normalise_times = field_validator("window_start", "window_end", "created")(_utc)

    @staticmethod
    def make_id(brand: str, rule: str, window_start: datetime) -> str:
        return _digest("alert", brand.casefold(), rule, _utc(window_start).isoformat())


Record = Document | Mention | ScoredMention | Alert

_KINDS: dict[str, type[_Record]] = {cls.kind: cls for cls in (Document, Mention, ScoredMention, Alert)}


def encode(record: _Record) -> bytes:
    """A versioned JSON envelope, so consumers can refuse what they do not understand."""
    envelope: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "kind": record.kind,
        "data": record.model_dump(mode="json"),
    }
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode(payload: bytes) -> Record:
    envelope = json.loads(payload)
    if envelope.get("v") != SCHEMA_VERSION:
        raise ValueError(f"unsupported record schema version {envelope.get('v')!r}")
    cls = _KINDS.get(envelope.get("kind", ""))
    if cls is None:
        raise ValueError(f"unknown record kind {envelope.get('kind')!r}")
    record = cls.model_validate(envelope["data"])
    assert isinstance(record, Document | Alert)
    return record
