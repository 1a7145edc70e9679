"""Versioned watch terms: every change a new row (who, when), and a match stage that follows them.

The web app saves a brand's queries here (`watch_versions` in
`<data_dir>/web.db`); a brand with no saved version keeps its watch.yaml
queries. `LiveMatchStage` looks for a newer version every few seconds and
rebuilds its matcher, so a saved change applies without restarting the
pipeline. A version that no longer parses (it was validated when saved) is
logged and skipped, and the stage keeps matching with what it had.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from listener.config import BrandConfig
from listener.errors import QuerySyntaxError
from listener.records import Record
from listener.sqlite_files import open_db
from listener.stages import MatchStage
from pipelines.stage import Output

__all__ = ["LiveMatchStage", "Version", "WatchTermStore"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Version:
    brand: str
    queries: list[str]
    author: str
    at: datetime


class WatchTermStore:
    """The `watch_versions` table in `<data_dir>/web.db`."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        with self._db() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS watch_versions (seq INTEGER PRIMARY KEY, brand TEXT NOT NULL,"
                " queries TEXT NOT NULL, author TEXT NOT NULL, at REAL NOT NULL)"
            )

    def _db(self) -> sqlite3.Connection:
        return open_db(self.path)

    def save(self, brand: str, queries: list[str], author: str) -> Version:
        now = time.time()
        db = self._db()
        try:
            with db:
                db.execute(
                    "INSERT INTO watch_versions (brand, queries, author, at) VALUES (?, ?, ?, ?)",
                    (brand.casefold(), json.dumps(queries, ensure_ascii=False), author, now),
                )
        finally:
            db.close()
        return Version(brand, queries, author, datetime.fromtimestamp(now, UTC))

    def history(self, brand: str) -> list[Version]:
        """Newest first."""
        db = self._db()
        try:
            rows = db.execute(
                "SELECT queries, author, at FROM watch_versions WHERE brand = ? ORDER BY seq DESC",
                (brand.casefold(),),
            ).fetchall()
        finally:
            db.close()
        return [Version(brand, json.loads(q), a, datetime.fromtimestamp(at, UTC)) for q, a, at in rows]

    def effective(self, brand: str, configured: list[str]) -> list[str]:
        versions = self.history(brand)
        return versions[0].queries if versions else list(configured)

    def latest_seq(self) -> int:
        """The newest version's number (0 when none), a cheap change check."""
        db = self._db()
        try:
            row = db.execute("SELECT coalesce(max(seq), 0) FROM watch_versions").fetchone()
        finally:
            db.close()
        return int(row[0])


class LiveMatchStage:
    """`MatchStage` over the effective brands (newest saved queries, brands added in the web app),
    re-read every `check_every_s`."""

    name = "match"
    input_topic = "documents"
    idle_tick: float | None = None  # reacts to records only

    def __init__(self, brands: Sequence[BrandConfig], path: Path, *, check_every_s: float = 5.0) -> None:
        from listener.brand_settings import BrandsWatcher

        self._watcher = BrandsWatcher(brands, path, check_every_s)
        self._stage = MatchStage(list(brands))

    def _refresh(self) -> None:
        brands = self._watcher.changed()
        if brands is None:
            return
        try:
            self._stage = MatchStage(brands)
        except (QuerySyntaxError, ValueError) as exc:
            log.warning("match: keeping the current watch terms; the saved ones cannot be used: %s", exc)
            return
        log.info("match: watch terms now at version %s", self._watcher.version())

    def handle(self, records: Sequence[Record]) -> list[Output]:
        self._refresh()
        return self._stage.handle(records)
