"""A brand's detector state as rows: its header in `brand_state`, each bucket's data in `brand_bucket`.

A batch changes a bucket or two of the ~65 a brand keeps (1-minute buckets,
a 1-hour baseline), so rewriting the whole state (100-180 KB of JSON) on every
batch made detect slower with every brand added. The detector marks the
buckets it changes (`BrandState.dirty`); a save here writes the header, which
bumps the brand's version as every save must, and then only those buckets.

That is only right while the rows hold what this store last wrote for the
very same state object. So each brand's last write (or read) is remembered
with a weak reference to its state and the version it left; a different
object (a state built afresh, or reloaded), another copy's write in between
(the version moved by more than this save), or a rolled-back transaction
(`forget`) makes the next save write every bucket, never a mix of two states.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from listener.statedb import StateDB

if TYPE_CHECKING:
    from alerts.state import BrandState

__all__ = ["StateRows"]

_NO_BUCKET = 2**62  # above any bucket index: `bucket < _NO_BUCKET` is every bucket


@dataclass
class _Written:
    """What this store last wrote (or read) for one brand."""

    state: weakref.ref[BrandState]
    header: str
    version: int
    floor: int | None  # the oldest bucket the rows hold (None: none)


class StateRows:
    """Reads and writes brands' states as rows of one database, inside the caller's transaction."""

    def __init__(self, db: StateDB) -> None:
        self._db = db
        self._written: dict[str, _Written] = {}

    def read_buckets(self, brand: str, state: BrandState, header: str, version: int) -> None:
        """Put the brand's bucket rows into `state`, read from its header row at `version`."""
        rows = self._db.execute(
            "SELECT bucket, data FROM brand_bucket WHERE brand = ? ORDER BY bucket", (brand,)
        ).fetchall()
        for bucket, data in rows:
            state.add_bucket(int(bucket), str(data))
        floor = int(rows[0][0]) if rows else None
        self._written[brand] = _Written(weakref.ref(state), header, version, floor)

    def unchanged(self, brand: str, state: BrandState, header: str) -> bool:
        """True when the rows already hold `state`, as far as this store knows."""
        written = self._written.get(brand)
        return (
            written is not None and written.state() is state and written.header == header and not state.dirty
        )

    def forget(self) -> None:
        """The transaction rolled back: no brand's rows are known to hold what was written."""
        self._written.clear()

    def write(self, brand: str, state: BrandState, header: str) -> int:
        """The header (its version bumped), then the buckets: only the dirty ones when the rows
        hold what this store last wrote for `state` and no one else wrote since, else all."""
        written = self._written.get(brand)
        version = int(
            self._db.execute(
                "INSERT INTO brand_state (brand, state, version) VALUES (?, ?, 1) ON CONFLICT (brand)"
                " DO UPDATE SET state = excluded.state, version = brand_state.version + 1 RETURNING version",
                (brand, header),
            ).scalar()
        )
        kept = state.buckets()
        floor = min(kept) if kept else None
        if written is not None and written.state() is state and written.version + 1 == version:
            self._write_dirty(brand, state, kept, written.floor, floor)
        else:
            self._db.execute("DELETE FROM brand_bucket WHERE brand = ?", (brand,))
            self._upsert(brand, state, kept)
        state.dirty.clear()
        self._written[brand] = _Written(weakref.ref(state), header, version, floor)
        return version

    def _write_dirty(
        self, brand: str, state: BrandState, kept: set[int], was: int | None, floor: int | None
    ) -> None:
        """Changed buckets rewritten, emptied ones deleted; those pruned off the old end go by
        range. Below `floor` (the oldest bucket kept) no row is left, whatever was marked."""
        if was is not None and (floor is None or floor > was):
            limit = _NO_BUCKET if floor is None else floor
            self._db.execute("DELETE FROM brand_bucket WHERE brand = ? AND bucket < ?", (brand, limit))
        gone = [(brand, b) for b in state.dirty - kept if floor is not None and b > floor]
        if gone:
            self._db.executemany("DELETE FROM brand_bucket WHERE brand = ? AND bucket = ?", gone)
        self._upsert(brand, state, state.dirty & kept)

    def _upsert(self, brand: str, state: BrandState, buckets: set[int]) -> None:
        rows = [(brand, b, state.bucket_json(b)) for b in sorted(buckets)]
        if rows:
            self._db.executemany(
                "INSERT INTO brand_bucket (brand, bucket, data) VALUES (?, ?, ?)"
                " ON CONFLICT (brand, bucket) DO UPDATE SET data = excluded.data",
                rows,
            )
