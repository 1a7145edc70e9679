"""Slack request signatures already acted on, shared by every copy of the button endpoint.

Slack signs each request with a timestamp; a request replayed within the
tolerance window carries a valid signature, so the endpoint must remember
the signatures it accepted. Kept in the state database rather than in one
process, so a replay sent to another `web` or `interactivity` copy is refused
too.
"""

from __future__ import annotations

from pathlib import Path

from listener.statedb import StateDB, ensure_schema, open_state

__all__ = ["MIGRATIONS", "ReplayLog"]

# Schema steps, oldest first; never edit a released step, append a new one.
MIGRATIONS = (
    """
CREATE TABLE IF NOT EXISTS slack_replay (signature TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS slack_replay_at ON slack_replay (at);
""",
)


class ReplayLog:
    """`first_time` is True once per signature within `tolerance` seconds, across processes."""

    def __init__(self, db: StateDB | str | Path = ":memory:", *, tolerance: float = 300.0) -> None:
        self._db, self._owned = open_state(db)
        ensure_schema(self._db, "slack_replays", MIGRATIONS)
        self.tolerance = tolerance

    def first_time(self, signature: str, now: float) -> bool:
        with self._db.transaction():
            # Older signatures can no longer pass the timestamp check; forget them.
            self._db.execute("DELETE FROM slack_replay WHERE at < ?", (now - self.tolerance,))
            inserted = self._db.execute(
                "INSERT INTO slack_replay (signature, at) VALUES (?, ?) ON CONFLICT (signature) DO NOTHING",
                (signature, now),
            )
        return inserted.rowcount == 1

    def close(self) -> None:
        if self._owned:
            self._db.close()
