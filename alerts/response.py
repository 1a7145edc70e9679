"""The response desk: incidents, silences and the on-call roster behind one set of verbs.

The notify stage, the escalation stage, the CLI, the web app and the Slack
endpoint all act on the same workflow; they go through a `Desk` so that the
rules (a muted spike opens no incident, the owner or an admin resolves,
identities are compared as responder names, every act is on the audit trail)
live in one place. Every verb is idempotent where the bus can
repeat it: opening an incident twice for one alert opens one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from alerts.incidents import Incident, IncidentStore
from alerts.oncall import Roster
from alerts.silences import Silence, SilenceStore
from listener.config import Config
from listener.datadir import StateDatabases
from listener.errors import IncidentError
from listener.records import Alert

__all__ = ["MUTE_BUTTON_SECONDS", "Desk"]

MUTE_BUTTON_SECONDS = 3600.0


class Desk:
    def __init__(
        self,
        incidents: IncidentStore,
        silences: SilenceStore,
        roster: Roster,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.incidents = incidents
        self.silences = silences
        self.roster = roster
        self.clock = clock

    @classmethod
    def from_state(
        cls, state: StateDatabases, config: Config, clock: Callable[[], float] = time.time
    ) -> Desk:
        """The desk over the state databases, its roster following rotas saved in the web app.

        Archived brands keep their rota here: their open incidents are still
        escalated, reminded and resolved under it. The databases are `state`'s:
        closing the desk leaves them open for the other stores of the process.
        """
        from listener.brand_settings import LiveBrands

        brands = LiveBrands(config.brands, state.db("brand_settings"), archived=True)
        return cls(
            IncidentStore(state.db("incidents")),
            SilenceStore(state.db("silences")),
            Roster(brands.current),
            clock,
        )

    def admit(self, alert: Alert) -> bool:
        """False for a spike that fired under a silence (and for its updates and end)."""
        if self.silences.suppressed(alert.id):
            return False
        if alert.status != "firing":
            return True
        # Judged at the alert's creation time, so every stage reaches the same verdict.
        silence = self.silences.matching(alert.brand, alert.rule, alert.created.timestamp())
        if silence is None:
            return True
        self.silences.suppress(alert.id, silence, self.clock())
        return False

    def open(self, alert: Alert) -> Incident:
        """The alert's incident, assigned to whoever is on call when it opens."""
        now = self.clock()
        oncall = self.roster.get(alert.brand)
        if oncall is None:
            incident, _ = self.incidents.open_for(alert, now)
            return incident
        incident, _ = self.incidents.open_for(
            alert,
            now,
            responder=oncall.on_call(now).name,
            escalate_at=now + oncall.config.response_time if oncall.config.escalation else None,
            remind_at=now + oncall.config.remind_every,
        )
        return incident

    def record(self, alert: Alert) -> Incident | None:
        """An update or the end of an open alert's spike, on its incident's trail; a spike that
        comes back within its cool-down brings back the rota's reminders."""
        now = self.clock()
        oncall = self.roster.get(alert.brand)
        remind_at = None if oncall is None else now + oncall.config.remind_every
        return self.incidents.record_update(alert, now, remind_at=remind_at)

    def incident(self, ref: str) -> Incident:
        """By number (`12`) or by alert id (what Slack buttons carry)."""
        found = self.incidents.get(int(ref)) if ref.isdigit() else self.incidents.by_alert(ref)
        if found is None:
            raise IncidentError(f"no incident {ref!r}")
        return found

    def acknowledge(self, ref: str, who: str) -> Incident:
        incident = self.incident(ref)
        return self.incidents.acknowledge(
            incident.id, self.roster.identify(incident.brand, who), self.clock()
        )

    def resolve(self, ref: str, who: str, note: str, *, admin: bool = False) -> Incident:
        """The owner or a brand admin resolves; `admin` when the caller vouches for `who`
        (a web account with the admin role)."""
        incident = self.incident(ref)
        actor = self.roster.identify(incident.brand, who)
        admins = self.roster.admins(incident.brand) | ({actor} if admin else set())
        return self.incidents.resolve(incident.id, actor, note, self.clock(), admins=admins)

    def note(self, ref: str, who: str, text: str) -> Incident:
        """A free-text line on the trail; the incident's state does not change."""
        incident = self.incident(ref)
        if not text.strip():
            raise IncidentError("a note needs some text")
        actor = self.roster.identify(incident.brand, who)
        self.incidents.add_event(incident.id, self.clock(), "note", actor, text.strip()[:4000])
        return self.incident(ref)

    def not_real(self, ref: str, who: str, reason: str = "") -> Incident:
        """Feedback on the rule's precision; the incident's state is left to its owner."""
        incident = self.incident(ref)
        actor = self.roster.identify(incident.brand, who)
        self.incidents.add_event(
            incident.id, self.clock(), "not-real", actor, f"rule {incident.rule}: {reason}"
        )
        return incident

    def mute(self, ref: str, who: str, seconds: float = MUTE_BUTTON_SECONDS) -> Silence:
        """Mute the incident's brand and rule; the trail says who did it."""
        incident = self.incident(ref)
        actor = self.roster.identify(incident.brand, who)
        now = self.clock()
        silence = self.silences.add(
            incident.brand,
            seconds,
            now=now,
            by=actor,
            rule=incident.rule,
            reason=f"from incident {incident.id}",
        )
        self.incidents.add_event(incident.id, now, "muted", actor, f"silence {silence.id} for {seconds:.0f}s")
        return silence

    def close(self) -> None:
        self.incidents.close()
        self.silences.close()
