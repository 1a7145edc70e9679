"""Incidents: the person-facing side of an alert, on the state seam (component `incidents`).

A firing alert opens exactly one incident (the alert id is unique, so the bus
redelivering the alert, or two stages both seeing it, changes nothing). An
incident moves open -> acknowledged -> resolved, and each step records who and
when; whoever acknowledges owns it, and only the owner or a brand admin may
resolve it, with a free-text note. Every event (opening, updates, escalations,
reminders, notes, feedback) is appended to an audit trail that is never edited.

Times are epoch seconds passed in by the caller, so escalation and the stats
can be tested with a clock that jumps fifteen minutes at will.

Several processes act on one incident (the web app, a Slack button, two
`notify` copies opening it): each state change reads the row `FOR UPDATE` in
its transaction, so the second of two acknowledgements sees the first's owner.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from listener.errors import IncidentError
from listener.records import Alert
from listener.statedb import StateDB, StateRow, ensure_schema, open_state

__all__ = ["MIGRATIONS", "Event", "Incident", "IncidentStats", "IncidentStore", "State"]

State = Literal["open", "acknowledged", "resolved"]

# Schema steps, oldest first; never edit a released step, append a new one.
MIGRATIONS = (
    """
CREATE TABLE IF NOT EXISTS incident (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL UNIQUE,
    brand TEXT NOT NULL,
    rule TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    opened_at REAL NOT NULL,
    responder TEXT,
    acked_by TEXT,
    acked_at REAL,
    resolved_by TEXT,
    resolved_at REAL,
    note TEXT,
    level INTEGER NOT NULL DEFAULT 0,
    escalate_at REAL,
    remind_at REAL,
    spike_ended_at REAL,
    observed INTEGER NOT NULL,
    expected REAL NOT NULL,
    channel TEXT,
    ts TEXT
);
CREATE INDEX IF NOT EXISTS incident_state ON incident (state, brand);
CREATE TABLE IF NOT EXISTS event (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident INTEGER NOT NULL REFERENCES incident (id),
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS event_incident ON event (incident, id);
""",
)


@dataclass(frozen=True)
class Incident:
    id: int
    alert_id: str
    brand: str
    rule: str
    state: State
    opened_at: float
    responder: str | None
    acked_by: str | None
    acked_at: float | None
    resolved_by: str | None
    resolved_at: float | None
    note: str | None
    level: int
    escalate_at: float | None
    remind_at: float | None
    spike_ended_at: float | None
    observed: int
    expected: float
    channel: str | None
    ts: str | None

    @property
    def owner(self) -> str | None:
        """Whoever acknowledged it answers for it until it is resolved."""
        return self.acked_by


@dataclass(frozen=True)
class Event:
    incident: int
    at: float
    kind: str
    actor: str | None
    detail: str


@dataclass(frozen=True)
class IncidentStats:
    """The response clock for one brand or one responder (seconds; None when nothing to measure)."""

    key: str
    incidents: int
    acknowledged: int
    resolved: int
    median_ack: float | None
    worst_ack: float | None
    median_resolve: float | None
    not_real: int


class IncidentStore:
    """All incident state; every method commits before it returns."""

    def __init__(self, db: StateDB | str | Path) -> None:
        self._db, self._owned = open_state(db)
        ensure_schema(self._db, "incidents", MIGRATIONS)

    # --- opening and the alert's life -------------------------------------------------

    def open_for(
        self,
        alert: Alert,
        now: float,
        *,
        responder: str | None = None,
        escalate_at: float | None = None,
        remind_at: float | None = None,
    ) -> tuple[Incident, bool]:
        """The incident of a firing alert, opened if new; `(incident, opened_now)`.

        Two processes opening one alert at once both get the same incident: the
        alert id is unique, and the second insert does nothing.
        """
        with self._db.transaction():
            inserted = self._db.execute(
                "INSERT INTO incident (alert_id, brand, rule, state, opened_at, responder, escalate_at,"
                " remind_at, observed, expected) VALUES (?, ?, ?, 'open', ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (alert_id) DO NOTHING",
                (
                    alert.id,
                    alert.brand,
                    alert.rule,
                    now,
                    responder,
                    escalate_at,
                    remind_at,
                    alert.observed,
                    alert.expected,
                ),
            )
            opened = inserted.rowcount == 1
            row = self._db.execute(
                "SELECT * FROM incident WHERE alert_id = ? FOR UPDATE", (alert.id,)
            ).fetchone()
            assert row is not None
            incident = _incident(row)
            if opened:
                detail = f"{alert.observed} negative vs {alert.expected:.1f} expected"
                self._event(incident.id, now, "opened", responder, detail)
        return incident, opened

    def record_update(self, alert: Alert, now: float, *, remind_at: float | None = None) -> Incident | None:
        """A rising count or the spike's end, for the incident's trail (not a state change).

        An update after the spike had ended is the spike coming back within its
        cool-down: the incident's spike is live again, and its reminders resume
        at `remind_at` (the rota's next reminder) unless the incident is resolved.
        """
        with self._db.transaction():
            row = self._db.execute(
                "SELECT id, spike_ended_at FROM incident WHERE alert_id = ? FOR UPDATE", (alert.id,)
            ).fetchone()
            if row is None:
                return None
            incident_id, returned = int(row[0]), row[1] is not None and alert.status != "resolved"
            if alert.status == "resolved":
                self._db.execute(
                    "UPDATE incident SET spike_ended_at = COALESCE(spike_ended_at, ?), remind_at = NULL"
                    " WHERE id = ?",
                    (now, incident_id),
                )
                self._event(incident_id, now, "spike-ended", None, f"back to {alert.observed}")
            else:
                self._db.execute(
                    "UPDATE incident SET observed = CASE WHEN observed < ? THEN ? ELSE observed END,"
                    " spike_ended_at = NULL,"
                    " remind_at = CASE WHEN spike_ended_at IS NOT NULL AND state != 'resolved' THEN ?"
                    " ELSE remind_at END WHERE id = ?",
                    (alert.observed, alert.observed, remind_at, incident_id),
                )
                if returned:
                    self._event(incident_id, now, "spike-returned", None, f"{alert.observed} negative again")
                self._event(
                    incident_id, now, "update", None, f"{alert.observed} negative (update {alert.revision})"
                )
        return self.get(incident_id)

    def attach_message(self, alert_id: str, channel: str, ts: str) -> None:
        """Where the alert was posted, so escalations thread under it and buttons update it."""
        self._db.execute(
            "UPDATE incident SET channel = COALESCE(channel, ?), ts = COALESCE(ts, ?) WHERE alert_id = ?",
            (channel, ts, alert_id),
        )

    # --- people ---------------------------------------------------------------------------

    def acknowledge(self, incident_id: int, actor: str, now: float) -> Incident:
        """The first acknowledgement takes ownership; a repeat by the owner is a no-op."""
        with self._db.transaction():
            incident = self._require(incident_id, lock=True)
            if incident.state == "acknowledged" and incident.acked_by == actor:
                return incident
            if incident.state != "open":
                raise IncidentError(
                    f"incident {incident_id} is {incident.state}"
                    + (f" (owned by {incident.acked_by})" if incident.acked_by else "")
                )
            self._db.execute(
                "UPDATE incident SET state = 'acknowledged', acked_by = ?, acked_at = ?, escalate_at = NULL"
                " WHERE id = ?",
                (actor, now, incident_id),
            )
            self._event(incident_id, now, "acknowledged", actor, "")
        return self._require(incident_id)

    def resolve(
        self, incident_id: int, actor: str, note: str, now: float, *, admins: Collection[str] = ()
    ) -> Incident:
        """Only the owner (or an admin) closes it, and says how it was handled."""
        if not note.strip():
            raise IncidentError("a resolution needs a note saying what was done")
        with self._db.transaction():
            incident = self._require(incident_id, lock=True)
            if incident.state == "resolved":
                raise IncidentError(f"incident {incident_id} was already resolved by {incident.resolved_by}")
            admin = actor in admins
            if incident.state == "open" and not admin:
                raise IncidentError(
                    f"incident {incident_id} is not acknowledged; acknowledge it to own it first"
                )
            if incident.acked_by not in (None, actor) and not admin:
                raise IncidentError(
                    f"incident {incident_id} is owned by {incident.acked_by};"
                    " only they or a brand admin may resolve it"
                )
            self._db.execute(
                "UPDATE incident SET state = 'resolved', resolved_by = ?, resolved_at = ?, note = ?,"
                " escalate_at = NULL, remind_at = NULL WHERE id = ?",
                (actor, now, note, incident_id),
            )
            self._event(incident_id, now, "resolved", actor, note)
        return self._require(incident_id)

    def add_event(self, incident_id: int, now: float, kind: str, actor: str | None, detail: str = "") -> None:
        """Notes, feedback, mutes: the trail records them; the state does not change."""
        self._require(incident_id)
        self._event(incident_id, now, kind, actor, detail)

    # --- escalation and reminders (driven by `alerts.escalation`) ------------------------

    def due(self, now: float) -> list[Incident]:
        """Unresolved incidents whose escalation or reminder time has come."""
        rows = self._db.execute(
            "SELECT * FROM incident WHERE state != 'resolved' AND"
            " ((escalate_at IS NOT NULL AND escalate_at <= ?) OR (remind_at IS NOT NULL AND remind_at <= ?))"
            " ORDER BY id",
            (now, now),
        ).fetchall()
        return [_incident(row) for row in rows]

    def escalated(self, incident_id: int, level: int, now: float, next_at: float | None, detail: str) -> None:
        """The next level was called; an incident acknowledged meanwhile keeps its state."""
        with self._db.transaction():
            self._require(incident_id, lock=True)
            self._db.execute(
                "UPDATE incident SET level = ?, escalate_at = ? WHERE id = ? AND state = 'open'",
                (level, next_at, incident_id),
            )
            self._event(incident_id, now, "escalated", None, detail)

    def reminded(self, incident_id: int, now: float, next_at: float | None) -> None:
        with self._db.transaction():
            self._require(incident_id, lock=True)
            self._db.execute("UPDATE incident SET remind_at = ? WHERE id = ?", (next_at, incident_id))
            self._event(incident_id, now, "reminded", None, "")

    # --- reading --------------------------------------------------------------------------

    def get(self, incident_id: int) -> Incident | None:
        row = self._db.execute("SELECT * FROM incident WHERE id = ?", (incident_id,)).fetchone()
        return None if row is None else _incident(row)

    def by_alert(self, alert_id: str) -> Incident | None:
        row = self._db.execute("SELECT * FROM incident WHERE alert_id = ?", (alert_id,)).fetchone()
        return None if row is None else _incident(row)

    def find(self, *, state: str | None = None, brand: str | None = None, limit: int = 50) -> list[Incident]:
        where, args = _filters(state=state, brand=brand)
        rows = self._db.execute(
            f"SELECT * FROM incident {where} ORDER BY id DESC LIMIT ?", (*args, limit)
        ).fetchall()
        return [_incident(row) for row in rows]

    def events(self, incident_id: int) -> list[Event]:
        rows = self._db.execute(
            "SELECT incident, at, kind, actor, detail FROM event WHERE incident = ? ORDER BY id",
            (incident_id,),
        ).fetchall()
        return [Event(int(r[0]), float(r[1]), str(r[2]), r[3], str(r[4])) for r in rows]

    def stats(
        self,
        by: Literal["brand", "responder"],
        *,
        since: float = 0.0,
        until: float | None = None,
        brand: str | None = None,
    ) -> list[IncidentStats]:
        """Time to acknowledge and to resolve; per responder means per person who acknowledged."""
        rows = self.opened_between(since, until, brand)
        flagged = {
            int(r[0])
            for r in self._db.execute(
                "SELECT DISTINCT incident FROM event WHERE kind = 'not-real'"
            ).fetchall()
        }
        groups: dict[str, list[Incident]] = {}
        for incident in rows:
            key = incident.brand if by == "brand" else (incident.acked_by or "(nobody)")
            groups.setdefault(key, []).append(incident)
        return [_summarise(key, group, flagged) for key, group in sorted(groups.items())]

    def opened_between(
        self, since: float = 0.0, until: float | None = None, brand: str | None = None
    ) -> list[Incident]:
        """Incidents opened in [since, until), oldest first; one brand when given."""
        where, args = _filters(brand=brand)
        where = f"{where} AND" if where else "WHERE"
        upper, bound = ("", ()) if until is None else (" AND opened_at < ?", (until,))
        rows = self._db.execute(
            f"SELECT * FROM incident {where} opened_at >= ?{upper} ORDER BY id", (*args, since, *bound)
        ).fetchall()
        return [_incident(row) for row in rows]

    def close(self) -> None:
        if self._owned:
            self._db.close()

    # --- internals ------------------------------------------------------------------------

    def _require(self, incident_id: int, *, lock: bool = False) -> Incident:
        """The incident; with `lock`, its row is held until the caller's transaction ends."""
        sql = "SELECT * FROM incident WHERE id = ?" + (" FOR UPDATE" if lock else "")
        row = self._db.execute(sql, (incident_id,)).fetchone()
        if row is None:
            raise IncidentError(f"no incident {incident_id}")
        return _incident(row)

    def _event(self, incident_id: int, at: float, kind: str, actor: str | None, detail: str) -> None:
        self._db.execute(
            "INSERT INTO event (incident, at, kind, actor, detail) VALUES (?, ?, ?, ?, ?)",
            (incident_id, at, kind, actor, detail),
        )


def _filters(**fields: str | None) -> tuple[str, tuple[Any, ...]]:
    """A WHERE clause over the given fields; brands match whatever their case."""
    parts = [
        (f"{name} = ?" if name != "brand" else "lower(brand) = lower(?)", value)
        for name, value in fields.items()
        if value is not None
    ]
    if not parts:
        return "", ()
    return "WHERE " + " AND ".join(p for p, _ in parts), tuple(v for _, v in parts)


def _incident(row: StateRow) -> Incident:
    return Incident(**{name: row[name] for name in Incident.__dataclass_fields__})


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _summarise(key: str, group: list[Incident], flagged: set[int]) -> IncidentStats:
    acks = [i.acked_at - i.opened_at for i in group if i.acked_at is not None]
    resolves = [i.resolved_at - i.opened_at for i in group if i.resolved_at is not None]
    return IncidentStats(
        key=key,
        incidents=len(group),
        acknowledged=len(acks),
        resolved=len(resolves),
        median_ack=_median(acks),
        worst_ack=max(acks) if acks else None,
        median_resolve=_median(resolves),
        not_real=sum(1 for i in group if i.id in flagged),
    )
