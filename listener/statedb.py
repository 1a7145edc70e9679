"""The state seam: one small SQL database for control state, on SQLite or PostgreSQL.

Incidents, silences, the outbox, detector state, stories, fetch state, settings
versions, accounts, feedback, digests and source health are all small tables
that several processes read and write. In the embedded deployment they live in
SQLite files in the data dir; in the distributed one every stage copy, the web
app and the CLI must see the same rows, so they live in PostgreSQL.

Each store is written once, in the SQL both engines understand, against the
`StateDB` protocol below; the two engines differ only in how they connect,
lock and migrate. Writing every store twice (once per engine) was the
alternative, and it is how engine copies drift apart; the contract suite runs
every store over both engines instead.

The portable dialect, which every store keeps to:
- `?` placeholders; no `?` or `%` inside SQL string literals;
- `INSERT ... ON CONFLICT (...) DO NOTHING / DO UPDATE SET x = excluded.x`, never
  `INSERT OR IGNORE/REPLACE`; `RETURNING` rather than `lastrowid`;
- `CASE WHEN` rather than two-argument `MAX`/`MIN`, `lower(x) = lower(?)` rather
  than `COLLATE NOCASE`;
- `SELECT ... FOR UPDATE` to lock rows read in a transaction; SQLite, whose write
  transaction already locks the whole file, drops the clause;
- schema types INTEGER, REAL, TEXT, BLOB and `INTEGER PRIMARY KEY AUTOINCREMENT`,
  which PostgreSQL migrations read as BIGINT, DOUBLE PRECISION, TEXT, BYTEA and
  an identity column.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from listener.errors import StateError

__all__ = [
    "PostgresStateDB",
    "Result",
    "SqliteStateDB",
    "StateDB",
    "StateRow",
    "ensure_schema",
    "is_file_address",
    "open_address",
    "open_state",
    "to_postgres_ddl",
]

Engine = Literal["sqlite", "postgres"]

_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
)


class StateRow(tuple[Any, ...]):
    """A result row readable by position (`row[0]`, unpacking) and by column name (`row["id"]`)."""

    _names: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> StateRow:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)

    def as_dict(self) -> dict[str, Any]:
        return {name: tuple.__getitem__(self, i) for name, i in self._names.items()}


@dataclass(frozen=True)
class Result:
    """Everything a statement returned, fetched at once so no cursor outlives its connection."""

    rows: list[StateRow] = field(default_factory=list)
    rowcount: int = -1

    def fetchone(self) -> StateRow | None:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[StateRow]:
        return list(self.rows)

    def scalar(self) -> Any:
        """The first column of the first row, or None when there is no row."""
        return self.rows[0][0] if self.rows else None


class StateDB(Protocol):
    """What a state store may ask of its database; both engines implement all of it."""

    @property
    def engine(self) -> Engine: ...

    @property
    def where(self) -> str:
        """Where the rows live, for messages: a file path or a server address without secrets."""
        ...

    @property
    def address(self) -> str:
        """What a child process opens (`open_address`) to reach the same rows: the file path,
        or the connection URL with its password, so hand it over a pipe and never log it."""
        ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        """Run one statement in the portable dialect; inside `transaction()` it joins it."""
        ...

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> int:
        """One statement over many parameter rows; the total row count."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """Statements inside commit together or not at all; re-entering joins the outer one.

        It is a write transaction from the start (SQLite's BEGIN IMMEDIATE), so two
        processes never both read a row, decide, and write over each other; on
        PostgreSQL, `SELECT ... FOR UPDATE` locks just the rows that need it.
        """
        ...

    def migrate(self, component: str, steps: Sequence[str]) -> int:
        """Apply the component's schema steps not applied yet; how many were applied."""
        ...

    def schema_version(self, component: str) -> int: ...

    def close(self) -> None: ...


def ensure_schema(db: StateDB, component: str, steps: Sequence[str]) -> None:
    """What a store does when it opens: embedded files migrate themselves; a shared
    PostgreSQL database is migrated once, by `listener migrate`, so a rolling upgrade
    never has two versions racing to change one schema. A store refuses a schema that
    is behind (or ahead of) its code, with the command that fixes it."""
    if db.engine == "sqlite":
        db.migrate(component, steps)
        return
    have = db.schema_version(component)
    if have < len(steps):
        raise StateError(
            f"the {component} tables in {db.where} are at schema version {have} of {len(steps)};"
            " run `listener migrate -c watch.yaml` once before starting the services"
        )
    if have > len(steps):
        raise StateError(
            f"the {component} tables in {db.where} are at schema version {have}, newer than this"
            f" Listener knows ({len(steps)}); upgrade Listener on this host"
        )


def open_state(source: StateDB | str | Path) -> tuple[StateDB, bool]:
    """A store's database and whether the store owns it.

    Stores take either a `StateDB` the composition root opened (shared, closed by
    its opener) or a path, for the embedded file and for tests (opened, and
    closed with the store).
    """
    if isinstance(source, str | Path):
        return SqliteStateDB(source), True
    return source, False


def is_file_address(address: str) -> bool:
    """True for an embedded database's path, False for a PostgreSQL URL or libpq string."""
    return not (re.match(r"^(postgres|postgresql)://", address) or ("=" in address and "/" not in address))


def open_address(address: str) -> StateDB:
    """The database behind a `StateDB.address` another process handed over."""
    return SqliteStateDB(address) if is_file_address(address) else PostgresStateDB(address)


# --- SQLite ----------------------------------------------------------------------------------


class SqliteStateDB:
    """One SQLite file in WAL mode, shared by this process's threads behind one lock.

    Other processes (the CLI, the web app) open the same file; SQLite's file lock
    and a generous busy timeout serialise them.
    """

    engine: Engine = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # With WAL, NORMAL never corrupts the file; a power cut may lose the last commits, which
        # at-least-once delivery redoes (an item fetched or an alert posted once more, never lost).
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._lock = threading.RLock()
        self._depth = 0

    @property
    def where(self) -> str:
        return str(self.path)

    @property
    def address(self) -> str:
        return str(self.path)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        with self._lock:
            cursor = self._conn.execute(_sqlite_sql(sql), tuple(params))
            return Result(_sqlite_rows(cursor), cursor.rowcount)

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> int:
        with self._lock:
            return self._conn.executemany(_sqlite_sql(sql), [tuple(p) for p in params]).rowcount

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self._conn.execute("COMMIT")

    def migrate(self, component: str, steps: Sequence[str]) -> int:
        if self.schema_version(component) == len(steps):
            return 0  # the common case, every time a store opens: no write lock taken
        with self.transaction():
            self._conn.execute(_MIGRATIONS_TABLE)
            have = self.schema_version(component)
            for step in steps[have:]:
                for statement in _statements(step):
                    self._conn.execute(statement)
            if len(steps) > have:
                self._conn.execute(
                    "INSERT INTO schema_migrations (component, version) VALUES (?, ?)"
                    " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                    (component, len(steps)),
                )
        return max(0, len(steps) - have)

    def schema_version(self, component: str) -> int:
        with self._lock:
            try:
                row = self._conn.execute(
                    "SELECT version FROM schema_migrations WHERE component = ?", (component,)
                ).fetchone()
            except sqlite3.OperationalError:  # no migrations table yet
                return 0
        return 0 if row is None else int(row[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


_FOR_UPDATE = re.compile(r"\s+FOR\s+UPDATE\b", re.IGNORECASE)


def _sqlite_sql(sql: str) -> str:
    return _FOR_UPDATE.sub("", sql)


def _sqlite_rows(cursor: sqlite3.Cursor) -> list[StateRow]:
    if cursor.description is None:
        return []
    names = {d[0]: i for i, d in enumerate(cursor.description)}
    return [StateRow(row, names) for row in cursor.fetchall()]


def _statements(script: str) -> Iterator[str]:
    """A migration script split into statements (triggers' inner `;` included)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip():
                yield pending.strip()
            pending = ""
    if pending.strip():
        yield pending.strip()


# --- PostgreSQL --------------------------------------------------------------------------------


class PostgresStateDB:
    """A pool of psycopg 3 connections to one PostgreSQL database, shared by every store.

    Outside a transaction each statement takes a pooled connection in autocommit
    mode; `transaction()` keeps one connection for the block and this thread.
    """

    engine: Engine = "postgres"

    def __init__(
        self, url: str, *, pool_size: int = 5, connect_timeout: float = 10.0, name: str = "listener"
    ) -> None:
        try:
            from psycopg_pool import ConnectionPool
        except ImportError as exc:  # pragma: no cover - the extra is part of the scale-out install
            raise StateError(
                "state.engine 'postgres' needs psycopg: pip install 'listener[postgres]'"
            ) from exc
        self._where = _redact(url)
        self._url = url
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, pool_size),
            kwargs={"autocommit": True, "connect_timeout": max(1, int(connect_timeout))},
            name=name,
            open=False,
            timeout=connect_timeout,  # how long a statement waits for a connection when the server is gone
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
        except Exception as exc:
            self._pool.close()
            raise StateError(f"cannot reach the state database at {self._where}: {exc}") from None
        self._local = threading.local()

    @property
    def where(self) -> str:
        return self._where

    @property
    def address(self) -> str:
        return self._url

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        text = _postgres_sql(sql)
        with self._unavailable_is_state_error():
            conn = getattr(self._local, "conn", None)
            if conn is not None:
                return _pg_result(conn.execute(text, tuple(params)))
            with self._pool.connection() as pooled:
                return _pg_result(pooled.execute(text, tuple(params)))

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> int:
        text = _postgres_sql(sql)
        rows = [tuple(p) for p in params]
        if not rows:
            return 0
        with self.transaction(), self._unavailable_is_state_error():
            cursor = self._local.conn.cursor()
            cursor.executemany(text, rows)
            return int(cursor.rowcount)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if getattr(self._local, "conn", None) is not None:
            yield
            return
        with self._unavailable_is_state_error(), self._pool.connection() as conn, conn.transaction():
            self._local.conn = conn
            try:
                yield
            finally:
                self._local.conn = None

    @contextmanager
    def _unavailable_is_state_error(self) -> Iterator[None]:
        """A lost server, a full pool, a deadlock or a serialization failure is a `StateError`:
        the stage runner retries the batch after a pause instead of dead-lettering its records,
        which were never at fault. Constraint violations and SQL mistakes pass through as they are."""
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            yield
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StateError(f"the state database at {self._where} is unavailable: {exc}") from exc

    def migrate(self, component: str, steps: Sequence[str]) -> int:
        with self.transaction():
            conn = self._local.conn
            # Two `listener migrate` runs at once take turns instead of racing on one schema.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('listener-migrate'))")
            conn.execute(_MIGRATIONS_TABLE)
            have = self.schema_version(component)
            for step in steps[have:]:
                conn.execute(to_postgres_ddl(step))
            if len(steps) > have:
                conn.execute(
                    "INSERT INTO schema_migrations (component, version) VALUES (%s, %s)"
                    " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                    (component, len(steps)),
                )
        return max(0, len(steps) - have)

    def schema_version(self, component: str) -> int:
        exists = self.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").scalar()
        if not exists:
            return 0
        found = self.execute(
            "SELECT version FROM schema_migrations WHERE component = ?", (component,)
        ).scalar()
        return 0 if found is None else int(found)

    def close(self) -> None:
        self._pool.close()


_PLACEHOLDER = re.compile(r"\?")
_DDL_TYPES = (
    (
        re.compile(r"\bINTEGER\s+PRIMARY\s+KEY\s+AUTOINCREMENT\b", re.I),
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    ),
    (re.compile(r"\bINTEGER\b", re.I), "BIGINT"),
    (re.compile(r"\bREAL\b", re.I), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b", re.I), "BYTEA"),
)


def _postgres_sql(sql: str) -> str:
    return _PLACEHOLDER.sub("%s", sql.replace("%", "%%"))


def to_postgres_ddl(script: str) -> str:
    """A schema step in the portable dialect, in PostgreSQL's types."""
    for pattern, replacement in _DDL_TYPES:
        script = pattern.sub(replacement, script)
    return script


def _pg_result(cursor: Any) -> Result:
    if cursor.description is None:
        return Result([], cursor.rowcount)
    names = {d.name: i for i, d in enumerate(cursor.description)}
    return Result([StateRow(row, names) for row in cursor.fetchall()], cursor.rowcount)


def _redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
