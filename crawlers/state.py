"""Fetch state: what each source last saw, so polls are polite and nothing is read twice.

The state lives behind the state seam (`listener.statedb`): fetch.db in the data
dir in the embedded deployment (WAL mode, so the spider subprocess can read it
while the scheduler writes), the shared PostgreSQL database when `crawl` runs as
several copies. It holds, per source, the HTTP
validators for conditional GET, the last poll time and the run of consecutive
failures that drives back-off, plus the set of item ids already handed on and the
item pages a spider found without text (so they are not fetched on every crawl).

Validators and seen ids are written together in `commit_poll`, after the caller
has published the documents: if the process dies before that, the next poll
fetches the full response again and the items come back instead of being lost.

Every poll of every source passes through here, so each call is a few
statements at most: seen ids are looked up with one `IN (...)` per 500 ids and
written with one `executemany`, and ids are written in sorted order, so two
copies settling overlapping ids on PostgreSQL wait for each other instead of
deadlocking. Different sources touch different rows and never wait on each other.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from listener.errors import StateError
from listener.records import Document
from listener.statedb import SqliteStateDB, StateDB, ensure_schema, open_state

__all__ = [
    "EMPTY_BACKOFF_FIRST",
    "EMPTY_BACKOFF_MAX",
    "MIGRATIONS",
    "EmptyPage",
    "FetchState",
    "PendingPoll",
    "SourceState",
    "empty_backoff",
]

EMPTY_BACKOFF_FIRST = 3600.0  # an item page without text is left alone for an hour ...
EMPTY_BACKOFF_MAX = 7 * 86400.0  # ... doubling with each empty fetch in a row, up to a week

# Schema steps, oldest first; never edit a released step, append a new one.
# Step 1 is the schema files written before the state seam already have (their
# tables were created WITHOUT ROWID, which PostgreSQL does not know; new files
# get ordinary tables, `IF NOT EXISTS` leaves old ones as they are).
MIGRATIONS = (
    """
