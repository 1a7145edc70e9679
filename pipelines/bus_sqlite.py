"""The embedded bus: a durable log in one SQLite file, shared by threads and processes.

Why SQLite: the embedded deployment must run with no server, yet a mention that
a source has handed to the bus must survive the monitor being killed. SQLite in
WAL mode gives durable transactions, many concurrent readers beside one writer,
and safe sharing of one file between the monitor and a CLI command.

Layout (one file, e.g. `<data_dir>/bus.db`):

* `messages(topic, offset, key, value, ts)`: the log. Each topic has ONE
  partition (0) and offsets that only grow; `topics.next_offset` remembers the
  next offset even after retention deleted every message, so an offset is never
  reused.
* `group_offsets(grp, topic, partition, committed)`: each consumer group's
  committed position, Kafka style: the offset of the NEXT message to read.

Delivery is at-least-once. A group that has never committed starts at the
earliest retained message (Kafka's `auto.offset.reset=earliest`), so a stage
started after the sources have run still sees everything. With one partition a
group has one useful member: a second consumer in the same group reads the same
messages (there is nothing to split), which only duplicates work.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from listener.errors import BusError
from pipelines.bus import Message

if TYPE_CHECKING:
    from listener.config import Config

__all__ = ["DEFAULT_FILENAME", "EmbeddedBus", "EmbeddedConsumer", "Synchronous", "TopicStats"]

DEFAULT_FILENAME = "bus.db"
PARTITION = 0
Synchronous = Literal["normal", "full"]

_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")  # Kafka's legal topic names
_SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (
    topic TEXT PRIMARY KEY,
    next_offset INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    topic TEXT NOT NULL,
    offset INTEGER NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    ts REAL NOT NULL,
    PRIMARY KEY (topic, offset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_offsets (
    grp TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    committed INTEGER NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (grp, topic, partition)
);
"""


@dataclass(frozen=True, slots=True)
class TopicStats:
    """What `listener bus` commands print: size of the log and where it starts and ends."""

    topic: str
    messages: int
    first_offset: int | None
    next_offset: int


