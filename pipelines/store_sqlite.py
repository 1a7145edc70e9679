"""The embedded `MentionStore`: one SQLite file in WAL mode with an FTS5 index.

The monitor's index stage writes while `listener search` and the web app read,
possibly from other processes, so the file is in WAL mode (readers never block
the writer), every connection waits on a busy lock instead of failing, and each
thread gets its own connection. Reads that need two statements (count, page)
run in one read transaction so they see one snapshot.

The FTS table holds the shared tokeniser's output (NFKC, case-folded words
joined by spaces) rather than the raw text, so FTS5's `unicode61` tokeniser
sees exactly the words the stream matcher sees.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from listener.errors import StoreError
from listener.query.tokens import normalise, tokenize
from listener.records import ScoredMention, SentimentLabel, decode, encode
from pipelines.fts import FTS_TABLE, NEAR_FUNCTION, Compiled, compile_query, field_key, near_matches
from pipelines.snippets import lead, make_snippet
from pipelines.store import Bucket, Hit, MentionStore, SearchRequest, SearchResult

if TYPE_CHECKING:
    from listener.config import Config

__all__ = ["SCHEMA_VERSION", "EmbeddedStore"]

SCHEMA_VERSION = 1
LABELS: tuple[str, ...] = tuple(label.value for label in SentimentLabel)
_BM25 = f"bm25({FTS_TABLE}, 2.0, 1.0)"  # a match in the title counts double
_STORY_KEY = "coalesce(json_extract(m.record, '$.data.story_id'), m.id)"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS mentions (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    brand TEXT NOT NULL,
    sentiment TEXT NOT NULL,
    source_key TEXT NOT NULL,
    site TEXT NOT NULL,
    author_key TEXT NOT NULL,
    lang TEXT NOT NULL,
    published INTEGER NOT NULL,
    url TEXT,
    title TEXT,
    digest BLOB NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS mentions_brand_published ON mentions(brand, published);
CREATE INDEX IF NOT EXISTS mentions_published ON mentions(published);
CREATE INDEX IF NOT EXISTS mentions_sentiment ON mentions(sentiment, published);
CREATE INDEX IF NOT EXISTS mentions_source ON mentions(source_key, published);
CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5(
    title, body, tokenize = 'unicode61 remove_diacritics 0'
);
"""

_COLUMNS = "id, brand, sentiment, source_key, site, author_key, lang, published, url, title, digest, record"
_INSERT = f"INSERT INTO mentions ({_COLUMNS}) VALUES ({', '.join('?' * len(_COLUMNS.split(', ')))})"
_UPDATE = f"UPDATE mentions SET ({_COLUMNS}) = ({', '.join('?' * len(_COLUMNS.split(', ')))}) WHERE seq = ?"


def _epoch(moment: datetime) -> int:
    """UTC epoch seconds; a naive datetime is taken to be UTC, as records do."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return math.floor(moment.timestamp())


def _indexed(text: str | None) -> str:
    return " ".join(tokenize(text or ""))


def _digest(mention: ScoredMention) -> bytes:
    """What the FTS row depends on, so a re-delivered mention skips re-indexing."""
    h = hashlib.blake2b(digest_size=16)
    for part in (mention.title or "", "\x1f", mention.text):
        h.update(part.encode("utf-8", "surrogatepass"))
    return h.digest()


def _row(mention: ScoredMention) -> tuple[object, ...]:
    return (
        mention.id,
        normalise(mention.brand),
        mention.sentiment.label.value,
        field_key("source", mention.source),
        field_key("site", mention.site or ""),
        field_key("author", mention.author or ""),
        field_key("lang", mention.language or ""),
        _epoch(mention.published),
        mention.url,
        mention.title,
        _digest(mention),
        encode(mention).decode("utf-8"),
    )


def _validate(request: SearchRequest) -> None:
    if request.order not in ("newest", "relevance"):
        raise ValueError(f"order must be 'newest' or 'relevance', not {request.order!r}")
    for name in ("limit", "offset"):
        value = getattr(request, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
    if request.sentiment is not None and request.sentiment not in LABELS:
        raise ValueError(f"sentiment must be one of {', '.join(LABELS)}, not {request.sentiment!r}")
    if (
        request.since is not None
        and request.until is not None
        and _epoch(request.since) > _epoch(request.until)
    ):
        raise ValueError("since is after until")


def _filters(request: SearchRequest) -> tuple[list[str], list[object]]:
    """The request's own filters; `since` is inclusive and `until` exclusive."""
    clauses: list[str] = []
    params: list[object] = []
    for sql, value in (
        ("m.brand = ?", None if request.brand is None else normalise(request.brand)),
        ("m.sentiment = ?", request.sentiment),
        ("m.source_key = ?", None if request.source is None else field_key("source", request.source)),
        ("m.published >= ?", None if request.since is None else _epoch(request.since)),
        ("m.published < ?", None if request.until is None else _epoch(request.until)),
    ):
        if value is not None:
            clauses.append(sql)
            params.append(value)
    return clauses, params


