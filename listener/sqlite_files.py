"""Opening the small SQLite files the product keeps beside its data (state, outbox, incidents, ...).

Every one of them is shared between processes (the monitor, `listener` commands,
the web app), so each opens the same way: its folder created, WAL mode so
readers never block the writer, a generous busy timeout instead of an
immediate "database is locked", and its schema created if missing.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Literal

__all__ = ["open_db"]


def open_db(path: str | Path, schema: str = "", *, autocommit: bool = False) -> sqlite3.Connection:
    """A connection usable from any thread (callers serialise their own use), schema applied.

    `autocommit` makes every statement its own transaction; otherwise the caller
    commits, typically with `with connection:`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # DEFERRED is sqlite3's own default: an implicit BEGIN before the first write.
    isolation: Literal["DEFERRED"] | None = None if autocommit else "DEFERRED"
    db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=isolation)
    db.execute("PRAGMA journal_mode=WAL")
    if schema:
        db.executescript(schema)
    return db
