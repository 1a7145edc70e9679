"""The `state_db` fixture: every state contract test runs once per engine.

`sqlite` is a file in the test's tmp dir; `postgres` is a fresh schema on the
session's real PostgreSQL server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_server import fresh_schema_url

from listener.statedb import PostgresStateDB, SqliteStateDB, StateDB

__all__ = ["migrated", "open_state_db", "state_db", "state_db_pair"]


def open_state_db(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> StateDB:
    if engine == "sqlite":
        return SqliteStateDB(tmp_path / "state.db")
    base = request.getfixturevalue("postgres_server_url")
    return PostgresStateDB(fresh_schema_url(base))


@pytest.fixture(params=["sqlite", "postgres"])
def state_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateDB]:
    db = open_state_db(str(request.param), tmp_path, request)
    try:
        yield db
    finally:
        db.close()


def migrated(db: StateDB, component: str, steps: tuple[str, ...]) -> StateDB:
    """`db` with a component's schema applied, as `listener migrate` leaves a shared database."""
    db.migrate(component, steps)
    return db


@pytest.fixture(params=["sqlite", "postgres"])
def state_db_pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[StateDB, StateDB]]:
    """Two handles on one database, as two processes (a stage and the web app) hold it."""
    if request.param == "sqlite":
        pair: tuple[StateDB, StateDB] = (
            SqliteStateDB(tmp_path / "state.db"),
            SqliteStateDB(tmp_path / "state.db"),
        )
    else:
        url = fresh_schema_url(request.getfixturevalue("postgres_server_url"))
        pair = (PostgresStateDB(url), PostgresStateDB(url))
    try:
        yield pair
    finally:
        for db in pair:
            db.close()
