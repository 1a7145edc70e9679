"""The product's own stages: match watch terms, classify sentiment, index.

Detect and notify live in `alerts.stages`; the bus and runner in `pipelines`.
Each stage is plain code over records, so the embedded deployment runs them as
threads and the distributed one as separate processes, unchanged.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from listener.brand_settings import BrandsWatcher
from listener.config import BrandConfig
from listener.errors import QuerySyntaxError
from listener.query.matcher import Matcher
from listener.query.parser import parse_watch_query
from listener.records import Document, Mention, Record, ScoredMention, Sentiment
from listener.statedb import StateDB
from models.classifier import Classifier
from models.targeting import aim_at_brand
from pipelines.stage import Output
from pipelines.store import MentionStore

if TYPE_CHECKING:  # datasketch (behind stories) takes a second to import; callers pass the index in
    from listener.stories import StoryIndex
    from models.promotion import PromotedModels

__all__ = ["ClassifyStage", "IndexStage", "LiveMatchStage", "MatchStage", "classify_toward_brands"]

log = logging.getLogger(__name__)


class MatchStage:
    """documents -> mentions: one mention per (document, brand) whose watch terms hit."""

    name = "match"
    input_topic = "documents"
    idle_tick: float | None = None  # reacts to records only

    def after_commit(self) -> None:
        """Its outputs carry everything; nothing to confirm."""

    def __init__(self, brands: Sequence[BrandConfig]) -> None:
        entries = [
            ((brand.name, query), parse_watch_query(query)) for brand in brands for query in brand.queries
        ]
        self._matcher: Matcher[tuple[str, str]] = Matcher(entries)

    def handle(self, records: Sequence[Record]) -> list[Output]:
        outputs: list[Output] = []
        for record in records:
            if not isinstance(record, Document) or isinstance(record, Mention):
                log.warning("match: ignoring a %s on the documents topic", type(record).__name__)
                continue
            hits: dict[str, list[str]] = defaultdict(list)
            for brand, query in self._matcher.match(record):
                hits[brand].append(query)
            for brand, queries in hits.items():
                mention = Mention.from_document(record, brand, tuple(queries))
                outputs.append(Output("mentions", brand, mention))
        return outputs


class ClassifyStage:
    """mentions -> scored mentions, one classifier call per batch so batching pays off."""

    name = "classify"
    input_topic = "mentions"
    idle_tick: float | None = None  # reacts to records only

    def after_commit(self) -> None:
        """Its outputs carry everything; nothing to confirm."""

    def __init__(
        self, classifier: Classifier, *, brand_targeting: bool = True, promoted: PromotedModels | None = None
    ) -> None:
        self._classifier = classifier
        self._brand_targeting = brand_targeting
        # Models `listener train --from-feedback` promoted; looked for between batches, no restart.
        self._promoted = promoted

    def handle(self, records: Sequence[Record]) -> list[Output]:
        mentions = [r for r in records if isinstance(r, Mention) and not isinstance(r, ScoredMention)]
        verdicts: list[Sentiment | None] = [None] * len(mentions)
        for classifier, indices in self._by_classifier(mentions):
            group = [mentions[i] for i in indices]
            scored = classify_toward_brands(
                classifier,
                [_classifiable_text(m) for m in group],
                [m.brand for m in group],
                brand_targeting=self._brand_targeting,
            )
            for i, verdict in zip(indices, scored, strict=True):
                verdicts[i] = verdict
        return [
            Output("mentions.scored", m.brand, ScoredMention.from_mention(m, verdict))
            for m, verdict in zip(mentions, verdicts, strict=True)
            if verdict is not None
        ]

    def _by_classifier(self, mentions: Sequence[Mention]) -> list[tuple[Classifier, list[int]]]:
        """One group per model in use, so each model still gets one batched call."""
        if self._promoted is None:
            return [(self._classifier, list(range(len(mentions))))]
        self._promoted.refresh()
        groups: dict[int, tuple[Classifier, list[int]]] = {}
        for i, mention in enumerate(mentions):
            classifier = self._promoted.for_brand(mention.brand)
            groups.setdefault(id(classifier), (classifier, []))[1].append(i)
        return list(groups.values())


def classify_toward_brands(
    classifier: Classifier,
    texts: Sequence[str],
    brands: Sequence[str | None],
    *,
    brand_targeting: bool = True,
) -> list[Sentiment]:
    """Verdicts as the classify stage gives them; `listener evaluate` scores through this too,
    so a figure measured there is the figure the running stage earns. A None brand is not aimed.
    """
    verdicts = classifier.classify(texts)
    if not brand_targeting:
        return verdicts
    # A post's tone is not its verdict on the brand: "left Acme for Globex, so happy".
    return [
        v if b is None else aim_at_brand(t, b, v) for t, b, v in zip(texts, brands, verdicts, strict=True)
    ]


def _classifiable_text(mention: Mention) -> str:
    # A headline carries much of an article's tone; a post usually has no title.
    if mention.title and not mention.text.startswith(mention.title):
        return f"{mention.title}. {mention.text}"
    return mention.text


class IndexStage:
    """scored mentions -> the search store (idempotent upserts by mention id)."""

    name = "index"
    input_topic = "mentions.scored"
    idle_tick: float | None = None  # reacts to records only

    def after_commit(self) -> None:
        """Its outputs carry everything; nothing to confirm."""

    def __init__(self, store: MentionStore, stories: StoryIndex | None = None) -> None:
        self._store = store
        self._stories = stories

    def handle(self, records: Sequence[Record]) -> list[Output]:
        scored = [r for r in records if isinstance(r, ScoredMention)]
        if scored:
            if self._stories is not None:
                # Stories first, so each mention is stored with its story id (search collapses on it).
                # A batch redelivered after a crash gets the same ids back: the index knows them by id.
                ids = self._stories.add_many(scored)
                scored = [m.model_copy(update={"story_id": s}) for m, s in zip(scored, ids, strict=True)]
            self._store.upsert(scored)
        return []


class LiveMatchStage:
    """`MatchStage` over the effective brands (newest saved queries, brands added in the web app),
    re-read every `check_every_s`."""

    name = "match"
    input_topic = "documents"
    idle_tick: float | None = None  # reacts to records only

    def after_commit(self) -> None:
        """Its outputs carry everything; nothing to confirm."""

    def __init__(
        self, brands: Sequence[BrandConfig], db: StateDB | str | Path, *, check_every_s: float = 5.0
    ) -> None:
        self._watcher = BrandsWatcher(brands, db, check_every_s)
        self._stage = MatchStage(list(brands))

    def _refresh(self) -> None:
        brands = self._watcher.changed()
        if brands is None:
            return
        try:
            self._stage = MatchStage(brands)
        except (QuerySyntaxError, ValueError) as exc:
            log.warning("match: keeping the current watch terms; the saved ones cannot be used: %s", exc)
            return
        log.info("match: watch terms now at version %s", self._watcher.version())

    def handle(self, records: Sequence[Record]) -> list[Output]:
        self._refresh()
        return self._stage.handle(records)