CREATE TABLE IF NOT EXISTS source_state (
    source TEXT PRIMARY KEY,
    etag TEXT,
    last_modified TEXT,
    last_poll REAL,
    failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS seen (
    source TEXT NOT NULL,
    item_id TEXT NOT NULL,
    seen_at REAL NOT NULL,
    PRIMARY KEY (source, item_id)
);
CREATE TABLE IF NOT EXISTS empty_page (
    source TEXT NOT NULL,
    item_id TEXT NOT NULL,
    settings TEXT NOT NULL,
    strikes INTEGER NOT NULL,
    retry_at REAL NOT NULL,
    PRIMARY KEY (source, item_id)
);
CREATE TABLE IF NOT EXISTS source_cursor (
    source TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    updated REAL NOT NULL
);
""",
)

_CHUNK = 500  # ids per statement: well under SQLite's bound-parameter limit


@dataclass(frozen=True)
class SourceState:
    """One source's row; all fields are empty for a source never polled."""

    source: str
    etag: str | None = None
    last_modified: str | None = None
    last_poll: float | None = None  # wall-clock seconds since the epoch
    failures: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class EmptyPage:
    """An item page fetched without text: how many times in a row, and when to try it again."""

    item_id: str
    strikes: int
    retry_at: float  # wall-clock seconds since the epoch

    @property
    def backoff(self) -> float:
        return empty_backoff(self.strikes)


def empty_backoff(strikes: int) -> float:
    """1 h after the first empty fetch, then 2 h, 4 h, ... at most 7 days.

    Doubling keeps a page that is empty for good (an index page matching the item
    pattern, a paywalled stub) down to a request a week, while a page that gains
    its text soon after is still read within hours.
    """
    return min(EMPTY_BACKOFF_MAX, EMPTY_BACKOFF_FIRST * 2.0 ** min(max(strikes, 1) - 1, 30))


@dataclass
class PendingPoll:
    """What one poll handed out, and the position (validators or cursor) it reached.

    The position is stored only once every new item of the poll is published
    (`FetchState.settle`): stored earlier, a crash between poll and publish
    would make the next 304 or moved cursor skip those items for good.
    """

    etag: str | None = None
    last_modified: str | None = None
    cursor: str | None = None
    new_ids: set[str] = field(default_factory=set)
    complete: bool = False  # the poll's generator ran to its end

    def hand_out(self, documents: Iterable[Document], fresh: set[str]) -> Iterator[Document]:
        """Yield the documents whose ids are fresh, remembering each; complete once all were yielded."""
        for doc in documents:
            if doc.id in fresh:
                self.new_ids.add(doc.id)
                yield doc
        self.complete = True


class FetchState:
    """Validators, poll outcomes and seen items per source; safe to share between threads.

    `db` is the state database the composition root opened (component "fetch"),
    or a path to an embedded file, opened and closed with the store.
    `readonly=True` never writes, not even the schema (the spider subprocess
    reads the file its parent keeps, to skip pages it has already read).
    """

    def __init__(self, db: StateDB | str | Path, *, readonly: bool = False) -> None:
        self._db, self._owned = open_state(db)
        self.readonly = readonly
        if readonly:
            if self._db.engine == "sqlite" and self._owned:
                self._db.execute("PRAGMA query_only = ON")
            return
        ensure_schema(self._db, "fetch", MIGRATIONS)
        if self._db.engine == "sqlite":
            # fetch.db is this store's and the health log's. A commit lost to a power cut
            # (not to a crash: WAL keeps those) only hands a poll's items on again, as
            # idempotent upserts, so no poll waits for the disk to sync.
            self._db.execute("PRAGMA synchronous = NORMAL")

    @property
    def db(self) -> StateDB:
        """The database the rows live in, for stores that share it (the health log)."""
        return self._db

    @property
    def path(self) -> Path:
        """The embedded file, which the spider subprocess opens read-only."""
        if isinstance(self._db, SqliteStateDB):
            return self._db.path
        raise StateError(f"fetch state in {self._db.where} is not a file a spider subprocess can open")

    def close(self) -> None:
        if self._owned:
            self._db.close()

    def __enter__(self) -> FetchState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- per-source state -------------------------------------------------------------

    def get(self, source: str) -> SourceState:
        row = self._db.execute(
            "SELECT etag, last_modified, last_poll, failures, last_error FROM source_state WHERE source = ?",
            (source,),
        ).fetchone()
        if row is None:
            return SourceState(source)
        last_poll = None if row[2] is None else float(row[2])
        return SourceState(source, row[0], row[1], last_poll, int(row[3]), row[4])

    def record_success(self, source: str, when: float | None = None) -> None:
        """A poll went through: the failure run ends."""
        self._db.execute(
            "INSERT INTO source_state (source, last_poll, failures) VALUES (?, ?, 0)"
            " ON CONFLICT (source) DO UPDATE SET last_poll = excluded.last_poll, failures = 0,"
            " last_error = NULL",
            (source, _now(when)),
        )

    def record_failure(self, source: str, error: str, when: float | None = None) -> int:
        """Count one more consecutive failure; return the new count for back-off."""
        failures = self._db.execute(
            "INSERT INTO source_state (source, last_poll, failures, last_error) VALUES (?, ?, 1, ?)"
            " ON CONFLICT (source) DO UPDATE SET last_poll = excluded.last_poll,"
            " failures = source_state.failures + 1, last_error = excluded.last_error"
            " RETURNING failures",
            (source, _now(when), error[:2000]),
        ).scalar()
        return int(failures)

    # --- seen items -------------------------------------------------------------------

    def is_seen(self, source: str, item_id: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM seen WHERE source = ? AND item_id = ?", (source, item_id)
        ).fetchone()
        return row is not None

    def unseen(self, source: str, item_ids: Iterable[str]) -> set[str]:
        """The subset of `item_ids` not yet handed on for `source`."""
        wanted = set(item_ids)
        seen = {
            item_id
            for chunk in _chunks(sorted(wanted))
            for (item_id,) in self._db.execute(
                f"SELECT item_id FROM seen WHERE source = ? AND item_id IN ({_marks(chunk)})",
                (source, *chunk),
            ).fetchall()
        }
        return wanted - seen

    def mark_seen(self, source: str, item_ids: Iterable[str], when: float | None = None) -> None:
        self.commit_poll(source, item_ids, when=when)

    def commit_poll(
        self,
        source: str,
        item_ids: Iterable[str],
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        when: float | None = None,
        cursor: str | None = None,
    ) -> None:
        """Mark items seen and, when given, store the validators or cursor, in one transaction.

        Storing the validators (or an API's cursor) only here means a 304 or a
        moved cursor can never hide items that were fetched but not yet published.
        """
        stamp = _now(when)
        rows = [(source, item_id, stamp) for item_id in sorted(set(item_ids))]
        validators = etag is not None or last_modified is not None
        if not rows and not validators and cursor is None:
            return
        with self._db.transaction():
            if rows:
                self._db.executemany(
                    "INSERT INTO seen (source, item_id, seen_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (source, item_id) DO NOTHING",
                    rows,
                )
            if validators:
                self._db.execute(
                    "INSERT INTO source_state (source, etag, last_modified) VALUES (?, ?, ?)"
                    " ON CONFLICT (source) DO UPDATE SET etag = excluded.etag,"
                    " last_modified = excluded.last_modified",
                    (source, etag, last_modified),
                )
            if cursor is not None:
                self._store_cursor(source, cursor, stamp)

    def _store_cursor(self, source: str, cursor: str, stamp: float) -> None:
        self._db.execute(
            "INSERT INTO source_cursor (source, cursor, updated) VALUES (?, ?, ?) ON CONFLICT"
            " (source) DO UPDATE SET cursor = excluded.cursor, updated = excluded.updated",
            (source, cursor, stamp),
        )

    def settle(self, source: str, pending: PendingPoll | None, published: Iterable[str]) -> bool:
        """Mark published items seen; store the poll's position only if none of its new items is missing.

        Returns True when `pending` is done with (its position stored).
        """
        ids = set(published)
        if pending is not None and pending.complete and pending.new_ids <= ids:
            self.commit_poll(
                source, ids, etag=pending.etag, last_modified=pending.last_modified, cursor=pending.cursor
            )
            return True
        self.mark_seen(source, ids)
        return False

    def forget_position(self, source: str) -> None:
        """Drop a source's validators, cursor, poll time, failure run and empty pages, keeping its seen items.

        For a source whose settings changed (another URL, another query): the old
        feed's Last-Modified or an API cursor would make the new one skip items,
        and the new settings deserve a poll now rather than after the old back-off.
        A page found empty under the old selectors may well have text under the new ones.
        """
        with self._db.transaction():
            for table in ("source_state", "source_cursor", "empty_page"):
                self._db.execute(f"DELETE FROM {table} WHERE source = ?", (source,))

    # --- item pages without text ------------------------------------------------------

    def record_empty(
        self, source: str, item_ids: Iterable[str], settings: str, when: float | None = None
    ) -> list[EmptyPage]:
        """Count one more empty fetch for each item page; return each page's new back-off.

        `settings` identifies the source's configuration: a run of empty fetches
        under other settings does not count, the page starts again at the first step.
        """
        stamp = _now(when)
        ids = sorted(set(item_ids))
        if not ids:
            return []
        with self._db.transaction():
            before = {
                row[0]: int(row[2]) if row[1] == settings else 0
                for chunk in _chunks(ids)
                for row in self._db.execute(
                    "SELECT item_id, settings, strikes FROM empty_page"
                    f" WHERE source = ? AND item_id IN ({_marks(chunk)}) FOR UPDATE",
                    (source, *chunk),
                ).fetchall()
            }
            pages = [_next_strike(item_id, before.get(item_id, 0), stamp) for item_id in ids]
            self._db.executemany(
                "INSERT INTO empty_page (source, item_id, settings, strikes, retry_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (source, item_id) DO UPDATE SET settings = excluded.settings,"
                " strikes = excluded.strikes, retry_at = excluded.retry_at",
                [(source, page.item_id, settings, page.strikes, page.retry_at) for page in pages],
            )
        return pages

    def backed_off(self, source: str, item_id: str, settings: str, now: float | None = None) -> bool:
        """Whether an item page found empty under these same settings is still to be left alone."""
        row = self._db.execute(
            "SELECT 1 FROM empty_page WHERE source = ? AND item_id = ? AND settings = ? AND retry_at > ?",
            (source, item_id, settings, _now(now)),
        ).fetchone()
        return row is not None

    def empty_pages(self, source: str) -> dict[str, EmptyPage]:
        """The item pages of `source` remembered as empty, by item id."""
        rows = self._db.execute(
            "SELECT item_id, strikes, retry_at FROM empty_page WHERE source = ?", (source,)
        ).fetchall()
        return {row[0]: EmptyPage(row[0], int(row[1]), float(row[2])) for row in rows}

    def forget_empty(self, source: str, item_ids: Iterable[str]) -> None:
        """These pages had text this time: their run of empty fetches is over."""
        ids = sorted(set(item_ids))
        if not ids:
            return
        with self._db.transaction():
            for chunk in _chunks(ids):
                self._db.execute(
                    f"DELETE FROM empty_page WHERE source = ? AND item_id IN ({_marks(chunk)})",
                    (source, *chunk),
                )

    def get_cursor(self, source: str) -> str | None:
        """Where an API source's last committed poll ended (its own format), if anywhere."""
        found = self._db.execute("SELECT cursor FROM source_cursor WHERE source = ?", (source,)).scalar()
        return None if found is None else str(found)

    def prune_seen(self, older_than: float) -> int:
        """Forget items seen before `older_than` (epoch seconds); return how many.

        Ids are deterministic, so an item that comes back after pruning turns into
        an idempotent upsert downstream rather than a duplicate. Empty pages whose
        back-off ended before `older_than` go too (not counted): a page that has been
        off every listing that long would only start its back-off again at the first step.
        """
        with self._db.transaction():
            pruned = self._db.execute("DELETE FROM seen WHERE seen_at < ?", (older_than,)).rowcount
            self._db.execute("DELETE FROM empty_page WHERE retry_at < ?", (older_than,))
        return pruned


def _next_strike(item_id: str, strikes_before: int, stamp: float) -> EmptyPage:
    strikes = strikes_before + 1
    return EmptyPage(item_id, strikes, stamp + empty_backoff(strikes))


def _now(when: float | None) -> float:
    return time.time() if when is None else when


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _marks(chunk: list[str]) -> str:
    """One `?` per id, for `IN (...)`."""
    return ", ".join("?" * len(chunk))
