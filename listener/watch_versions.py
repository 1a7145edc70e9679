"""Versioned watch terms: every change a new row (who, when), and a match stage that follows them.

The web app saves a brand's queries here (`watch_versions` in the state
database: `<data_dir>/web.db` embedded, PostgreSQL when distributed); a brand
with no saved version keeps its watch.yaml queries. `LiveMatchStage` looks for
a newer version every few seconds and rebuilds its matcher, so a saved change
applies without restarting the pipeline. A version that no longer parses (it was validated when saved) is
logged and skipped, and the stage keeps matching with what it had.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from listener.statedb import StateDB, ensure_schema, open_state

__all__ = ["MIGRATIONS", "Version", "WatchTermStore"]

log = logging.getLogger(__name__)

# Schema steps, oldest first; never edit a released step, append a new one.
MIGRATIONS = (
    """
CREATE TABLE IF NOT EXISTS watch_versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    brand TEXT NOT NULL,
    queries TEXT NOT NULL,
    author TEXT NOT NULL,
    at REAL NOT NULL
);
""",
)


@dataclass(frozen=True)
class Version:
    brand: str
    queries: list[str]
    author: str
    at: datetime


class WatchTermStore:
    """The `watch_versions` table, beside the accounts and brand settings of the web app."""

    def __init__(self, db: StateDB | str | Path) -> None:
        self._db, self._owned = open_state(db)
        ensure_schema(self._db, "watch_versions", MIGRATIONS)

    @property
    def db(self) -> StateDB:
        """The database the versions live in, for the stores saved beside them."""
        return self._db

    def close(self) -> None:
        if self._owned:
            self._db.close()

    def save(self, brand: str, queries: list[str], author: str) -> Version:
        now = time.time()
        self._db.execute(
            "INSERT INTO watch_versions (brand, queries, author, at) VALUES (?, ?, ?, ?)",
            (brand.casefold(), json.dumps(queries, ensure_ascii=False), author, now),
        )
        return Version(brand, queries, author, datetime.fromtimestamp(now, UTC))

    def history(self, brand: str) -> list[Version]:
        """Newest first."""
        rows = self._db.execute(
            "SELECT queries, author, at FROM watch_versions WHERE brand = ? ORDER BY seq DESC",
            (brand.casefold(),),
        ).rows
        return [Version(brand, json.loads(q), a, datetime.fromtimestamp(at, UTC)) for q, a, at in rows]

    def effective(self, brand: str, configured: list[str]) -> list[str]:
        versions = self.history(brand)
        return versions[0].queries if versions else list(configured)

    def latest_seq(self) -> int:
        """The newest version's number (0 when none)."""
        return int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM watch_versions").scalar())

    def saved(self) -> int:
        """How many versions were ever saved, the cheap change check a running stage polls.

        Versions are never deleted, so the count grows with every commit. The newest
        number would not do on PostgreSQL: two saves at once may commit out of number
        order, and a poll between them would never see the lower one.
        """
        return int(self._db.execute("SELECT COUNT(*) FROM watch_versions").scalar())
