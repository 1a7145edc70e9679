"""People's "wrong sentiment" corrections, kept as labelled examples.

Every correction is a training example a brand team already paid for: the
alert and search interfaces record them here, in the state database (a small
SQLite file in the data directory, or the shared PostgreSQL database), and
`listener feedback export` writes them out in the format `listener train` reads.
A later correction of the same mention replaces the earlier one, so a slip of
the mouse can be undone.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from listener.errors import ClassifierError
from listener.statedb import StateDB, ensure_schema, open_state

__all__ = ["MIGRATIONS", "Correction", "FeedbackStore"]

_LABELS = ("negative", "neutral", "positive")
_COLUMNS = "mention_id, brand, text, label, model_label, model_id, model_version, corrected_by, corrected_at"
# Schema steps, oldest first; never edit a released step, append a new one.
MIGRATIONS = (
    """
CREATE TABLE IF NOT EXISTS sentiment_feedback (
    mention_id TEXT PRIMARY KEY,
    brand TEXT NOT NULL,
    text TEXT NOT NULL,
    label TEXT NOT NULL CHECK (label IN ('negative', 'neutral', 'positive')),
    model_label TEXT,
    model_id TEXT,
    model_version TEXT,
    corrected_by TEXT,
    corrected_at TEXT NOT NULL
);
""",
)


@dataclass(frozen=True)
class Correction:
    mention_id: str
    brand: str
    text: str
    label: str
    model_label: str | None = None
    model_id: str | None = None
    model_version: str | None = None
    corrected_by: str | None = None
    corrected_at: str = ""


class FeedbackStore:
    """The `sentiment_feedback` table (`<data_dir>/feedback.db` when embedded)."""

    def __init__(self, db: StateDB | str | Path) -> None:
        self._db, self._owned = open_state(db)
        ensure_schema(self._db, "sentiment_feedback", MIGRATIONS)

    def close(self) -> None:
        if self._owned:
            self._db.close()

    def record(self, correction: Correction) -> None:
        if correction.label not in _LABELS:
            raise ClassifierError(f"label {correction.label!r} is not one of {', '.join(_LABELS)}")
        if not correction.text.strip():
            raise ClassifierError("a correction needs the mention's text")
        at = correction.corrected_at or datetime.now(UTC).isoformat(timespec="seconds")
        self._db.execute(
            f"INSERT INTO sentiment_feedback ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (mention_id) DO UPDATE SET brand = excluded.brand, text = excluded.text,"
            " label = excluded.label, model_label = excluded.model_label, model_id = excluded.model_id,"
            " model_version = excluded.model_version, corrected_by = excluded.corrected_by,"
            " corrected_at = excluded.corrected_at",
            (correction.mention_id, correction.brand, correction.text, correction.label,
             correction.model_label, correction.model_id, correction.model_version,
             correction.corrected_by, at),
        )  # fmt: skip

    def corrections(self, brand: str | None = None) -> Iterator[Correction]:
        query = f"SELECT {_COLUMNS} FROM sentiment_feedback"
        params: tuple[str, ...] = ()
        if brand is not None:
            query, params = query + " WHERE brand = ?", (brand,)
        for row in self._db.execute(query + " ORDER BY corrected_at, mention_id", params).rows:
            yield Correction(*row)

    def export(self, out: TextIO, *, fmt: str = "jsonl", brand: str | None = None) -> int:
        """Write corrections as training data (`text`, `label`, plus provenance); returns the count."""
        fields = ["text", "label", "brand", "mention_id", "model_label", "corrected_at"]
        writer = csv.DictWriter(out, fieldnames=fields) if fmt == "csv" else None
        if writer is not None:
            writer.writeheader()
        count = 0
        for c in self.corrections(brand):
            row = {"text": c.text, "label": c.label, "brand": c.brand, "mention_id": c.mention_id,
                   "model_label": c.model_label, "corrected_at": c.corrected_at}
            if writer is not None:
                writer.writerow(row)
            else:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
        return count