class _Signal:
    """Wakes pollers in this process as soon as any bus on the same file publishes.

    The generation counter closes the race between "found nothing" and "wait":
    a poller only sleeps if no publish happened since it looked.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.generation = 0

    def notify(self) -> None:
        with self._cond:
            self.generation += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        with self._cond:
            if self.generation == seen:
                self._cond.wait(timeout)


_signals: dict[str, _Signal] = {}
_signals_lock = threading.Lock()


def _signal_for(path: Path) -> _Signal:
    with _signals_lock:
        return _signals.setdefault(os.path.realpath(path), _Signal())


def _check_topic(topic: str) -> None:
    if not isinstance(topic, str) or not _TOPIC_NAME.match(topic):
        raise ValueError(f"invalid topic name {topic!r}: use 1-249 of A-Z a-z 0-9 . _ -")


def _check_item(key: str, value: bytes) -> None:
    if not isinstance(key, str):
        raise TypeError(f"message key must be str, got {type(key).__name__}")
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"message value must be bytes, got {type(value).__name__}")


class EmbeddedBus:
    """The `Bus` seam over one SQLite file, safe across threads and processes.

    `synchronous` picks what "durable" means once `publish` returns:

    * ``"normal"`` (default): in WAL mode the commit is written to the WAL file
      with `write()` before `publish` returns, but not fsync'd. The data is in the
      operating system's page cache, which survives the process being killed
      (SIGKILL, OOM killer, a crash) -- the failure the monitor actually meets.
      An OS crash or power loss may lose the last transactions (never corrupt
      the file). This is several times faster than ``"full"``.
    * ``"full"``: the WAL is fsync'd at every commit, so an accepted message also
      survives power loss, at the price of one disk flush per `publish` (batch
      with `publish_many`).

    Each thread gets its own connection (SQLite connections are not meant to be
    shared mid-transaction); writers serialise on SQLite's write lock and wait up
    to `busy_timeout` seconds for it, also across processes.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "normal",
        busy_timeout: float = 30.0,
        poll_interval: float = 0.05,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if synchronous not in ("normal", "full"):
            raise ValueError(f"synchronous must be 'normal' or 'full', got {synchronous!r}")
        self.path = Path(path)
        self.synchronous: Synchronous = synchronous
        self.busy_timeout = busy_timeout
        self.poll_interval = poll_interval
        self.clock = clock
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._signal = _signal_for(self.path)
        with self._transaction() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)

    @classmethod
    def in_dir(cls, data_dir: str | os.PathLike[str], *, synchronous: Synchronous = "normal") -> EmbeddedBus:
        """The bus of a deployment: `bus.db` in its data directory (created if missing)."""
        directory = Path(data_dir)
        directory.mkdir(parents=True, exist_ok=True)
        return cls(directory / DEFAULT_FILENAME, synchronous=synchronous)

    @classmethod
    def from_config(cls, config: Config) -> EmbeddedBus:
        return cls.in_dir(config.data_dir)

    def __enter__(self) -> EmbeddedBus:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- connections and transactions -------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise BusError(f"bus {self.path} is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
        except sqlite3.Error as exc:
            raise BusError(f"cannot open bus database {self.path}: {exc}") from exc
        if str(mode).lower() != "wal":
            conn.close()
            raise BusError(f"bus database {self.path} cannot use WAL mode (got {mode!r})")
        with self._lock:
            self._connections.append(conn)
        self._local.conn = conn
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock up front (no upgrade deadlocks)."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise BusError(f"bus {self.path}: cannot start a write: {exc}") from exc
        try:
            yield conn
        except BaseException:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise BusError(f"bus {self.path}: commit failed: {exc}") from exc

    def _read(self, sql: str, params: Sequence[object]) -> list[Any]:
        try:
            return self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise BusError(f"bus {self.path}: read failed: {exc}") from exc

    # -- the Bus seam ------------------------------------------------------------------

    def publish(self, topic: str, key: str, value: bytes) -> None:
        self.publish_many(topic, [(key, value)])

    def publish_many(self, topic: str, items: Sequence[tuple[str, bytes]]) -> None:
        """All of `items` in one transaction, with consecutive offsets, or none of them."""
        _check_topic(topic)
        items = list(items)
        for key, value in items:
            _check_item(key, value)
        if not items:
            return
        now = self.clock()
        try:
            with self._transaction() as conn:
                first = self._reserve_offsets(conn, topic, len(items))
                conn.executemany(
                    "INSERT INTO messages (topic, offset, key, value, ts) VALUES (?, ?, ?, ?, ?)",
                    [(topic, first + i, k, bytes(v), now) for i, (k, v) in enumerate(items)],
                )
        except sqlite3.Error as exc:
            raise BusError(f"bus {self.path}: publish to {topic!r} failed: {exc}") from exc
        self._signal.notify()

    @staticmethod
    def _reserve_offsets(conn: sqlite3.Connection, topic: str, count: int) -> int:
        row = conn.execute("SELECT next_offset FROM topics WHERE topic = ?", (topic,)).fetchone()
        first = int(row[0]) if row else 0
        conn.execute(
            "INSERT INTO topics (topic, next_offset) VALUES (?, ?) "
            "ON CONFLICT (topic) DO UPDATE SET next_offset = excluded.next_offset",
            (topic, first + count),
        )
        return first

    def consumer(self, topic: str, group: str) -> EmbeddedConsumer:
        """Join `group` on `topic`; a new group is registered at the earliest offset.

        Registering at once (rather than at the first commit) makes retention wait
        for a group that has started but not yet committed anything.
        """
        _check_topic(topic)
        if not isinstance(group, str) or not group:
            raise ValueError(f"consumer group must be a non-empty string, got {group!r}")
        try:
            with self._transaction() as conn:
                conn.execute(
                    "INSERT OR IGNORE INTO group_offsets (grp, topic, partition, committed, updated) "
                    "VALUES (?, ?, ?, 0, ?)",
                    (group, topic, PARTITION, self.clock()),
                )
                committed = conn.execute(
                    "SELECT committed FROM group_offsets WHERE grp = ? AND topic = ? AND partition = ?",
                    (group, topic, PARTITION),
                ).fetchone()[0]
        except sqlite3.Error as exc:
            raise BusError(f"bus {self.path}: cannot join group {group!r}: {exc}") from exc
        return EmbeddedConsumer(self, topic, group, int(committed))

    def close(self) -> None:
        """Close every thread's connection; stop the runner threads first."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    # -- retention and inspection (the seam's `trim_all`, `read`, `group_lag`, and more) --

    def trim(self, topic: str, *, before_offset: int | None = None, max_age: float | None = None) -> int:
        """Delete old messages of `topic`; return how many were deleted.

        Deletes messages older than `before_offset` and/or older than `max_age`
        seconds, but never one that some group has not committed yet: the bound is
        the lowest committed offset of every group known on the topic. A topic no
        group has ever consumed (e.g. `dlq`) is trimmed as asked.
        """
        _check_topic(topic)
        if before_offset is None and max_age is None:
            raise ValueError("trim needs before_offset, max_age or both")
        try:
            with self._transaction() as conn:
                bound = conn.execute(
                    "SELECT MIN(committed) FROM group_offsets WHERE topic = ?", (topic,)
                ).fetchone()[0]
                limits = [b for b in (bound, before_offset) if b is not None]
                sql = "DELETE FROM messages WHERE topic = ?"
                params: list[object] = [topic]
                if limits:
                    sql += " AND offset < ?"
                    params.append(min(limits))
                if max_age is not None:
                    sql += " AND ts < ?"
                    params.append(self.clock() - max_age)
                deleted = conn.execute(sql, params).rowcount
        except sqlite3.Error as exc:
            raise BusError(f"bus {self.path}: trim of {topic!r} failed: {exc}") from exc
        return int(deleted)

    def trim_all(self, *, max_age: float) -> dict[str, int]:
        """Age-based retention over every topic, e.g. from a daily housekeeping job."""
        return {t.topic: self.trim(t.topic, max_age=max_age) for t in self.stats()}

    def delete_group(self, group: str, topic: str | None = None) -> None:
        """Forget a retired group, so that retention stops waiting for it."""
        sql, params = "DELETE FROM group_offsets WHERE grp = ?", [group]
        if topic is not None:
            sql, params = sql + " AND topic = ?", [group, topic]
        try:
            with self._transaction() as conn:
                conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise BusError(f"bus {self.path}: cannot delete group {group!r}: {exc}") from exc

    def stats(self) -> list[TopicStats]:
        rows = self._read(
            "SELECT t.topic, t.next_offset, COUNT(m.offset), MIN(m.offset) FROM topics t "
            "LEFT JOIN messages m ON m.topic = t.topic GROUP BY t.topic ORDER BY t.topic",
            (),
        )
        return [
            TopicStats(str(t), int(n or 0), None if f is None else int(f), int(nxt)) for t, nxt, n, f in rows
        ]

    def read(self, topic: str, offset: int = 0, limit: int = 100) -> list[Message]:
        """Browse a topic without joining a group (a group would hold back retention)."""
        _check_topic(topic)
        rows = self._read(
            "SELECT offset, key, value, ts FROM messages WHERE topic = ? AND offset >= ? "
            "ORDER BY offset LIMIT ?",
            (topic, offset, limit),
        )
        return [Message(topic, PARTITION, int(o), str(k), bytes(v), float(ts)) for o, k, v, ts in rows]

    def group_lag(self, topic: str, group: str) -> dict[int, int]:
        """Retained messages of `topic` at or after `group`'s committed offset (one partition)."""
        _check_topic(topic)
        found = {s.topic: s for s in self.stats()}.get(topic)
        if found is None or found.first_offset is None:
            return {PARTITION: 0}
        committed = self.committed(topic, group) or 0
        return {PARTITION: max(0, found.next_offset - max(committed, found.first_offset))}

    def committed(self, topic: str, group: str) -> int | None:
        """The group's committed offset (next to read), or None if it never joined."""
        rows = self._read(
            "SELECT committed FROM group_offsets WHERE grp = ? AND topic = ? AND partition = ?",
            (group, topic, PARTITION),
        )
        return int(rows[0][0]) if rows else None


class EmbeddedConsumer:
    """One member of a consumer group; use it from one thread at a time."""

    def __init__(self, bus: EmbeddedBus, topic: str, group: str, committed: int) -> None:
        self.bus = bus
        self.topic = topic
        self.group = group
        self.position = committed  # next offset `poll` reads
        self._closed = False

    def poll(self, max_records: int = 100, timeout: float = 1.0) -> list[Message]:
        """Wait up to `timeout` s for messages after the position; [] if none came.

        Waits on the in-process signal (woken at once by a publish on this file
        from this process) in slices of `poll_interval`, re-reading the log after
        each slice so that publishes from other processes are seen too.
        """
        self._check_open()
        if max_records < 1:
            raise ValueError(f"max_records must be at least 1, got {max_records}")
        deadline = time.monotonic() + max(0.0, timeout)
        signal = self.bus._signal
        while True:
            seen = signal.generation
            messages = self._fetch(max_records)
            remaining = deadline - time.monotonic()
            if messages or remaining <= 0 or self._closed:
                return messages
            signal.wait(seen, min(remaining, self.bus.poll_interval))

    def _fetch(self, max_records: int) -> list[Message]:
        messages = self.bus.read(self.topic, self.position, max_records)
        if messages:
            self.position = messages[-1].offset + 1
        return messages

    def commit(self) -> None:
        """Commit the position: everything `poll` returned so far, or where `seek` moved it.

        As in Kafka, `seek(n)` then `commit()` resets the group to `n` for good,
        which is how an operator replays a topic into one stage.
        """
        self._check_open()
        try:
            with self.bus._transaction() as conn:
                conn.execute(
                    "INSERT INTO group_offsets (grp, topic, partition, committed, updated) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (grp, topic, partition) "
                    "DO UPDATE SET committed = excluded.committed, updated = excluded.updated",
                    (self.group, self.topic, PARTITION, self.position, self.bus.clock()),
                )
        except sqlite3.Error as exc:
            raise BusError(f"bus {self.bus.path}: commit of group {self.group!r} failed: {exc}") from exc

    def seek(self, offset: int, partition: int = 0) -> None:
        """Replay from `offset`; the committed offset moves only with the next `commit`."""
        self._check_open()
        if partition != PARTITION:
            raise ValueError(f"the embedded bus has one partition (0); got partition {partition}")
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        self.position = offset

    def close(self) -> None:
        """Leave the group without committing: what was polled since the last commit comes back."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise BusError(f"consumer of {self.topic!r} in group {self.group!r} is closed")
