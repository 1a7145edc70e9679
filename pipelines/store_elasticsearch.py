"""The Elasticsearch store: the `MentionStore` seam over an Elasticsearch cluster.

Layout: one index per month of publication, `<prefix>-YYYY.MM`, created from an
index template, all behind the read alias `<prefix>`. Retention then deletes
whole months (cheap, no segment merging) and only trims the one month that
straddles the cutoff with a delete-by-query.

Each document keeps the full record (`record`, not indexed) for `get` and
search hits, plus the fields queries need: `words` (the shared tokeniser's
output, see `es_query`), keyword fields (brand, sentiment, source, site and its
parent domains, author, language and its prefixes), `published` and the numeric
`engagement` counters, and `title`/`text` analysed by the standard analyser for
people browsing the index in Kibana.

Writes are bulk upserts by mention id (idempotent, since ids are deterministic).
Items the cluster rejects for load (429, 503) are retried with backoff; any item
still failing, or failing for another reason, raises `StoreError` naming the
mention ids, so nothing is dropped silently. Writes do not force a refresh: the
index refreshes on its own every second, which suits streaming; `refresh()` is
there for tests and the reindex command.

Snippets come from the same snippet maker as the embedded store, over the same
tokens, so the two engines mark exactly the same words.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from listener.errors import StoreError
from listener.query.tokens import normalise, tokenize
from listener.records import ScoredMention, encode
from pipelines.es_query import WORDS_FIELD, compile_es, lang_keys, site_keys
from pipelines.fts import compile_query, field_key
from pipelines.store import (
    Bucket,
    Hit,
    MentionStore,
    SearchRequest,
    SearchResult,
    TopField,
    decode_stored,
)
from pipelines.store_sqlite import LABELS, _epoch, _snippet, _validate

try:
    from elastic_transport import ApiError, TransportError
    from elasticsearch import Elasticsearch
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the Elasticsearch store needs elasticsearch-py: pip install 'listener[elasticsearch]'"
    ) from exc

if TYPE_CHECKING:
    from listener.config import Config

__all__ = ["ElasticsearchStore", "index_template"]

log = logging.getLogger(__name__)
_RETRYABLE = {429, 502, 503, 504}
_TOP_FIELDS = ("source", "site", "author")


def index_template(prefix: str) -> dict[str, Any]:
    """Settings and mappings every monthly index gets, and the alias it joins."""
    keyword = {"type": "keyword"}
    return {
        "index_patterns": [f"{prefix}-*"],
        "template": {
            "settings": {
                "refresh_interval": "1s",
                "analysis": {"analyzer": {"listener_words": {"type": "custom", "tokenizer": "whitespace"}}},
            },
            "mappings": {
                "dynamic": "strict",
                "properties": {
                    "id": keyword,
                    "story": keyword,  # the story id, or the mention's own id: search collapses on it
                    "brand": keyword,
                    "sentiment": keyword,
                    "source": keyword,
                    "site": keyword,
                    "site_keys": keyword,
                    "author": keyword,
                    "language": keyword,
                    "lang_keys": keyword,
                    "published": {"type": "date"},
                    WORDS_FIELD: {"type": "text", "analyzer": "listener_words", "position_increment_gap": 1},
                    "title": {"type": "text"},
                    "text": {"type": "text"},
                    "engagement": {"type": "object", "dynamic": True},
                    "record": {"type": "keyword", "index": False, "doc_values": False},
                },
            },
            "aliases": {prefix: {}},
        },
    }


def _iso(moment: datetime) -> str:
    return datetime.fromtimestamp(_epoch(moment), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _document(mention: ScoredMention) -> dict[str, Any]:
    title = tokenize(mention.title or "")
    words = ([" ".join(title)] if title else []) + [" ".join(tokenize(mention.text))]
    return {
        "id": mention.id,
        "story": mention.story_id or mention.id,
        "brand": normalise(mention.brand),
        "sentiment": mention.sentiment.label.value,
        "source": field_key("source", mention.source),
        "site": field_key("site", mention.site or ""),
        "site_keys": site_keys(mention.site),
        "author": field_key("author", mention.author or ""),
        "language": field_key("lang", mention.language or ""),
        "lang_keys": lang_keys(mention.language),
        "published": _iso(mention.published),
        WORDS_FIELD: words,
        "title": mention.title or "",
        "text": mention.text,
        "engagement": dict(mention.engagement),
        "record": encode(mention).decode("utf-8"),
    }


class ElasticsearchStore:
    """The `MentionStore` seam over Elasticsearch; `client` is an `elasticsearch.Elasticsearch`."""

    def __init__(
        self, client: Elasticsearch, *, prefix: str = "listener-mentions", max_retries: int = 5
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.alias = prefix
        self.max_retries = max_retries
        self._indices: set[str] = set()
        self._call(
            "put index template",
            lambda: client.indices.put_index_template(name=prefix, **index_template(prefix)),
        )

    @classmethod
    def from_config(cls, config: Config) -> ElasticsearchStore:
        es = config.store.elasticsearch
        options: dict[str, Any] = {"verify_certs": es.verify_certs}
        if es.api_key is not None:
            options["api_key"] = es.api_key.get_secret_value()
        if es.ca_certs is not None:
            options["ca_certs"] = str(es.ca_certs)
        client = Elasticsearch(es.url, **options)
        return cls(client, prefix=es.index_prefix)

    def __enter__(self) -> ElasticsearchStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, request: Any) -> Any:
        try:
            return request()
        except (ApiError, TransportError) as exc:
            raise StoreError(f"Elasticsearch {what} failed: {exc}") from exc

    def index_for(self, published: datetime) -> str:
        moment = datetime.fromtimestamp(_epoch(published), UTC)
        return f"{self.prefix}-{moment:%Y.%m}"

    def _ensure_index(self, name: str) -> None:
        if name in self._indices:
            return
        if not self._call("index check", lambda: self.client.indices.exists(index=name)):
            try:
                self.client.indices.create(index=name, aliases={self.alias: {}})
            except ApiError as exc:
                if "already_exists" not in str(exc):
                    raise StoreError(f"Elasticsearch cannot create index {name}: {exc}") from exc
        else:
            # A month created before mentions carried a story id: its strict mapping needs the field.
            story = {"story": {"type": "keyword"}}
            self._call(
                "mapping update", lambda: self.client.indices.put_mapping(index=name, properties=story)
            )
        self._indices.add(name)

    # -- writes ------------------------------------------------------------------------

    def upsert(self, mentions: Sequence[ScoredMention]) -> None:
        """Index every mention by id; retry rejected items, raise for any that cannot be stored."""
        latest = {m.id: m for m in mentions}  # one batch may carry a mention twice: the last wins
        pending = list(latest.values())
        for name in {self.index_for(m.published) for m in pending}:
            self._ensure_index(name)
        for attempt in range(self.max_retries + 1):
            operations: list[dict[str, Any]] = []
            for m in pending:
                operations += [{"index": {"_index": self.index_for(m.published), "_id": m.id}}, _document(m)]
            result = self._call("bulk upsert", lambda ops=operations: self.client.bulk(operations=ops))
            retry, failed = self._failures(pending, result)
            if failed:
                raise StoreError(f"Elasticsearch refused {len(failed)} mention(s): {'; '.join(failed[:5])}")
            if not retry:
                return
            pending = retry
            log.warning("Elasticsearch pushed back on %d mention(s); retry %d", len(retry), attempt + 1)
            time.sleep(min(10.0, 0.2 * 2**attempt))
        raise StoreError(
            f"Elasticsearch kept rejecting {len(pending)} mention(s): {[m.id for m in pending][:5]}"
        )

    @staticmethod
    def _failures(pending: list[ScoredMention], result: Any) -> tuple[list[ScoredMention], list[str]]:
        if not result.get("errors"):
            return [], []
        retry: list[ScoredMention] = []
        failed: list[str] = []
        for mention, item in zip(pending, result["items"], strict=True):
            outcome = next(iter(item.values()))
            if outcome.get("status", 200) < 300:
                continue
            if outcome["status"] in _RETRYABLE:
                retry.append(mention)
            else:
                failed.append(f"{mention.id}: {outcome.get('error')}")
        return retry, failed

    def refresh(self) -> None:
        """Make every write so far visible to searches (the index does this each second anyway)."""
        self._call("refresh", lambda: self.client.indices.refresh(index=self.alias, ignore_unavailable=True))

    def delete_older_than(self, cutoff: datetime) -> int:
        """Drop whole months before the cutoff's month, then trim that month by query."""
        limit = self.index_for(cutoff)
        aliases = self._call(
            "alias lookup", lambda: self.client.indices.get_alias(name=self.alias, ignore_unavailable=True)
        )
        deleted = 0
        for name in sorted(aliases):
            if name < limit and name.startswith(f"{self.prefix}-"):
                deleted += int(self._call("count", lambda n=name: self.client.count(index=n))["count"])
                self._call("index delete", lambda n=name: self.client.indices.delete(index=n))
                self._indices.discard(name)
        if limit in aliases:
            query = {"range": {"published": {"lt": _iso(cutoff)}}}
            result = self._call(
                "delete by query",
                lambda: self.client.delete_by_query(
                    index=limit, query=query, refresh=True, conflicts="proceed"
                ),
            )
            deleted += int(result.get("deleted", 0))
        return deleted

    def close(self) -> None:
        self.client.close()

    # -- reads -------------------------------------------------------------------------

    def get(self, mention_id: str) -> ScoredMention | None:
        result = self._search(query={"ids": {"values": [mention_id]}}, size=1)
        hits = result["hits"]["hits"]
        return self._decode(hits[0]["_source"]["record"]) if hits else None

    def _search(self, **body: Any) -> Any:
        return self._call(
            "search",
            lambda: self.client.search(
                index=self.alias, ignore_unavailable=True, allow_no_indices=True, **body
            ),
        )

    def _query(self, request: SearchRequest) -> dict[str, Any]:
        _validate(request)
        filters: list[dict[str, Any]] = []
        for name, value in (
            ("brand", None if request.brand is None else normalise(request.brand)),
            ("sentiment", request.sentiment),
            ("source", None if request.source is None else field_key("source", request.source)),
        ):
            if value is not None:
                filters.append({"term": {name: value}})
        window = {}
        if request.since is not None:
            window["gte"] = _iso(request.since)
        if request.until is not None:
            window["lt"] = _iso(request.until)
        if window:
            filters.append({"range": {"published": window}})
        return {"bool": {"must": [compile_es(request.query)], "filter": filters}}

    def search(self, request: SearchRequest) -> SearchResult:
        query = self._query(request)
        newest = [{"published": "desc"}, {"id": "asc"}]
        sort = newest if request.order == "newest" else [{"_score": "desc"}, *newest]
        collapse: dict[str, Any] = {}
        if request.collapse_story:
            # One hit per story; inner_hits counts its matching members, the aggregation counts stories.
            collapse = {
                "collapse": {"field": "story", "inner_hits": {"name": "members", "size": 0}},
                "aggs": {"stories": {"cardinality": {"field": "story", "precision_threshold": 40000}}},
            }
        result = self._search(
            query=query,
            sort=sort,
            from_=request.offset,
            size=request.limit,
            track_total_hits=True if request.count_limit is None else request.count_limit,
            track_scores=True,
            **collapse,
        )
        highlights = compile_query(request.query)
        hits = []
        for raw in result["hits"]["hits"]:
            mention = self._decode(raw["_source"]["record"])
            members = raw.get("inner_hits", {}).get("members", {}).get("hits", {}).get("total", {})
            score = float(raw.get("_score") or 0.0)
            hits.append(Hit(mention, _snippet(mention, highlights), score, int(members.get("value", 1))))
        total = int(result["hits"]["total"]["value"])
        at_least = result["hits"]["total"].get("relation") == "gte"
        if request.collapse_story:
            total, at_least = int(result["aggregations"]["stories"]["value"]), False
        if request.count_limit is not None and total > request.count_limit:
            total, at_least = request.count_limit, True
        return SearchResult(total=total, hits=hits, total_at_least=at_least)

    def histogram(self, request: SearchRequest, bucket_seconds: int) -> list[Bucket]:
        """Non-empty buckets aligned to the epoch, each counting every sentiment label."""
        if isinstance(bucket_seconds, bool) or not isinstance(bucket_seconds, int) or bucket_seconds <= 0:
            raise ValueError(f"bucket_seconds must be a positive integer, not {bucket_seconds!r}")
        aggs = {
            "t": {
                "date_histogram": {
                    "field": "published",
                    "fixed_interval": f"{bucket_seconds}s",
                    "min_doc_count": 1,
                },
                "aggs": {"s": {"terms": {"field": "sentiment", "size": len(LABELS)}}},
            }
        }
        result = self._search(query=self._query(request), size=0, aggs=aggs)
        buckets = []
        for raw in result.get("aggregations", {}).get("t", {}).get("buckets", []):
            counts = dict.fromkeys(LABELS, 0)
            counts.update({b["key"]: int(b["doc_count"]) for b in raw["s"]["buckets"]})
            buckets.append(Bucket(datetime.fromtimestamp(raw["key"] / 1000, UTC), counts))
        return buckets

    def counts(self, request: SearchRequest) -> dict[str, int]:
        aggs = {"s": {"terms": {"field": "sentiment", "size": len(LABELS)}}}
        result = self._search(query=self._query(request), size=0, aggs=aggs)
        counts = dict.fromkeys(LABELS, 0)
        counts.update({b["key"]: int(b["doc_count"]) for b in result["aggregations"]["s"]["buckets"]})
        return counts

    def top_values(self, request: SearchRequest, field: TopField, limit: int = 10) -> list[tuple[str, int]]:
        """The `limit` most frequent non-empty values of `field` (source, site or author) among the
        matching mentions: a terms aggregation on the keyword field, which holds the same normal
        form as the embedded store's columns, ties broken by value as there."""
        if field not in _TOP_FIELDS:
            raise ValueError(f"field must be one of {', '.join(_TOP_FIELDS)}, not {field!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer, not {limit!r}")
        # One more than asked for, since the empty value (no author, no site) is counted too.
        terms = {
            "field": field,
            "size": limit + 1,
            "shard_size": max(100, 10 * limit),
            "order": [{"_count": "desc"}, {"_key": "asc"}],
        }
        result = self._search(query=self._query(request), size=0, aggs={"top": {"terms": terms}})
        rows = [
            (str(b["key"]), int(b["doc_count"]))
            for b in result.get("aggregations", {}).get("top", {}).get("buckets", [])
            if b["key"] != ""
        ]
        return rows[:limit]

    def scan(self, batch: int = 500) -> Iterator[list[ScoredMention]]:
        """Every stored mention, in batches by id, for `listener reindex`.

        `search_after` on the id rather than `from`: deep `from` paging stops at the
        cluster's result window (10 000 by default), a store does not.
        """
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {"query": {"match_all": {}}, "sort": [{"id": "asc"}], "size": batch}
            if after is not None:
                body["search_after"] = after
            hits = self._search(**body)["hits"]["hits"]
            if not hits:
                return
            yield [self._decode(raw["_source"]["record"]) for raw in hits]
            after = list(hits[-1]["sort"])

    def _decode(self, record: str) -> ScoredMention:
        return decode_stored(record, str(self.alias))


if TYPE_CHECKING:

    def _conforms(store: ElasticsearchStore) -> MentionStore:
        return store
