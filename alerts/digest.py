"""The weekly recognition digest: who answered for the brand this week, what, and how fast.

The people who acknowledge an alert at 2 a.m. on a Saturday deserve to be seen
doing it. Once a week (a configured day and UTC hour) each brand's channel gets
a short thank-you that names each person who owned or resolved an incident in
the seven days before, with the incidents and their time to acknowledge and to
resolve (from `IncidentStore.stats`, the same clock `listener incidents stats`
shows).

Names are the only people-facing text. A responder from the on-call config is
mentioned deliberately by their configured Slack id (`<@U…>`); anyone else
(an admin who resolved from a terminal under their login) is escaped plain
text, so a name can never ping a channel. Resolution notes are quoted escaped.

`DigestLog` (state seam component `digests`) records each brand's posted week,
so the monitor's ticks and a restart post it once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alerts.escalation import Announcer
from alerts.incidents import Incident, IncidentStats, IncidentStore
from alerts.mrkdwn import escape, escape_text
from alerts.oncall import OnCall, Roster
from listener.config import BrandConfig
from listener.errors import NotifierError
from listener.statedb import StateDB, ensure_schema, open_state
from listener.textsafe import terminal_safe

__all__ = [
    "MIGRATIONS",
    "WEEK",
    "Digest",
    "DigestLog",
    "Person",
    "WeeklyDigest",
    "build_digest",
    "render_mrkdwn",
    "render_text",
    "week_ending",
]

log = logging.getLogger(__name__)

WEEK = 7 * 86400.0

# DigestLog's schema steps, oldest first; never edit a released step, append a new one.
MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS digest (brand TEXT NOT NULL, week_end REAL NOT NULL, "
    "posted_at REAL NOT NULL, ts TEXT, PRIMARY KEY (brand, week_end))",
    # A row per brand and week to lock while its digest is being posted.
    "CREATE TABLE IF NOT EXISTS digest_claim (brand TEXT NOT NULL, week_end REAL NOT NULL,"
    " PRIMARY KEY (brand, week_end))",
)
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Person:
    """One responder's week: the incidents they owned or resolved, and their clock."""

    name: str
    handled: tuple[Incident, ...]
    stats: IncidentStats | None  # as the owner (who acknowledged); None if they only resolved


@dataclass(frozen=True)
class Digest:
    brand: str
    since: float
    until: float
    opened: int
    unanswered: int  # opened in the week and never acknowledged
    people: tuple[Person, ...]


def week_ending(now: float, day: str = "mon", hour: int = 9) -> float:
    """The most recent scheduled digest instant at or before `now` (UTC)."""
    moment = datetime.fromtimestamp(now, UTC)
    back = (moment.weekday() - _DAYS.index(day)) % 7
    slot = (moment - timedelta(days=back)).replace(hour=hour, minute=0, second=0, microsecond=0)
    if slot.timestamp() > now:
        slot -= timedelta(days=7)
    return slot.timestamp()


def build_digest(store: IncidentStore, brand: str, since: float, until: float) -> Digest:
    """Everyone who acknowledged or resolved an incident opened in [since, until)."""
    incidents = store.opened_between(since, until, brand)
    clock = {s.key: s for s in store.stats("responder", since=since, until=until, brand=brand)}
    names: list[str] = []
    for incident in incidents:
        for name in (incident.acked_by, incident.resolved_by):
            if name and name not in names:
                names.append(name)
    people = tuple(
        Person(
            name,
            tuple(i for i in incidents if name in (i.acked_by, i.resolved_by)),
            clock.get(name),
        )
        for name in names
    )
    # Most incidents first; the order of first response breaks ties (stable sort).
    ranked = tuple(sorted(people, key=lambda p: -len(p.handled)))
    unanswered = sum(1 for i in incidents if i.acked_at is None)
    return Digest(brand, since, until, len(incidents), unanswered, ranked)


