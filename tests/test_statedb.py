"""The state seam's contract: SQLite and PostgreSQL run the same portable SQL the same way."""

from __future__ import annotations

import threading

import pytest

from listener.errors import StateError
from listener.statedb import PostgresStateDB, StateDB, ensure_schema

SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS item (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        score REAL NOT NULL DEFAULT 0,
        body BLOB
    );
    CREATE INDEX IF NOT EXISTS item_name ON item (name);
    """,
    "CREATE TABLE IF NOT EXISTS counter (k TEXT PRIMARY KEY, n INTEGER NOT NULL)",
)


@pytest.fixture
def db(state_db: StateDB) -> StateDB:
    state_db.migrate("test", SCHEMA)
    return state_db


def test_migrations_apply_once_and_record_their_version(state_db: StateDB) -> None:
    assert state_db.schema_version("test") == 0
    assert state_db.migrate("test", SCHEMA[:1]) == 1
    assert state_db.migrate("test", SCHEMA) == 1
    assert state_db.migrate("test", SCHEMA) == 0
    assert state_db.schema_version("test") == 2


def test_rows_read_by_position_and_name_with_returning_ids(db: StateDB) -> None:
    insert = "INSERT INTO item (name, score, body) VALUES (?, ?, ?) RETURNING id"
    first = db.execute(insert, ("a", 1.5, b"\x00x"))
    second = db.execute("INSERT INTO item (name) VALUES (?) RETURNING id", ("b",)).scalar()
    assert second == first.scalar() + 1
    row = db.execute("SELECT id, name, score, body FROM item WHERE name = ?", ("a",)).fetchone()
    assert row is not None
    ident, name, score, body = row
    assert (row["name"], name, score, bytes(body)) == ("a", "a", 1.5, b"\x00x")
    assert row.as_dict()["id"] == ident


def test_upserts_and_percent_signs_are_portable(db: StateDB) -> None:
    sql = "INSERT INTO counter (k, n) VALUES (?, 1) ON CONFLICT (k) DO UPDATE SET n = counter.n + 1"
    for _ in range(3):
        db.execute(sql, ("100%",))
    assert db.execute("SELECT n FROM counter WHERE k LIKE '100%'").scalar() == 3
    ignored = db.execute("INSERT INTO counter (k, n) VALUES (?, 9) ON CONFLICT (k) DO NOTHING", ("100%",))
    assert ignored.rowcount == 0
    assert db.executemany("INSERT INTO counter (k, n) VALUES (?, ?)", [("x", 1), ("y", 2)]) == 2


def test_a_failed_transaction_leaves_nothing_and_nesting_joins_the_outer_one(db: StateDB) -> None:
    with pytest.raises(RuntimeError), db.transaction():
        db.execute("INSERT INTO counter (k, n) VALUES ('a', 1)")
        with db.transaction():
            db.execute("INSERT INTO counter (k, n) VALUES ('b', 1)")
        raise RuntimeError("boom")
    assert db.execute("SELECT count(*) FROM counter").scalar() == 0
    with db.transaction():
        db.execute("INSERT INTO counter (k, n) VALUES ('a', 1)")
        row = db.execute("SELECT n FROM counter WHERE k = ? FOR UPDATE", ("a",)).fetchone()
        assert row is not None and row["n"] == 1
    assert db.execute("SELECT n FROM counter WHERE k = 'a'").scalar() == 1


def test_concurrent_read_modify_write_transactions_never_lose_an_update(db: StateDB) -> None:
    db.execute("INSERT INTO counter (k, n) VALUES ('c', 0)")

    def bump() -> None:
        for _ in range(25):
            with db.transaction():
                n = db.execute("SELECT n FROM counter WHERE k = 'c' FOR UPDATE").scalar()
                db.execute("UPDATE counter SET n = ? WHERE k = 'c'", (n + 1,))

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert db.execute("SELECT n FROM counter WHERE k = 'c'").scalar() == 100


def test_a_shared_database_behind_its_code_is_refused_with_the_command_that_fixes_it(
    state_db: StateDB,
) -> None:
    if state_db.engine == "sqlite":
        ensure_schema(state_db, "test", SCHEMA)  # an embedded file migrates itself
        assert state_db.schema_version("test") == 2
        return
    with pytest.raises(StateError, match="listener migrate"):
        ensure_schema(state_db, "test", SCHEMA)
    state_db.migrate("test", SCHEMA)
    ensure_schema(state_db, "test", SCHEMA)
    with pytest.raises(StateError, match="newer"):
        ensure_schema(state_db, "test", SCHEMA[:1])


def test_an_unreachable_server_is_a_clear_error_without_the_password() -> None:
    with pytest.raises(StateError) as caught:
        PostgresStateDB("postgresql://me:hunter2@127.0.0.1:1/x", connect_timeout=1)
    assert "hunter2" not in str(caught.value) and "127.0.0.1:1" in str(caught.value)
