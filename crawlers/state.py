"""Fetch state: what each source last saw, so polls are polite and nothing is read twice.

The state lives in one small SQLite file in the data dir (WAL mode, so the spider
subprocess can read it while the scheduler writes). It holds, per source, the HTTP
validators for conditional GET, the last poll time and the run of consecutive
failures that drives back-off, plus the set of item ids already handed on and the
item pages a spider found without text (so they are not fetched on every crawl).

Validators and seen ids are written together in `commit_poll`, after the caller
has published the documents: if the process dies before that, the next poll
fetches the full response again and the items come back instead of being lost.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from listener.records import Document

__all__ = [
    "EMPTY_BACKOFF_FIRST",
    "EMPTY_BACKOFF_MAX",
    "EmptyPage",
    "FetchState",
    "PendingPoll",
    "SourceState",
    "empty_backoff",
]

EMPTY_BACKOFF_FIRST = 3600.0  # an item page without text is left alone for an hour ...
EMPTY_BACKOFF_MAX = 7 * 86400.0  # ... doubling with each empty fetch in a row, up to a week

_SCHEMA = """
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
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS empty_page (
    source TEXT NOT NULL,
    item_id TEXT NOT NULL,
    settings TEXT NOT NULL,
    strikes INTEGER NOT NULL,
    retry_at REAL NOT NULL,
    PRIMARY KEY (source, item_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS source_cursor (
    source TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    updated REAL NOT NULL
);
"""


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
    """Thread-safe store of validators, poll outcomes and seen items.

    One connection guarded by a lock: the writes are tiny and rare (once per poll),
    so serialising them costs nothing and avoids per-thread connection bookkeeping.
    `readonly=True` opens an existing file without writing (used by the spider
    subprocess to skip pages it has already read).
    """

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        if readonly:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            with self._lock, self._conn:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.executescript(_SCHEMA)

    @classmethod
    def in_data_dir(cls, data_dir: str | Path) -> FetchState:
        return cls(Path(data_dir) / "fetch-state.sqlite3")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> FetchState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- per-source state -------------------------------------------------------------

    def get(self, source: str) -> SourceState:
        with self._lock:
            row = self._conn.execute(
                "SELECT etag, last_modified, last_poll, failures, last_error"
                " FROM source_state WHERE source = ?",
                (source,),
            ).fetchone()
        if row is None:
            return SourceState(source)
        return SourceState(source, row[0], row[1], row[2], int(row[3]), row[4])

    def record_success(self, source: str, when: float | None = None) -> None:
        """A poll went through: the failure run ends."""
        self._upsert(source, "last_poll = ?, failures = 0, last_error = NULL", (_now(when),))

    def record_failure(self, source: str, error: str, when: float | None = None) -> int:
        """Count one more consecutive failure; return the new count for back-off."""
        with self._lock, self._conn:
            self._conn.execute("INSERT OR IGNORE INTO source_state (source) VALUES (?)", (source,))
            self._conn.execute(
                "UPDATE source_state SET last_poll = ?, failures = failures + 1, last_error = ?"
                " WHERE source = ?",
                (_now(when), error[:2000], source),
            )
            row = self._conn.execute(
                "SELECT failures FROM source_state WHERE source = ?", (source,)
            ).fetchone()
        return int(row[0])

    def _upsert(self, source: str, assignments: str, values: tuple[object, ...]) -> None:
        with self._lock, self._conn:
            self._conn.execute("INSERT OR IGNORE INTO source_state (source) VALUES (?)", (source,))
            self._conn.execute(f"UPDATE source_state SET {assignments} WHERE source = ?", (*values, source))

    # --- seen items -------------------------------------------------------------------

    def is_seen(self, source: str, item_id: str) -> bool:
        with self._lock:
            row = self._conn.execute(
                "SELECT 1 FROM seen WHERE source = ? AND item_id = ?", (source, item_id)
            ).fetchone()
        return row is not None

    def unseen(self, source: str, item_ids: Iterable[str]) -> set[str]:
        """The subset of `item_ids` not yet handed on for `source`."""
        wanted = set(item_ids)
        if not wanted:
            return set()
        with self._lock:
            seen = {
                row[0]
                for chunk in _chunks(sorted(wanted), 500)
                for row in self._conn.execute(
                    "SELECT item_id FROM seen WHERE source = ? AND item_id IN "
                    f"({','.join('?' * len(chunk))})",
                    (source, *chunk),
                )
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
        rows = [(source, item_id, stamp) for item_id in set(item_ids)]
        with self._lock, self._conn:
            self._conn.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?, ?)", rows)
            if etag is not None or last_modified is not None:
                self._conn.execute("INSERT OR IGNORE INTO source_state (source) VALUES (?)", (source,))
                self._conn.execute(
                    "UPDATE source_state SET etag = ?, last_modified = ? WHERE source = ?",
                    (etag, last_modified, source),
                )
            if cursor is not None:
                self._conn.execute(
                    "INSERT OR REPLACE INTO source_cursor VALUES (?, ?, ?)", (source, cursor, stamp)
                )

    def settle(self, source: str, pending: PendingPoll | None, published: Iterable[str]) -> bool:
        """Mark published items seen; store the poll's position only if none of its new items is missing.

        Returns True when `pending` is done with (its position stored).
        """
        ids = set(published)
        if pending is not None and pending.complete and pending.new_ids <= ids:
            self.commit_poll(source, ids, etag=pending.etag, last_modified=pending.last_modified,
                             cursor=pending.cursor)
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
        with self._lock, self._conn:
            self._conn.execute("DELETE FROM source_state WHERE source = ?", (source,))
            self._conn.execute("DELETE FROM source_cursor WHERE source = ?", (source,))
            self._conn.execute("DELETE FROM empty_page WHERE source = ?", (source,))

    # --- item pages without text ------------------------------------------------------

    def record_empty(
        self, source: str, item_ids: Iterable[str], settings: str, when: float | None = None
    ) -> list[EmptyPage]:
        """Count one more empty fetch for each item page; return each page's new back-off.

        `settings` identifies the source's configuration: a run of empty fetches
        under other settings does not count, the page starts again at the first step.
        """
        stamp = _now(when)
        recorded = []
        with self._lock, self._conn:
            for item_id in sorted(set(item_ids)):
                row = self._conn.execute(
                    "SELECT settings, strikes FROM empty_page WHERE source = ? AND item_id = ?",
                    (source, item_id),
                ).fetchone()
                strikes = int(row[1]) + 1 if row is not None and row[0] == settings else 1
                page = EmptyPage(item_id, strikes, stamp + empty_backoff(strikes))
                self._conn.execute(
                    "INSERT OR REPLACE INTO empty_page VALUES (?, ?, ?, ?, ?)",
                    (source, item_id, settings, strikes, page.retry_at),
                )
                recorded.append(page)
        return recorded

    def backed_off(self, source: str, item_id: str, settings: str, now: float | None = None) -> bool:
        """Whether an item page found empty under these same settings is still to be left alone."""
        try:
            with self._lock:
                row = self._conn.execute(
                    "SELECT 1 FROM empty_page WHERE source = ? AND item_id = ? AND settings = ?"
                    " AND retry_at > ?",
                    (source, item_id, settings, _now(now)),
                ).fetchone()
        except sqlite3.OperationalError:  # a read-only file written before this table existed
            return False
        return row is not None

    def empty_pages(self, source: str) -> dict[str, EmptyPage]:
        """The item pages of `source` remembered as empty, by item id."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT item_id, strikes, retry_at FROM empty_page WHERE source = ?", (source,)
            ).fetchall()
        return {row[0]: EmptyPage(row[0], int(row[1]), float(row[2])) for row in rows}

    def forget_empty(self, source: str, item_ids: Iterable[str]) -> None:
        """These pages had text this time: their run of empty fetches is over."""
        ids = sorted(set(item_ids))
        with self._lock, self._conn:
            for chunk in _chunks(ids, 500):
                self._conn.execute(
                    f"DELETE FROM empty_page WHERE source = ? AND item_id IN ({','.join('?' * len(chunk))})",
                    (source, *chunk),
                )

    def get_cursor(self, source: str) -> str | None:
        """Where an API source's last committed poll ended (its own format), if anywhere."""
        with self._lock:
            row = self._conn.execute(
                "SELECT cursor FROM source_cursor WHERE source = ?", (source,)
            ).fetchone()
        return None if row is None else str(row[0])

    def prune_seen(self, older_than: float) -> int:
        """Forget items seen before `older_than` (epoch seconds); return how many.

        Ids are deterministic, so an item that comes back after pruning turns into
        an idempotent upsert downstream rather than a duplicate. Empty pages whose
        back-off ended before `older_than` go too (not counted): a page that has been
        off every listing that long would only start its back-off again at the first step.
        """
        with self._lock, self._conn:
            cursor = self._conn.execute("DELETE FROM seen WHERE seen_at < ?", (older_than,))
            self._conn.execute("DELETE FROM empty_page WHERE retry_at < ?", (older_than,))
        return cursor.rowcount


def _now(when: float | None) -> float:
    return time.time() if when is None else when


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