def _span(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _who(name: str, oncall: OnCall | None) -> str:
    responder = oncall.responder(name) if oncall is not None else None
    return f"<@{responder.slack_user}>" if responder is not None else f"*{escape(name, 80)}*"


def _incident_line(incident: Incident, fmt: Callable[[str | None, int], str]) -> str:
    ack = _span(None if incident.acked_at is None else incident.acked_at - incident.opened_at)
    done = _span(None if incident.resolved_at is None else incident.resolved_at - incident.opened_at)
    line = (
        f"#{incident.id} {fmt(incident.rule, 60)}: {incident.observed} negative vs "
        f"{incident.expected:.1f} expected; acknowledged in {ack}, resolved in {done}"
    )
    return f"{line}. {fmt(incident.note, 160)}" if incident.note else line


def _period(digest: Digest) -> str:
    start = datetime.fromtimestamp(digest.since, UTC)
    end = datetime.fromtimestamp(digest.until, UTC)
    return f"{start:%a %d %b} – {end:%a %d %b %H:%M} UTC"


def render_mrkdwn(digest: Digest, oncall: OnCall | None) -> str:
    """The Slack message: a thank-you per person, their incidents, and their clock."""
    brand = escape_text(digest.brand, 80)
    lines = [f":raised_hands: *Thank you* from {brand}: incidents {_period(digest)}"]
    if not digest.people:
        lines.append(f"No incident was answered this week ({digest.opened} opened).")
    for person in digest.people:
        pace = ""
        if person.stats is not None:
            pace = (
                f" (median {_span(person.stats.median_ack)} to acknowledge, "
                f"{_span(person.stats.median_resolve)} to resolve)"
            )
        lines.append(f"• {_who(person.name, oncall)} handled {len(person.handled)}{pace}:")
        lines.extend(f"    ◦ {_incident_line(i, escape_text)}" for i in person.handled)
    if digest.unanswered:
        lines.append(f"{digest.unanswered} of {digest.opened} went unacknowledged.")
    return "\n".join(lines)[:39_000]  # Slack's text limit is 40,000 characters


def render_text(digest: Digest) -> str:
    """The same digest for a terminal; every name and note made safe to print."""

    def safe(text: str | None, limit: int) -> str:
        return terminal_safe(text or "", limit)

    lines = [f"{safe(digest.brand, 80)}: incidents {_period(digest)}: {digest.opened} opened"]
    for person in digest.people:
        stats = person.stats
        pace = (
            ""
            if stats is None
            else f" (ack p50 {_span(stats.median_ack)}, resolve p50 {_span(stats.median_resolve)})"
        )
        lines.append(f"  {safe(person.name, 60)} handled {len(person.handled)}{pace}")
        lines.extend(f"    {_incident_line(i, safe)}" for i in person.handled)
    if digest.unanswered:
        lines.append(f"  {digest.unanswered} went unacknowledged")
    return "\n".join(lines) + "\n"


class DigestLog:
    """Which brand's week has been posted, so the digest goes out once per week."""

    def __init__(self, db: StateDB | str | Path) -> None:
        self._db, self._owned = open_state(db)
        ensure_schema(self._db, "digests", MIGRATIONS)

    def posted(self, brand: str, week_end: float) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM digest WHERE brand = ? AND week_end = ?", (brand.casefold(), week_end)
        ).fetchone()
        return row is not None

    @contextmanager
    def claim(self, brand: str, week_end: float) -> Iterator[bool]:
        """Hold the brand's week while its digest is posted; True when it is still to post.

        Two `incidents` copies at the hour take turns on the claim row: the second
        sees the week recorded by the first and posts nothing. Post and `record`
        inside the block, so they commit with the claim; a failed post leaves it due.
        """
        key = (brand.casefold(), week_end)
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO digest_claim (brand, week_end) VALUES (?, ?)"
                " ON CONFLICT (brand, week_end) DO NOTHING",
                key,
            )
            self._db.execute("SELECT 1 FROM digest_claim WHERE brand = ? AND week_end = ? FOR UPDATE", key)
            yield not self.posted(brand, week_end)

    def record(self, brand: str, week_end: float, now: float, ts: str | None) -> None:
        self._db.execute(
            "INSERT INTO digest (brand, week_end, posted_at, ts) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (brand, week_end) DO NOTHING",
            (brand.casefold(), week_end, now, ts),
        )

    def close(self) -> None:
        if self._owned:
            self._db.close()


class WeeklyDigest:
    """Posts each brand's digest once its weekly slot has passed; call `run_due` on a tick.

    `brands` may be a callable (`LiveBrands.current`), read at each run, so a
    channel or rota saved in the web app is where the next digest goes.
    """

    def __init__(
        self,
        incidents: IncidentStore,
        brands: Sequence[BrandConfig] | Callable[[], Sequence[BrandConfig]],
        poster: Announcer,
        digest_log: DigestLog,
        default_channel: str | None = None,
    ) -> None:
        self.incidents = incidents
        self._brands = brands
        self.roster = Roster(brands)
        self.poster = poster
        self.log = digest_log
        self.default_channel = default_channel

    @property
    def brands(self) -> list[BrandConfig]:
        """The brands with a digest, as they are now."""
        brands = self._brands() if callable(self._brands) else self._brands
        return [b for b in brands if b.oncall is not None and b.oncall.digest]

    def run_due(self, now: float) -> list[str]:
        """Brands whose digest was posted (or found empty) on this call; failures retry next call."""
        done: list[str] = []
        for brand in self.brands:
            assert brand.oncall is not None
            end = week_ending(now, brand.oncall.digest_day, brand.oncall.digest_hour)
            channel = brand.slack_channel or self.default_channel
            if channel is None or self.log.posted(brand.name, end):
                continue
            with self.log.claim(brand.name, end) as due:
                if due and self._post(brand, channel, end, now):
                    done.append(brand.name)
        return done

    def _post(self, brand: BrandConfig, channel: str, end: float, now: float) -> bool:
        """Post (or, for a week without incidents, only record) one brand's digest."""
        digest = build_digest(self.incidents, brand.name, end - WEEK, end)
        ts: str | None = None
        if digest.opened:  # a week without incidents thanks nobody; it is recorded all the same
            try:
                ts = self.poster.post_text(channel, render_mrkdwn(digest, self.roster.get(brand.name)))
            except NotifierError as exc:
                log.warning("digest: cannot post %s's weekly digest, will retry: %s", brand.name, exc)
                return False
        self.log.record(brand.name, end, now, ts)
        return True

    def close(self) -> None:
        self.log.close()
