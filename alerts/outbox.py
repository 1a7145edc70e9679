"""The notification outbox: what was sent, where, and what it threads under.

The alert bus redelivers after a crash, so the notify stage must know, across
restarts, which `(alert id, status, notifier)` already went out; otherwise a
restart posts the same spike twice. Each delivery is recorded as `sending`
before the call and `sent` (with the delivery reference, e.g. Slack's `ts`)
after it. A row left at `sending` means the process died mid-call: the
outcome is unknown, and the stage sends again (an alert may be duplicated in
that narrow case, but it is never lost), logging that it does so.

Two `notify` copies on one shared database (a Kafka rebalance hands an alert
to a second copy before the first has committed its offset) must not both
post it: `claim` locks the delivery's row for the length of the delivery, so
exactly one copy sends and the other finds it `sent`. The row lock is held
across the notifier's call (a Slack post, with its retries); that is
acceptable because only the one delivery's row is locked and the other copy
would otherwise post a duplicate. A copy killed mid-call rolls its
transaction back, releasing the lock, and the next claimant sends again
(at-least-once). The attempts counter is written before the lock, in its own
commit, so that claimant knows and says the message "may have been sent
before".

The firing message's reference is what later messages for the same alert
(the resolution) reply to, so a spike's story stays in one Slack thread.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from listener.statedb import StateDB, ensure_schema, open_state

__all__ = ["MIGRATIONS", "Claim", "Outbox"]

# Schema steps, oldest first; never edit a released step, append a new one.
MIGRATIONS = (
    """
CREATE TABLE IF NOT EXISTS outbox (
    alert_id TEXT NOT NULL,
    status TEXT NOT NULL,
    notifier INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('sending', 'sent')),
    ref TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL,
    PRIMARY KEY (alert_id, status, notifier)
);
""",
)


@dataclass(frozen=True)
class Claim:
    """What the claimant found under the row lock."""

    already_sent: bool
    attempts: int  # claims so far, this one included; above 1, an earlier one may have sent it


class Outbox:
    """One row per delivery; every write commits at once, except `sent` inside a `claim`.

    On a shared database two `notify` copies may handle one alert during a
    rebalance: `claim` lets exactly one of them send it.
    """

    def __init__(self, db: StateDB | str | Path) -> None:
        self._db, self._owned = open_state(db)
        ensure_schema(self._db, "outbox", MIGRATIONS)

    def state(self, alert_id: str, status: str, notifier: int) -> str | None:
        row = self._db.execute(
            "SELECT state FROM outbox WHERE alert_id = ? AND status = ? AND notifier = ?",
            (alert_id, status, notifier),
        ).fetchone()
        return None if row is None else str(row[0])

    def sending(self, alert_id: str, status: str, notifier: int) -> None:
        """Count one more attempt at a delivery (the row is created at `sending`)."""
        self._db.execute(
            "INSERT INTO outbox (alert_id, status, notifier, state, attempts, updated) "
            "VALUES (?, ?, ?, 'sending', 1, ?) ON CONFLICT (alert_id, status, notifier) "
            "DO UPDATE SET attempts = outbox.attempts + 1, updated = excluded.updated",
            (alert_id, status, notifier, time.time()),
        )

    @contextmanager
    def claim(self, alert_id: str, status: str, notifier: int) -> Iterator[Claim]:
        """Hold one delivery's row until the block ends; deliver only when not `already_sent`.

        Call `sent` inside the block: it commits with the claim. An exception in
        the block rolls back, so the delivery stays unsent and the next claim sends.
        """
        self.sending(alert_id, status, notifier)  # its own commit: the count survives a rollback
        with self._db.transaction():
            row = self._db.execute(
                "SELECT state, attempts FROM outbox WHERE alert_id = ? AND status = ? AND notifier = ?"
                " FOR UPDATE",
                (alert_id, status, notifier),
            ).fetchone()
            assert row is not None  # written just above; outbox rows are only deleted when old
            yield Claim(already_sent=row["state"] == "sent", attempts=int(row["attempts"]))

    def sent(self, alert_id: str, status: str, notifier: int, ref: str | None) -> None:
        self._db.execute(
            "UPDATE outbox SET state = 'sent', ref = ?, updated = ? "
            "WHERE alert_id = ? AND status = ? AND notifier = ?",
            (ref, time.time(), alert_id, status, notifier),
        )

    def ref(self, alert_id: str, status: str, notifier: int) -> str | None:
        """The delivery reference of a sent message (Slack's ts), to thread replies under it."""
        row = self._db.execute(
            "SELECT ref FROM outbox WHERE alert_id = ? AND status = ? AND notifier = ? AND state = 'sent'",
            (alert_id, status, notifier),
        ).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def forget_before(self, epoch: float) -> None:
        """Old deliveries can no longer be redelivered by the bus (its retention is shorter)."""
        self._db.execute("DELETE FROM outbox WHERE updated < ?", (epoch,))

    def close(self) -> None:
        if self._owned:
            self._db.close()
