"""Source health: is each source working, and is it quiet because the world is?

A silent source looks exactly like a quiet brand. The scheduler writes one row
per poll (outcome, items, error, and the median lag between an item's
publication and its arrival) through the state seam (fetch.db in the embedded
deployment, beside the fetch state; the shared PostgreSQL database when every
`crawl` copy, the web app and the CLI must see the same log); `report` turns the
recent rows into the figures an operator needs and two flags:

* **failing**: `FAILING_AFTER` or more polls in a row have failed;
* **silent**: polls keep succeeding but the source has produced nothing for
  much longer than usual, i.e. longer than `SILENT_FACTOR` times its typical
  gap between productive polls (and at least two poll intervals and
  `SILENT_FLOOR`), judged only once it has a history of `MIN_HISTORY`
  productive polls, so a new or always-empty source is not flagged;
* **stale**: nothing has polled it for `STALE_FACTOR` poll intervals (and at
  least `STALE_FLOOR`): the monitor is down or stuck, not the source.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from listener.statedb import StateDB, ensure_schema, open_state

__all__ = ["FAILING_AFTER", "MIGRATIONS", "SILENT_FACTOR", "HealthLog", "SourceHealth"]

FAILING_AFTER = 3
SILENT_FACTOR = 4.0
MIN_HISTORY = 3
SILENT_FLOOR = 3600.0
STALE_FACTOR = 5.0
STALE_FLOOR = 600.0
HISTORY = 14 * 86400.0  # how far back "usual" looks

# Schema steps, oldest first; never edit a released step, append a new one.
MIGRATIONS = (
    """
CREATE TABLE IF NOT EXISTS poll_log (
    source TEXT NOT NULL,
    at REAL NOT NULL,
    ok INTEGER NOT NULL,
    items INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    lag REAL
);
CREATE INDEX IF NOT EXISTS poll_log_by_source ON poll_log (source, at);
""",
)


@dataclass(frozen=True)
class SourceHealth:
    """One source's figures over the report window (times are epoch seconds)."""

    source: str
    polls: int = 0
    items: int = 0
    items_per_hour: float = 0.0
    error_rate: float = 0.0
    last_success: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    consecutive_failures: int = 0
    last_item_at: float | None = None
    typical_gap: float | None = None
    lag_median: float | None = None
    flags: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        if self.polls == 0 and self.last_success is None:
            return "never polled"
        return ", ".join(self.flags) if self.flags else "ok"


class HealthLog:
    """Append-only poll log (component "source_health"); safe to share between threads.

    `db` is the state database the composition root opened, or a path to an
    embedded file (fetch.db), opened and closed with the log.
    """

    def __init__(self, db: StateDB | str | Path) -> None:
        self._db, self._owned = open_state(db)
        ensure_schema(self._db, "source_health", MIGRATIONS)
        if self._db.engine == "sqlite":
            # Rows lost to a power cut (not to a crash: WAL keeps those) cost a few polls of
            # history, so no poll waits for the disk to sync its health row.
            self._db.execute("PRAGMA synchronous = NORMAL")

    def close(self) -> None:
        if self._owned:
            self._db.close()

    def record(
        self,
        source: str,
        *,
        ok: bool,
        items: int = 0,
        error: str | None = None,
        lags: Iterable[float] = (),
        when: float | None = None,
    ) -> None:
        lag_values = [float(lag) for lag in lags if lag >= 0]
        lag = statistics.median(lag_values) if lag_values else None
        self._db.execute(
            "INSERT INTO poll_log (source, at, ok, items, error, lag) VALUES (?, ?, ?, ?, ?, ?)",
            (source, float(_now(when)), int(ok), int(items), (error or "")[:1000] or None, lag),
        )

    def prune(self, older_than: float) -> int:
        """Forget polls logged before `older_than` (epoch seconds); return how many."""
        return self._db.execute("DELETE FROM poll_log WHERE at < ?", (older_than,)).rowcount

    def report(
        self, source: str, *, now: float | None = None, window: float = 86400.0, poll_interval: float = 0.0
    ) -> SourceHealth:
        """Figures over the last `window` seconds; flags judged against the longer history."""
        at = _now(now)
        rows = self._db.execute(
            "SELECT at, ok, items, error, lag FROM poll_log WHERE source = ? AND at >= ? AND at <= ?"
            " ORDER BY at",
            (source, at - max(window, HISTORY), at),
        ).fetchall()
        recent = [r for r in rows if r[0] >= at - window]
        failures = _trailing_failures(rows)
        productive = [r[0] for r in rows if r[1] and r[2] > 0]
        gaps = [b - a for a, b in itertools.pairwise(productive)]
        typical = statistics.median(gaps) if len(productive) >= MIN_HISTORY and gaps else None
        last_item = productive[-1] if productive else None
        last_poll = rows[-1][0] if rows else None
        last_ok = max((r[0] for r in rows if r[1]), default=None)
        flags = _flags(at, failures, typical, (last_item, last_ok, last_poll), poll_interval)
        errors = [r for r in rows if not r[1]]
        lags = [r[4] for r in recent if r[4] is not None]
        items = sum(r[2] for r in recent if r[1])
        hours = max(window, 1.0) / 3600.0
        return SourceHealth(
            source=source,
            polls=len(recent),
            items=items,
            items_per_hour=items / hours,
            error_rate=(sum(1 for r in recent if not r[1]) / len(recent)) if recent else 0.0,
            last_success=last_ok,
            last_error=errors[-1][3] if errors else None,
            last_error_at=errors[-1][0] if errors else None,
            consecutive_failures=failures,
            last_item_at=last_item,
            typical_gap=typical,
            lag_median=statistics.median(lags) if lags else None,
            flags=flags,
        )


def _flags(
    now: float,
    failures: int,
    typical: float | None,
    times: tuple[float | None, float | None, float | None],
    poll_interval: float,
) -> tuple[str, ...]:
    """`times` are the last item, last successful poll and last poll (epoch seconds)."""
    last_item, last_ok, last_poll = times
    flags: list[str] = []
    if failures >= FAILING_AFTER:
        flags.append("failing")
    if typical is not None and last_item is not None and last_ok is not None:
        usual = max(SILENT_FACTOR * typical, 2 * poll_interval, SILENT_FLOOR)
        if last_ok - last_item > usual:  # polled and empty, not merely unpolled
            flags.append("silent")
    if last_poll is not None and now - last_poll > max(STALE_FACTOR * poll_interval, STALE_FLOOR):
        flags.append("stale")
    return tuple(flags)


def _trailing_failures(rows: Sequence[tuple[float, int, int, str | None, float | None]]) -> int:
    count = 0
    for row in reversed(rows):
        if row[1]:
            break
        count += 1
    return count


def _now(when: float | None) -> float:
    return time.time() if when is None else when
