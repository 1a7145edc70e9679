"""Persisted spike-detector state: one small SQLite file in the data dir.

A restart must neither forget the baseline (and alert on the first busy hour)
nor forget an open spike (and post it again). Each batch is one transaction:
the mention ids seen, the per-brand counts and the open alert are committed
together, so a batch redelivered after a crash is recognised mention by
mention and counted once.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from listener.records import Alert, ScoredMention
from listener.sqlite_files import open_db

__all__ = ["BrandState", "DetectorStore", "OpenSpike", "SpikeMark", "read_spikes"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS brand_state (
    brand TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS seen_mention (
    brand TEXT NOT NULL,
    mention_id TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    PRIMARY KEY (brand, mention_id)
);
CREATE INDEX IF NOT EXISTS seen_mention_bucket ON seen_mention (brand, bucket);
CREATE TABLE IF NOT EXISTS spike_log (
    alert_id TEXT PRIMARY KEY,
    brand TEXT NOT NULL,
    rule TEXT NOT NULL,
    started REAL NOT NULL,
    fired_at REAL NOT NULL,
    ended REAL,
    peak INTEGER NOT NULL,
    expected REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS spike_log_brand ON spike_log (brand, started);
"""


@dataclass
class OpenSpike:
    """The alert that is firing, so it is resolved (not re-fired) after a restart."""

    alert_id: str
    window_start: float
    fired_at: float
    peak: int = 0  # the count last reported; an update goes out when it is clearly exceeded
    revision: int = 0  # updates posted so far


@dataclass
class BrandState:
    """Counts per bucket index (bucket = floor(epoch seconds / rule.bucket)); sparse."""

    negative: dict[int, int] = field(default_factory=dict)
    total: dict[int, int] = field(default_factory=dict)
    samples: dict[int, list[ScoredMention]] = field(default_factory=dict)
    spike_buckets: set[int] = field(default_factory=set)
    first_bucket: int | None = None
    watermark: float | None = None
    evaluated_through: int | None = None
    open_spike: OpenSpike | None = None
    estimator: dict[str, Any] = field(default_factory=dict)
    # Evidence per bucket: mentions per sentiment label, and for the negatives their
    # words (document frequency) and sites; `history` is [observed, expected, threshold]
    # per window end on the window grid, for the alert's 24-hour chart.
    mix: dict[int, dict[str, int]] = field(default_factory=dict)
    terms: dict[int, dict[str, int]] = field(default_factory=dict)
    sources: dict[int, dict[str, int]] = field(default_factory=dict)
    history: dict[int, list[float]] = field(default_factory=dict)
    # Negatives grouped into stories per bucket (see alerts.story_evidence).
    stories: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "negative": {str(k): v for k, v in self.negative.items()},
            "total": {str(k): v for k, v in self.total.items()},
            "samples": {str(k): [m.model_dump(mode="json") for m in v] for k, v in self.samples.items()},
            "spike_buckets": sorted(self.spike_buckets),
            "first_bucket": self.first_bucket,
            "watermark": self.watermark,
            "evaluated_through": self.evaluated_through,
            "open_spike": None if self.open_spike is None else vars(self.open_spike),
            "estimator": self.estimator,
            "mix": {str(k): v for k, v in self.mix.items()},
            "terms": {str(k): v for k, v in self.terms.items()},
            "sources": {str(k): v for k, v in self.sources.items()},
            "history": {str(k): v for k, v in self.history.items()},
            "stories": {str(k): v for k, v in self.stories.items()},
        }
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> BrandState:
        data = json.loads(text)
        spike = data.get("open_spike")
        return cls(
            negative={int(k): int(v) for k, v in data["negative"].items()},
            total={int(k): int(v) for k, v in data["total"].items()},
            samples={
                int(k): [ScoredMention.model_validate(m) for m in v] for k, v in data["samples"].items()
            },
            spike_buckets={int(b) for b in data["spike_buckets"]},
            first_bucket=data["first_bucket"],
            watermark=data["watermark"],
            evaluated_through=data["evaluated_through"],
            open_spike=None if spike is None else OpenSpike(**spike),
            estimator=data.get("estimator") or {},
            mix=_per_bucket(data.get("mix")),
            terms=_per_bucket(data.get("terms")),
            sources=_per_bucket(data.get("sources")),
            history={int(k): [float(x) for x in v] for k, v in (data.get("history") or {}).items()},
            stories={int(k): list(v) for k, v in (data.get("stories") or {}).items()},
        )


