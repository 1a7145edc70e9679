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

A brand's state is kept as rows, not one document: a header row in
`brand_state` (the scalars, the open spike, the estimator, the chart's
history) and one row per bucket in `brand_bucket` (counts, evidence, samples),
so a save writes only what changed (see `alerts.state_rows`). A row that still
holds a whole state (saved before the split) loads as it is, and the next save
splits it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alerts.state_rows import StateRows
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
    # A brand's state split into rows: `brand_state.state` becomes its header (the whole state
    # in rows saved before this step, read as they are) and each bucket's data a row here.
    """
CREATE TABLE IF NOT EXISTS brand_bucket (
    brand TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (brand, bucket)
);
""",
)
# The header's marker: its buckets are rows of `brand_bucket`, not keys of the document.
_ROWS_LAYOUT = "rows"
# Mentions per INSERT when recording sightings: 3 parameters each, well under either engine's limit.
_SIGHTINGS_PER_STATEMENT = 300


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
    buckets: float = 0.0  # decayed count of buckets learnt: volume / buckets is mentions a bucket
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
    # Buckets whose data changed (or went) since the store last wrote this state, marked where
    # they change (the detector's update and prune), so a save need not compare or serialise
    # the buckets that did not. Not persisted, and no part of what the state is.
    dirty: set[int] = field(default_factory=set, compare=False, repr=False)

    def to_json(self) -> str:
        """The whole state as one document (how it was stored before the rows)."""
        data = self._header_data()
        for name, per_bucket in self._plain_buckets().items():
            data[name] = {str(k): v for k, v in per_bucket.items()}
        data["samples"] = {str(k): [m.model_dump(mode="json") for m in v] for k, v in self.samples.items()}
        return _dumps(data)

    def header_json(self) -> str:
        """Everything but the per-bucket data: what the brand's `brand_state` row holds."""
        return _dumps({**self._header_data(), "layout": _ROWS_LAYOUT})

    def bucket_json(self, bucket: int) -> str | None:
        """One bucket's data as its `brand_bucket` row holds it; None when nothing is kept for it."""
        data: dict[str, Any] = {}
        for name, per_bucket in self._plain_buckets().items():
            if bucket in per_bucket:
                data[name] = per_bucket[bucket]
        if bucket in self.samples:
            data["samples"] = [m.model_dump(mode="json") for m in self.samples[bucket]]
        return _dumps(data) if data else None

    def buckets(self) -> set[int]:
        """Every bucket some per-bucket data is kept for."""
        found = set(self.samples)
        for per_bucket in self._plain_buckets().values():
            found.update(per_bucket)
        return found

    def _plain_buckets(self) -> dict[str, dict[int, Any]]:
        """The per-bucket maps whose values are plain JSON (samples are records)."""
        return {
            "negative": self.negative,
            "total": self.total,
            "mix": self.mix,
            "terms": self.terms,
            "sources": self.sources,
            "stories": self.stories,
        }

    def _header_data(self) -> dict[str, Any]:
        return {
            "spike_buckets": sorted(self.spike_buckets),
            "first_bucket": self.first_bucket,
            "watermark": self.watermark,
            "evaluated_through": self.evaluated_through,
            "open_spike": None if self.open_spike is None else vars(self.open_spike),
            "ended_spike": None if self.ended_spike is None else vars(self.ended_spike),
            "estimator": self.estimator,
            "history": {str(k): v for k, v in self.history.items()},
            "share": vars(self.share),
        }

    @classmethod
    def from_json(cls, text: str) -> BrandState:
        """A whole state (`to_json`), or a header (`header_json`) with its buckets still to add."""
        return cls.from_data(json.loads(text))

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> BrandState:
        spike, ended = data.get("open_spike"), data.get("ended_spike")
        return cls(
            negative={int(k): int(v) for k, v in (data.get("negative") or {}).items()},
            total={int(k): int(v) for k, v in (data.get("total") or {}).items()},
            samples={
                int(k): [ScoredMention.model_validate(m) for m in v]
                for k, v in (data.get("samples") or {}).items()
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

    def add_bucket(self, bucket: int, text: str) -> None:
        """Put one `brand_bucket` row's data (`bucket_json`) back in place."""
        data = json.loads(text)
        for name, per_bucket in self._plain_buckets().items():
            if name in data:
                per_bucket[bucket] = data[name]
        if "samples" in data:
            self.samples[bucket] = [ScoredMention.model_validate(m) for m in data["samples"]]


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _per_bucket(raw: dict[str, dict[str, int]] | None) -> dict[int, dict[str, int]]:
    """State saved before evidence was kept has none: an empty map, not an error."""
    return {int(k): {str(t): int(n) for t, n in v.items()} for k, v in (raw or {}).items()}


class DetectorStore:
    """Detector state per brand; use `transaction()` around each batch."""

    def __init__(self, db: StateDB | str | Path) -> None:
        self._db, self._owned = open_state(db)
        ensure_schema(self._db, "detector", MIGRATIONS)
        self._rows = StateRows(self._db)

    def load(self, brand: str) -> BrandState:
        return self.load_versioned(brand)[0]

    def load_versioned(self, brand: str) -> tuple[BrandState, int]:
        """The brand's state and the version it was saved at (0: never saved)."""
        row = self._db.execute("SELECT state, version FROM brand_state WHERE brand = ?", (brand,)).fetchone()
        if row is None:
            return BrandState(), 0
        text, version = str(row[0]), int(row[1])
        data = json.loads(text)
        state = BrandState.from_data(data)
        if data.get("layout") == _ROWS_LAYOUT:
            self._rows.read_buckets(brand, state, text, version)
        # else a whole state from before the rows: the next save splits it
        return state, version

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
                (brand, BrandState().header_json()),
            )
            version = self._db.execute(sql, (brand,)).scalar()
        return int(version)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together, or not at all when the block raises.

        After a rollback the rows are not what this store last wrote: every brand's next
        save writes its whole state.
        """
        try:
            with self._db.transaction():
                yield
        except BaseException:
            self._rows.forget()
            raise

    def first_sighting(self, brand: str, mention_id: str, bucket: int) -> bool:
        """True the first time this mention is offered; redeliveries return False."""
        return bool(self.first_sightings([(brand, mention_id, bucket)]))

    def first_sightings(self, offered: Sequence[tuple[str, str, int]]) -> set[tuple[str, str]]:
        """The (brand, mention id) pairs of `offered` (brand, mention id, bucket) seen for the
        first time; redeliveries, and repeats within `offered`, are left out. One statement
        per few hundred mentions rather than one each."""
        first: dict[tuple[str, str], int] = {}
        for brand, mention, bucket in offered:
            first.setdefault((brand, mention), bucket)
        unique = list(first.items())
        fresh: set[tuple[str, str]] = set()
        for start in range(0, len(unique), _SIGHTINGS_PER_STATEMENT):
            chunk = unique[start : start + _SIGHTINGS_PER_STATEMENT]
            rows = self._db.execute(
                "INSERT INTO seen_mention (brand, mention_id, bucket) VALUES "
                + ", ".join(["(?, ?, ?)"] * len(chunk))
                + " ON CONFLICT (brand, mention_id) DO NOTHING RETURNING brand, mention_id",
                [value for (brand, mention), bucket in chunk for value in (brand, mention, bucket)],
            ).fetchall()
            fresh.update((str(brand), str(mention)) for brand, mention in rows)
        return fresh

    def save(self, brand: str, state: BrandState) -> int:
        """Store the state; the version it is saved at (every save bumps it)."""
        return self._rows.write(brand, state, state.header_json())

    def save_changes(self, brand: str, state: BrandState) -> int | None:
        """Store what changed since this store last wrote or read `state`, and the version it is
        saved at; None, and the version kept, when nothing did (so no other copy reloads)."""
        header = state.header_json()
        return None if self._rows.unchanged(brand, state, header) else self._rows.write(brand, state, header)

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
