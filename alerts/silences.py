"""Silences: mute a brand, or one rule of a brand, for a while (state seam component `silences`).

A silence is checked when a spike *fires*. A spike that fired while muted is
remembered as suppressed, so its later updates and its "resolved" message are
not posted either (a lone "resolved" for something nobody saw is noise). A
spike that was already posted keeps its thread going: muting hides new
alarms, it does not cut a story in half. Silences expire by time; expired ones
stay listed with `--all` so the record of who muted what remains.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from listener.errors import IncidentError
from listener.statedb import StateDB, ensure_schema, open_state

__all__ = ["MIGRATIONS", "Silence", "SilenceStore"]

# Schema steps, oldest first; never edit a released step, append a new one.
MIGRATIONS = (
    """
CREATE TABLE IF NOT EXISTS silence (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    brand TEXT NOT NULL,
    rule TEXT,
    starts REAL NOT NULL,
    ends REAL NOT NULL,
    created_by TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    removed_at REAL
);
CREATE TABLE IF NOT EXISTS suppressed (
    alert_id TEXT PRIMARY KEY,
    silence INTEGER NOT NULL,
    at REAL NOT NULL
);
""",
)

_COLUMNS = "id, brand, rule, starts, ends, created_by, reason, removed_at"


@dataclass(frozen=True)
class Silence:
    id: int
    brand: str
    rule: str | None  # None mutes every rule of the brand
    starts: float
    ends: float
    created_by: str
    reason: str
    removed_at: float | None

    def active(self, now: float) -> bool:
        return self.removed_at is None and self.starts <= now < self.ends

    def covers(self, brand: str, rule: str, now: float) -> bool:
        return (
            self.active(now)
            and self.brand.casefold() == brand.casefold()
            and (self.rule is None or self.rule == rule)
        )


class SilenceStore:
    """Every silence ever set, and the alerts each one kept quiet; every write commits at once."""

    def __init__(self, db: StateDB | str | Path) -> None:
        self._db, self._owned = open_state(db)
        ensure_schema(self._db, "silences", MIGRATIONS)

    def add(
        self, brand: str, duration: float, *, now: float, by: str, rule: str | None = None, reason: str = ""
    ) -> Silence:
        if duration <= 0:
            raise IncidentError("a silence needs a positive duration")
        row = self._db.execute(
            "INSERT INTO silence (brand, rule, starts, ends, created_by, reason) VALUES (?, ?, ?, ?, ?, ?)"
            f" RETURNING {_COLUMNS}",
            (brand, rule, now, now + duration, by, reason),
        ).fetchone()
        assert row is not None
        return _silence(row)

    def remove(self, silence_id: int, *, now: float) -> Silence:
        updated = self._db.execute(
            "UPDATE silence SET removed_at = ? WHERE id = ? AND removed_at IS NULL", (now, silence_id)
        )
        if updated.rowcount != 1:
            raise IncidentError(f"no active silence {silence_id}")
        return self._get(silence_id)

    def listed(self, *, now: float, include_expired: bool = False) -> list[Silence]:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM silence ORDER BY id").fetchall()
        found = [_silence(row) for row in rows]
        return found if include_expired else [s for s in found if s.active(now)]

    def matching(self, brand: str, rule: str, now: float) -> Silence | None:
        return next((s for s in self.listed(now=now) if s.covers(brand, rule, now)), None)

    def suppress(self, alert_id: str, silence: Silence, now: float) -> None:
        self._db.execute(
            "INSERT INTO suppressed (alert_id, silence, at) VALUES (?, ?, ?)"
            " ON CONFLICT (alert_id) DO NOTHING",
            (alert_id, silence.id, now),
        )

    def suppressed(self, alert_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM suppressed WHERE alert_id = ?", (alert_id,)).fetchone()
        return row is not None

    def close(self) -> None:
        if self._owned:
            self._db.close()

    def _get(self, silence_id: int) -> Silence:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM silence WHERE id = ?", (silence_id,)).fetchone()
        if row is None:
            raise IncidentError(f"no silence {silence_id}")
        return _silence(row)


def _silence(row: tuple[object, ...]) -> Silence:
    sid, brand, rule, starts, ends, by, reason, removed = row
    return Silence(
        id=int(str(sid)),
        brand=str(brand),
        rule=None if rule is None else str(rule),
        starts=float(str(starts)),
        ends=float(str(ends)),
        created_by=str(by),
        reason=str(reason),
        removed_at=None if removed is None else float(str(removed)),
    )