def _per_bucket(raw: dict[str, dict[str, int]] | None) -> dict[int, dict[str, int]]:
    """State saved before evidence was kept has none: an empty map, not an error."""
    return {int(k): {str(t): int(n) for t, n in v.items()} for k, v in (raw or {}).items()}


class DetectorStore:
    """SQLite-backed state; use `transaction()` around each batch."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = open_db(self.path, _SCHEMA, autocommit=True)

    def load(self, brand: str) -> BrandState:
        row = self._db.execute("SELECT state FROM brand_state WHERE brand = ?", (brand,)).fetchone()
        return BrandState() if row is None else BrandState.from_json(row[0])

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together, or not at all when the block raises."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def first_sighting(self, brand: str, mention_id: str, bucket: int) -> bool:
        """True the first time this mention is offered; redeliveries return False."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO seen_mention (brand, mention_id, bucket) VALUES (?, ?, ?)",
            (brand, mention_id, bucket),
        )
        return cursor.rowcount == 1

    def save(self, brand: str, state: BrandState) -> None:
        self._db.execute(
            "INSERT INTO brand_state (brand, state) VALUES (?, ?) "
            "ON CONFLICT (brand) DO UPDATE SET state = excluded.state",
            (brand, state.to_json()),
        )

    def log_alert(self, alert: Alert) -> None:
        """Every spike the detector fired, kept beyond the baseline (silenced ones and those
        without an incident too), so dashboards can mark them; in the batch's transaction."""
        if alert.status == "firing":
            self._db.execute(
                "INSERT OR IGNORE INTO spike_log (alert_id, brand, rule, started, fired_at, peak, expected)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    alert.id,
                    alert.brand.casefold(),
                    alert.rule,
                    alert.window_start.timestamp(),
                    alert.created.timestamp(),
                    alert.observed,
                    alert.expected,
                ),
            )
        elif alert.status == "update":
            self._db.execute(
                "UPDATE spike_log SET peak = max(peak, ?) WHERE alert_id = ?", (alert.observed, alert.id)
            )
        else:
            self._db.execute(
                "UPDATE spike_log SET ended = ? WHERE alert_id = ?", (alert.window_end.timestamp(), alert.id)
            )

    def forget_seen_before(self, brand: str, bucket: int) -> None:
        """Ids older than the baseline can no longer change anything that is kept."""
        self._db.execute("DELETE FROM seen_mention WHERE brand = ? AND bucket < ?", (brand, bucket))

    def close(self) -> None:
        self._db.close()


@dataclass(frozen=True)
class SpikeMark:
    """A spike as a chart shows it: from its first window's start to its resolution (None: open)."""

    alert_id: str
    rule: str
    started: float
    ended: float | None
    peak: int
    expected: float


def read_spikes(path: str | Path, brand: str, since: float, until: float) -> list[SpikeMark]:
    """Spikes of `brand` overlapping [since, until), oldest first; none when there is no state yet.

    Opened read-only, so a reader (the web app) never creates or locks the detector's file.
    """
    path = Path(path)
    if not path.exists():
        return []
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute(
            "SELECT alert_id, rule, started, ended, peak, expected FROM spike_log WHERE brand = ?"
            " AND started < ? AND (ended IS NULL OR ended >= ?) ORDER BY started",
            (brand.casefold(), until, since),
        ).fetchall()
    except sqlite3.OperationalError:  # a detector file from before the spike log
        return []
    finally:
        db.close()
    return [
        SpikeMark(a, r, float(s), None if e is None else float(e), int(p), float(x))
        for a, r, s, e, p, x in rows
    ]
