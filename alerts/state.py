"""Persisted spike-detector state, on the state seam (component `detector`).

A restart must neither forget the baseline (and alert on the first busy hour)
nor forget an open spike (and post it again). Each batch is one transaction:
the mention ids seen, the per-brand counts and the open alert are committed
together, so a batch redelivered after a crash is recognised mention by
mention and counted once.

Several `detect` copies may share the database (a consumer group splits the
brands, and during a rebalance two copies briefly handle one brand). Each
brand's row carries a version that every save bumps; a copy locks the rows a
batch touches and trusts its in-memory detector only while the version is the
one it last saw, so it never acts on state another copy has moved on from.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from listener.records import Alert, ScoredMention, decode, encode
from listener.statedb import StateDB, ensure_schema, open_state

__all__ = [
    "MIGRATIONS",
    "BrandState",
    "DetectorStore",
    "OpenSpike",
    "ShareBaseline",
    "SpikeMark",
    "read_spikes",
]

# Schema steps, oldest first; never edit a released step, append a new one.
MIGRATIONS = (
    """
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
""",
    # Bumped by every save, so a copy can tell its cached detector is stale.
    "ALTER TABLE brand_state ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
    # Alerts decided in a batch's transaction and not yet confirmed on the bus.
    """
CREATE TABLE IF NOT EXISTS alert_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    status TEXT NOT NULL,
    revision INTEGER NOT NULL,
    payload TEXT NOT NULL,
    staged_at REAL NOT NULL,
    UNIQUE (alert_id, status, revision)
);
""",
)


@dataclass
class OpenSpike:
    """The alert that is firing, so it is resolved (not re-fired) after a restart."""

    alert_id: str
    window_start: float
    fired_at: float
    peak: int = 0  # the count last reported; an update goes out when it is clearly exceeded
    revision: int = 0  # updates posted so far
    calm_since: float | None = None  # end of the first window of the current calm stretch
    ended: float | None = None  # the window end at which the spike was declared over
    trigger: str = "spike"  # "spike" (a burst) or "climb" (the share rose over hours)


@dataclass
class ShareBaseline:
    """The brand's usual negative share, learnt slowly, and the slow-climb detector's evidence.

    Kept as decayed sums rather than per-bucket counts, so a day-long memory
    costs two numbers. Not learnt while a spike is open or a climb is gathering
    evidence, so neither becomes the usual share it is measured against.
    """

    negatives: float = 0.0  # decayed negatives in the ordinary closed buckets learnt
    mentions: float = 0.0  # decayed mentions of any label in them
    volume: float = 0.0  # decayed mentions, unweighted: the brand's usual volume
    cusum: float = 0.0  # evidence (nats) that the share climbed to `climb_ratio` x usual
    rising_since: float | None = None  # start of the bucket where the evidence last left zero
    rising_negatives: int = 0  # negatives counted since `rising_since`
    rising_mentions: int = 0  # mentions counted since `rising_since`
    through: int | None = None  # newest bucket learnt or judged


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
    # The spike that ended last, until its cool-down has passed: a return continues it.
    ended_spike: OpenSpike | None = None
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
    share: ShareBaseline = field(default_factory=ShareBaseline)

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
            "ended_spike": None if self.ended_spike is None else vars(self.ended_spike),
            "estimator": self.estimator,
            "mix": {str(k): v for k, v in self.mix.items()},
            "terms": {str(k): v for k, v in self.terms.items()},
            "sources": {str(k): v for k, v in self.sources.items()},
            "history": {str(k): v for k, v in self.history.items()},
            "stories": {str(k): v for k, v in self.stories.items()},
            "share": vars(self.share),
        }
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> BrandState:
        data = json.loads(text)
        spike, ended = data.get("open_spike"), data.get("ended_spike")
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
            ended_spike=None if ended is None else OpenSpike(**ended),
            estimator=data.get("estimator") or {},
            mix=_per_bucket(data.get("mix")),
            terms=_per_bucket(data.get("terms")),
            sources=_per_bucket(data.get("sources")),
            history={int(k): [float(x) for x in v] for k, v in (data.get("history") or {}).items()},
            stories={int(k): list(v) for k, v in (data.get("stories") or {}).items()},
            share=ShareBaseline(**(data.get("share") or {})),
        )


def _per_bucket(raw: dict[str, dict[str, int]] | None) -> dict[int, dict[str, int]]:
    """State saved before evidence was kept has none: an empty map, not an error."""
    return {int(k): {str(t): int(n) for t, n in v.items()} for k, v in (raw or {}).items()}


class DetectorStore:
    """Detector state per brand; use `transaction()` around each batch."""

    def __init__(self, db: StateDB | str | Path) -> None:
        self._db, self._owned = open_state(db)
        ensure_schema(self._db, "detector", MIGRATIONS)

    def load(self, brand: str) -> BrandState:
        return self.load_versioned(brand)[0]

    def load_versioned(self, brand: str) -> tuple[BrandState, int]:
        """The brand's state and the version it was saved at (0: never saved)."""
        row = self._db.execute("SELECT state, version FROM brand_state WHERE brand = ?", (brand,)).fetchone()
        return (BrandState(), 0) if row is None else (BrandState.from_json(row[0]), int(row[1]))

    def lock(self, brand: str) -> int:
        """Hold the brand's row until the transaction ends and return its version.

        A brand never saved gets an empty row first, so there is a row to lock
        and two copies cannot both start it from nothing.
        """
        sql = "SELECT version FROM brand_state WHERE brand = ? FOR UPDATE"
        version = self._db.execute(sql, (brand,)).scalar()
        if version is None:
            self._db.execute(
                "INSERT INTO brand_state (brand, state, version) VALUES (?, ?, 0)"
                " ON CONFLICT (brand) DO NOTHING",
                (brand, BrandState().to_json()),
            )
            version = self._db.execute(sql, (brand,)).scalar()
        return int(version)

    def transaction(self) -> AbstractContextManager[None]:
        """All writes inside commit together, or not at all when the block raises."""
        return self._db.transaction()

    def first_sighting(self, brand: str, mention_id: str, bucket: int) -> bool:
        """True the first time this mention is offered; redeliveries return False."""
        inserted = self._db.execute(
            "INSERT INTO seen_mention (brand, mention_id, bucket) VALUES (?, ?, ?)"
            " ON CONFLICT (brand, mention_id) DO NOTHING",
            (brand, mention_id, bucket),
        )
        return inserted.rowcount == 1

    def save(self, brand: str, state: BrandState) -> int:
        """Store the state; the version it is saved at."""
        return self.save_json(brand, state.to_json())

    def save_json(self, brand: str, text: str) -> int:
        """Store a state already serialised (`BrandState.to_json`); the version it is saved at."""
        version = self._db.execute(
            "INSERT INTO brand_state (brand, state, version) VALUES (?, ?, 1) ON CONFLICT (brand)"
            " DO UPDATE SET state = excluded.state, version = brand_state.version + 1 RETURNING version",
            (brand, text),
        ).scalar()
        return int(version)

    def log_alert(self, alert: Alert) -> None:
        """Every spike the detector fired, kept beyond the baseline (silenced ones and those
        without an incident too), so dashboards can mark them; in the batch's transaction."""
        if alert.status == "firing":
            self._db.execute(
                "INSERT INTO spike_log (alert_id, brand, rule, started, fired_at, peak, expected)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (alert_id) DO NOTHING",
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
                # An update after the end is the spike back within its cool-down: open again.
                "UPDATE spike_log SET peak = CASE WHEN peak < ? THEN ? ELSE peak END, ended = NULL"
                " WHERE alert_id = ?",
                (alert.observed, alert.observed, alert.id),
            )
        else:
            self._db.execute(
                "UPDATE spike_log SET ended = ? WHERE alert_id = ?", (alert.window_end.timestamp(), alert.id)
            )

    def stage_alert(self, alert: Alert) -> None:
        """Keep an alert this batch decided until the bus has it (`confirm`); in the batch's
        transaction, so the decision and the promise to publish it commit together."""
        self._db.execute(
            "INSERT INTO alert_outbox (alert_id, status, revision, payload, staged_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (alert_id, status, revision) DO NOTHING",
            (alert.id, alert.status, alert.revision, encode(alert).decode("utf-8"), time.time()),
        )

    def unconfirmed(self, staged_before: float) -> list[Alert]:
        """Alerts decided before `staged_before` (epoch seconds) and still not known to be on the
        bus: a crash or a failed publish came between. Oldest first."""
        rows = self._db.execute(
            "SELECT payload FROM alert_outbox WHERE staged_at <= ? ORDER BY seq", (staged_before,)
        ).fetchall()
        found = [decode(str(row[0]).encode("utf-8")) for row in rows]
        return [a for a in found if isinstance(a, Alert)]

    def confirm(self, alerts: Sequence[Alert]) -> None:
        """These alerts are on the bus: no need to emit them again."""
        self._db.executemany(
            "DELETE FROM alert_outbox WHERE alert_id = ? AND status = ? AND revision = ?",
            [(a.id, a.status, a.revision) for a in alerts],
        )

    def forget_seen_before(self, brand: str, bucket: int) -> None:
        """Ids older than the baseline can no longer change anything that is kept."""
        self._db.execute("DELETE FROM seen_mention WHERE brand = ? AND bucket < ?", (brand, bucket))

    def close(self) -> None:
        if self._owned:
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


_SPIKES = (
    "SELECT alert_id, rule, started, ended, peak, expected FROM spike_log WHERE brand = ?"
    " AND started < ? AND (ended IS NULL OR ended >= ?) ORDER BY started"
)


def read_spikes(source: StateDB | str | Path, brand: str, since: float, until: float) -> list[SpikeMark]:
    """Spikes of `brand` overlapping [since, until), oldest first; none when there is no state yet.

    A reader (the web app) never creates or migrates the detector's tables: a
    file is opened read-only, and a database without them yet reads as empty.
    """
    params = (brand.casefold(), until, since)
    if isinstance(source, str | Path):
        rows = _read_file(Path(source), params)
    elif source.schema_version("detector") == 0:
        rows = []
    else:
        rows = list(source.execute(_SPIKES, params).fetchall())
    return [
        SpikeMark(a, r, float(s), None if e is None else float(e), int(p), float(x))
        for a, r, s, e, p, x in rows
    ]


def _read_file(path: Path, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    if not path.exists():
        return []
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        return list(db.execute(_SPIKES, tuple(params)).fetchall())
    except sqlite3.OperationalError:  # a detector file from before the spike log
        return []
    finally:
        db.close()