class _Plan:
    """The FROM and WHERE shared by search, count and histogram for one request."""

    def __init__(self, compiled: Compiled, request: SearchRequest) -> None:
        clauses, params = _filters(request)
        if compiled.where != "1":
            clauses.insert(0, compiled.where)
            params[:0] = compiled.params
        if compiled.match is not None:
            self.source = f"FROM {FTS_TABLE} JOIN mentions AS m ON m.seq = {FTS_TABLE}.rowid"
            clauses.insert(0, f"{FTS_TABLE} MATCH ?")
            params.insert(0, compiled.match)
        else:
            self.source = "FROM mentions AS m"
        self.where = " AND ".join(clauses) or "1"
        self.params = tuple(params)
        self.compiled = compiled

    def count_sql(self, request: SearchRequest | None = None) -> tuple[str, tuple[object, ...]]:
        if request is not None and request.collapse_story:
            return f"SELECT count(DISTINCT {_STORY_KEY}) {self.source} WHERE {self.where}", self.params
        if self.params == (self.compiled.match,):
            # Words alone: the index can count without visiting a single mention row.
            return f"SELECT count(*) FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH ?", self.params
        return f"SELECT count(*) {self.source} WHERE {self.where}", self.params

    def page_sql(self, request: SearchRequest) -> tuple[str, tuple[object, ...]]:
        newest = "m.published DESC, m.id"
        source, params, score = self.source, self.params, "0.0"
        if self.compiled.match is not None:
            score = f"-{_BM25}"
        elif request.order == "relevance" and self.compiled.rank is not None:
            source += (
                f" LEFT JOIN (SELECT rowid AS r, {_BM25} AS b FROM {FTS_TABLE}"
                f" WHERE {FTS_TABLE} MATCH ?) AS rk ON rk.r = m.seq"
            )
            params = (self.compiled.rank, *params)
            score = "coalesce(-rk.b, 0.0)"
        order = newest if request.order == "newest" or score == "0.0" else f"score DESC, {newest}"
        page = (*params, request.limit, request.offset)
        if request.collapse_story:
            return _collapsed(f"{source} WHERE {self.where}", score, order), page
        sql = f"SELECT m.record, {score} AS score, 1 {source} WHERE {self.where} ORDER BY {order}"
        return sql + " LIMIT ? OFFSET ?", page


def _collapsed(source_where: str, score: str, order: str) -> str:
    """The best-ranked member of each story, with the story's matching member count.

    The story id lives in the stored record (the index stage sets it), so no
    schema change is needed; a mention without one is its own story.
    """
    order = order.replace("m.", "")
    return (
        "SELECT record, score, members FROM ("
        " SELECT record, score, published, id, count(*) OVER (PARTITION BY k) AS members,"
        f" row_number() OVER (PARTITION BY k ORDER BY {order}) AS rn FROM ("
        f"  SELECT m.record, {score} AS score, m.published, m.id, {_STORY_KEY} AS k {source_where}))"
        f" WHERE rn = 1 ORDER BY {order} LIMIT ? OFFSET ?"
    )


