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
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from listener.datadir import DataDir
from listener.errors import StoreError
from listener.query.tokens import normalise, tokenize
from listener.records import ScoredMention, SentimentLabel, encode
from pipelines.fts import FTS_TABLE, NEAR_FUNCTION, Compiled, compile_query, field_key, near_matches
from pipelines.snippets import lead, make_snippet
from pipelines.store import (
    Bucket,
    Hit,
    MentionStore,
    SearchRequest,
    SearchResult,
    TopField,
    decode_stored,
)
from pipelines.store_plan import Plan, choose_drive, epoch, match_size, page_scores, stories_page

if TYPE_CHECKING:
    from listener.config import Config

__all__ = ["SCHEMA_VERSION", "EmbeddedStore"]

SCHEMA_VERSION = 2
_MMAP_BYTES = 1 << 31
_epoch = epoch  # the Elasticsearch store converts times the same way
LABELS: tuple[str, ...] = tuple(label.value for label in SentimentLabel)
_TOP_COLUMNS: dict[str, str] = {"source": "m.source_key", "site": "m.site", "author": "m.author_key"}

# Version 2: each mention's story (its story id, else its own id) beside the row, so one hit per
# story groups without reading and parsing every matching record.
_STORIES = """
CREATE TABLE IF NOT EXISTS mention_stories (seq INTEGER PRIMARY KEY, story TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS mention_stories_story ON mention_stories(story);
"""
_FILL_STORIES = (
    "INSERT OR REPLACE INTO mention_stories (seq, story)"
    " SELECT seq, coalesce(json_extract(record, '$.data.story_id'), id) FROM mentions"
)

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
{_STORIES}
"""

_COLUMNS = "id, brand, sentiment, source_key, site, author_key, lang, published, url, title, digest, record"
_INSERT = f"INSERT INTO mentions ({_COLUMNS}) VALUES ({', '.join('?' * len(_COLUMNS.split(', ')))})"
_UPDATE = f"UPDATE mentions SET ({_COLUMNS}) = ({', '.join('?' * len(_COLUMNS.split(', ')))}) WHERE seq = ?"


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
    cap = request.count_limit
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise ValueError(f"count_limit must be a positive integer or None, not {cap!r}")
    if request.sentiment is not None and request.sentiment not in LABELS:
        raise ValueError(f"sentiment must be one of {', '.join(LABELS)}, not {request.sentiment!r}")
    if (
        request.since is not None
        and request.until is not None
        and _epoch(request.since) > _epoch(request.until)
    ):
        raise ValueError("since is after until")


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
        return cls(DataDir(config.data_dir).store)

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
                # Reads through a memory map skip a system call and a copy per page; at a
                # million mentions that halved the time to look up each match (SQLite caps it).
                conn.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")
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
            if version in (0, 1):
                for statement in (_SCHEMA if version == 0 else _STORIES).split(";"):
                    if statement.strip():
                        conn.execute(statement)
                if version == 1:
                    conn.execute(_FILL_STORIES)  # about 4 s at a million mentions
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
            seq, reindex = conn.execute(_INSERT, row).lastrowid, False
        else:
            seq, digest = found
            conn.execute(_UPDATE, (*row, seq))
            reindex = digest != row[-2]
        story = mention.id if mention.story_id is None else mention.story_id
        conn.execute("INSERT OR REPLACE INTO mention_stories (seq, story) VALUES (?, ?)", (seq, story))
        if found is not None and not reindex:
            return
        if reindex:
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
                conn.executemany("DELETE FROM mention_stories WHERE seq = ?", seqs)
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
        """The total and one page, in one read transaction (see `store_plan` for the drives)."""
        _validate(request)
        compiled = compile_query(request.query)
        with self._transaction(False, "search") as conn:
            matches = None if compiled.match is None else match_size(conn, compiled.match)
            drive = choose_drive(conn, compiled, request, page=False, matches=matches)
            total = int(conn.execute(*Plan(compiled, request, drive).count_sql(request)).fetchone()[0])
            rows: list[tuple[int, str, float, int]] = []
            if request.limit:
                drive = choose_drive(conn, compiled, request, page=True, matches=matches)
                if request.collapse_story and request.order == "newest":
                    rows = stories_page(conn, compiled, request, drive)
                else:
                    rows = conn.execute(*Plan(compiled, request, drive).page_sql(request)).fetchall()
            scores: dict[int, float] = {}
            if rows and compiled.match is not None and request.order == "newest":
                scores = page_scores(conn, compiled.match, [seq for seq, *_ in rows])
        hits = []
        for seq, record, score, members in rows:
            mention = self._decode(record)
            score = scores.get(seq, score)
            hits.append(Hit(mention, _snippet(mention, compiled), float(score), int(members)))
        if request.count_limit is not None and total > request.count_limit:
            return SearchResult(total=request.count_limit, hits=hits, total_at_least=True)
        return SearchResult(total=total, hits=hits)

    @staticmethod
    def plan(conn: sqlite3.Connection, compiled: Compiled, request: SearchRequest) -> Plan:
        """The plan for visiting every match (counts and aggregates)."""
        return Plan(compiled, request, choose_drive(conn, compiled, request, page=False))

    def histogram(self, request: SearchRequest, bucket_seconds: int) -> list[Bucket]:
        """Non-empty buckets in time order; each counts every sentiment label (zeros included).

        A bucket starts at a multiple of `bucket_seconds` since the epoch (UTC);
        `order`, `limit` and `offset` of the request do not apply.
        """
        if isinstance(bucket_seconds, bool) or not isinstance(bucket_seconds, int) or bucket_seconds <= 0:
            raise ValueError(f"bucket_seconds must be a positive integer, not {bucket_seconds!r}")
        _validate(request)
        compiled = compile_query(request.query)
        start = f"(m.published - ((m.published % {bucket_seconds}) + {bucket_seconds}) % {bucket_seconds})"
        with self._transaction(False, "histogram") as conn:
            plan = self.plan(conn, compiled, request)
            sql = (
                f"SELECT {start} AS start, m.sentiment, count(*) {plan.source} WHERE {plan.where}"
                " GROUP BY start, m.sentiment ORDER BY start"
            )
            rows = conn.execute(sql, plan.params).fetchall()
        buckets: dict[int, dict[str, int]] = {}
        for begin, label, count in rows:
            buckets.setdefault(begin, dict.fromkeys(LABELS, 0))[label] = count
        return [Bucket(datetime.fromtimestamp(b, UTC), counts) for b, counts in buckets.items()]

    def counts(self, request: SearchRequest) -> dict[str, int]:
        """Matching mentions per sentiment label (every label present, zeros included)."""
        _validate(request)
        compiled = compile_query(request.query)
        with self._transaction(False, "counts") as conn:
            plan = self.plan(conn, compiled, request)
            sql = f"SELECT m.sentiment, count(*) {plan.source} WHERE {plan.where} GROUP BY m.sentiment"
            rows = conn.execute(sql, plan.params).fetchall()
        counts = dict.fromkeys(LABELS, 0)
        counts.update(dict(rows))
        return counts

    def top_values(self, request: SearchRequest, field: TopField, limit: int = 10) -> list[tuple[str, int]]:
        """A GROUP BY over the store's own query plan, so the counts agree with a search."""
        if field not in _TOP_COLUMNS:
            raise ValueError(f"field must be one of {', '.join(_TOP_COLUMNS)}, not {field!r}")
        _validate(request)
        compiled = compile_query(request.query)
        column = _TOP_COLUMNS[field]
        with self._transaction(False, f"top {field}s") as conn:
            plan = self.plan(conn, compiled, request)
            sql = (
                f"SELECT {column} AS v, count(*) AS n {plan.source} WHERE {plan.where} AND {column} != ''"
                " GROUP BY v ORDER BY n DESC, v LIMIT ?"
            )
            rows = conn.execute(sql, (*plan.params, int(limit))).fetchall()
        return [(str(v), int(n)) for v, n in rows]

    def refresh(self) -> None:
        """Nothing to do: a committed write is visible to every reader at once."""

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
        return decode_stored(record, str(self.path))


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