class EmbeddedStore:
    """`MentionStore` on one SQLite file; safe for one writer thread and readers anywhere."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self._timeout = busy_timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    @classmethod
    def from_config(cls, config: Config) -> EmbeddedStore:
        return cls(config.data_dir / "store.db")

    def __enter__(self) -> EmbeddedStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- connections ------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and not self._closed:
            return conn
        with self._lock:
            if self._closed:
                raise StoreError(f"the store at {self.path} is closed")
            try:
                conn = sqlite3.connect(
                    self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
                )
                conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.create_function(NEAR_FUNCTION, 3, near_matches, deterministic=True)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open the store at {self.path}: {exc}") from exc
            self._connections.append(conn)
        self._local.conn = conn
        return conn

    @contextmanager
    def _transaction(self, write: bool, what: str) -> Iterator[sqlite3.Connection]:
        """One transaction; any SQLite failure rolls back and becomes a StoreError naming `what`."""
        conn = self._conn()
        lock: AbstractContextManager[object] = self._write_lock if write else nullcontext()
        with lock:
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StoreError(f"{what} failed in {self.path}: {exc}") from exc

    def _migrate(self) -> None:
        """Create the schema once; a reader opening a ready file takes no write lock."""
        with self._transaction(False, "opening the store") as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        with self._transaction(True, "creating the schema") as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has store schema version {version}; this Listener reads {SCHEMA_VERSION}"
                )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    # --- writes -----------------------------------------------------------------------------

    def upsert(self, mentions: Sequence[ScoredMention]) -> None:
        """Insert or replace by id, in one transaction; the FTS row follows the text."""
        for mention in mentions:
            if not isinstance(mention, ScoredMention):
                raise TypeError(f"the store keeps ScoredMention records, not {type(mention).__name__}")
        rows = [(_row(m), m) for m in mentions]
        with self._transaction(True, "upsert") as conn:
            for row, mention in rows:
                self._upsert_one(conn, row, mention)

    @staticmethod
    def _upsert_one(conn: sqlite3.Connection, row: tuple[object, ...], mention: ScoredMention) -> None:
        """Re-delivered text (same digest) keeps its FTS row; only changed text is re-indexed."""
        found = conn.execute("SELECT seq, digest FROM mentions WHERE id = ?", (mention.id,)).fetchone()
        if found is None:
            seq = conn.execute(_INSERT, row).lastrowid
        else:
            seq, digest = found
            conn.execute(_UPDATE, (*row, seq))
            if digest == row[-2]:
                return
            conn.execute(f"DELETE FROM {FTS_TABLE} WHERE rowid = ?", (seq,))
        conn.execute(
            f"INSERT INTO {FTS_TABLE} (rowid, title, body) VALUES (?, ?, ?)",
            (seq, _indexed(mention.title), _indexed(mention.text)),
        )

    def delete_older_than(self, cutoff: datetime, *, batch: int = 2000) -> int:
        """Retention by publication time, in short transactions so the writer is never stalled long."""
        limit, deleted = _epoch(cutoff), 0
        while True:
            with self._transaction(True, "retention delete") as conn:
                seqs = conn.execute(
                    "SELECT seq FROM mentions WHERE published < ? LIMIT ?", (limit, batch)
                ).fetchall()
                conn.executemany(f"DELETE FROM {FTS_TABLE} WHERE rowid = ?", seqs)
                conn.executemany("DELETE FROM mentions WHERE seq = ?", seqs)
            deleted += len(seqs)
            if len(seqs) < batch:
                return deleted

    # --- reads ------------------------------------------------------------------------------

    def get(self, mention_id: str) -> ScoredMention | None:
        with self._transaction(False, "get") as conn:
            row = conn.execute("SELECT record FROM mentions WHERE id = ?", (mention_id,)).fetchone()
        return None if row is None else self._decode(row[0])

    def search(self, request: SearchRequest) -> SearchResult:
        _validate(request)
        plan = _Plan(compile_query(request.query), request)
        with self._transaction(False, "search") as conn:
            total = conn.execute(*plan.count_sql(request)).fetchone()[0]
            rows = conn.execute(*plan.page_sql(request)).fetchall() if request.limit else []
        hits = []
        for record, score, members in rows:
            mention = self._decode(record)
            hits.append(Hit(mention, _snippet(mention, plan.compiled), float(score), int(members)))
        return SearchResult(total=total, hits=hits)

    def histogram(self, request: SearchRequest, bucket_seconds: int) -> list[Bucket]:
        """Non-empty buckets in time order; each counts every sentiment label (zeros included).

        A bucket starts at a multiple of `bucket_seconds` since the epoch (UTC);
        `order`, `limit` and `offset` of the request do not apply.
        """
        if isinstance(bucket_seconds, bool) or not isinstance(bucket_seconds, int) or bucket_seconds <= 0:
            raise ValueError(f"bucket_seconds must be a positive integer, not {bucket_seconds!r}")
        _validate(request)
        plan = _Plan(compile_query(request.query), request)
        start = f"(m.published - ((m.published % {bucket_seconds}) + {bucket_seconds}) % {bucket_seconds})"
        sql = (
            f"SELECT {start} AS start, m.sentiment, count(*) {plan.source} WHERE {plan.where}"
            " GROUP BY start, m.sentiment ORDER BY start"
        )
        with self._transaction(False, "histogram") as conn:
            rows = conn.execute(sql, plan.params).fetchall()
        buckets: dict[int, dict[str, int]] = {}
        for begin, label, count in rows:
            buckets.setdefault(begin, dict.fromkeys(LABELS, 0))[label] = count
        return [Bucket(datetime.fromtimestamp(b, UTC), counts) for b, counts in buckets.items()]

    def counts(self, request: SearchRequest) -> dict[str, int]:
        """Matching mentions per sentiment label (every label present, zeros included)."""
        _validate(request)
        plan = _Plan(compile_query(request.query), request)
        sql = f"SELECT m.sentiment, count(*) {plan.source} WHERE {plan.where} GROUP BY m.sentiment"
        with self._transaction(False, "counts") as conn:
            rows = conn.execute(sql, plan.params).fetchall()
        counts = dict.fromkeys(LABELS, 0)
        counts.update(dict(rows))
        return counts

    def scan(self, batch: int = 500) -> Iterator[list[ScoredMention]]:
        """Every stored mention, in batches in insertion order, for `listener reindex`.

        Keyset paging on the row sequence keeps each read short, so a reindex of a
        large store never holds one long read transaction open against the writers.
        """
        last = 0
        while True:
            with self._transaction(False, "scan") as conn:
                rows = conn.execute(
                    "SELECT seq, record FROM mentions WHERE seq > ? ORDER BY seq LIMIT ?", (last, batch)
                ).fetchall()
            if not rows:
                return
            yield [self._decode(record) for _, record in rows]
            last = int(rows[-1][0])

    def _decode(self, record: str) -> ScoredMention:
        try:
            mention = decode(record.encode("utf-8"))
        except ValueError as exc:
            raise StoreError(f"a stored record in {self.path} cannot be read: {exc}") from exc
        if not isinstance(mention, ScoredMention):
            raise StoreError(f"a stored record in {self.path} is a {mention.kind}, not a scored mention")
        return mention


def _snippet(mention: ScoredMention, compiled: Compiled) -> str:
    """Around the first match in the text, else in the title, else the start of the text."""
    for text in (mention.text, mention.title or ""):
        found = make_snippet(text, compiled.highlights)
        if found is not None:
            return found
    return lead(mention.text)


if TYPE_CHECKING:

    def _conforms(store: EmbeddedStore) -> MentionStore:
        return store
