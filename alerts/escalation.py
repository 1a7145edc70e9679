"""The incidents stage: opens incidents from alerts, escalates the unanswered, reminds the open.

It reads the `alerts` topic in its own consumer group (so it sees every alert
whether or not Slack was reachable) and uses the runner's idle ticks to act on
time: when an incident has gone unacknowledged for the brand's response time
it moves to the next level of the escalation chain, mentioning that level's
responder by Slack user id and posting to its channel, and it does so again at
each step until someone acknowledges or the chain ends. While the spike lasts,
a reminder goes into the alert's thread every `remind_every`.

A mention (`<@U…>`) is built here and only here, from a configured user id;
never from anything a mention's author wrote.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from alerts.incidents import Incident
from alerts.mrkdwn import escape
from alerts.response import Desk
from listener.errors import NotifierError
from listener.records import Alert, Record
from pipelines.stage import Output

if TYPE_CHECKING:
    from alerts.digest import WeeklyDigest

__all__ = ["Announcer", "EscalationStage"]

log = logging.getLogger(__name__)


class Announcer(Protocol):
    def post_text(self, channel: str, text: str, thread_ts: str | None = None) -> str | None:
        """Post plain mrkdwn (already escaped); return the message ts."""
        ...


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min"


class EscalationStage:
    name = "incidents"
    input_topic = "alerts"
    idle_tick = 15.0

    def after_commit(self) -> None:
        """Nothing of its own to confirm: it emits nothing."""

    def __init__(
        self, desk: Desk, announcer: Announcer | None = None, digest: WeeklyDigest | None = None
    ) -> None:
        self.desk = desk
        self.announcer = announcer
        self.digest = digest  # the weekly recognition digest rides on the same clock

    def handle(self, records: Sequence[Record]) -> list[Output]:
        for record in records:
            if not isinstance(record, Alert):
                continue
            if not self.desk.admit(record):
                log.info("incidents: %s alert %s is silenced", record.status, record.id)
                continue
            if record.status == "firing":
                self.desk.open(record)
            else:
                self.desk.record(record)
        self.tick()
        return []

    def tick(self) -> None:
        """Escalate and remind whatever is due; a failed post is retried at the next tick."""
        now = self.desk.clock()
        for incident in self.desk.incidents.due(now):
            try:
                if (
                    incident.state == "open"
                    and incident.escalate_at is not None
                    and incident.escalate_at <= now
                ):
                    self._escalate(incident, now)
                if incident.remind_at is not None and incident.remind_at <= now:
                    self._remind(incident, now)
            except NotifierError as exc:
                log.warning(
                    "incidents: cannot reach Slack for incident %d, retrying later: %s", incident.id, exc
                )
        if self.digest is not None:
            for brand in self.digest.run_due(now):
                log.info("incidents: weekly digest for %s done", brand)

    def _escalate(self, incident: Incident, now: float) -> None:
        oncall = self.desk.roster.get(incident.brand)
        level_no = incident.level + 1
        level = oncall.level(level_no) if oncall is not None else None
        if oncall is None or level is None:
            self.desk.incidents.escalated(
                incident.id, incident.level, now, None, "escalation chain exhausted"
            )
            return
        responder = oncall.responder(level.responder)
        mention = f"<@{responder.slack_user}>" if responder is not None else "the escalation channel"
        waited = _minutes(now - incident.opened_at)
        text = (
            f":rotating_light: Incident {incident.id} ({escape(incident.brand, 80)}, rule "
            f"{escape(incident.rule, 80)}) has not been acknowledged after {waited}. "
            f"Escalating to level {level_no}: {mention}, please take it."
        )
        if level.channel is not None:
            self._post(level.channel, text, None)
        if incident.channel is not None and incident.ts is not None:
            self._post(incident.channel, text, incident.ts)
        has_next = oncall.level(level_no + 1) is not None
        next_at = now + oncall.config.response_time if has_next else None
        who = responder.name if responder is not None else level.channel or ""
        self.desk.incidents.escalated(incident.id, level_no, now, next_at, f"level {level_no}: {who}")
        log.warning(
            "incidents: incident %d for %s escalated to level %d", incident.id, incident.brand, level_no
        )

    def _remind(self, incident: Incident, now: float) -> None:
        oncall = self.desk.roster.get(incident.brand)
        every = oncall.config.remind_every if oncall is not None else None
        held = f"acknowledged by {escape(incident.acked_by, 80)}" if incident.acked_by else "not acknowledged"
        text = (
            f"Reminder: incident {incident.id} for {escape(incident.brand, 80)} is still open "
            f"({held}) after {_minutes(now - incident.opened_at)}."
        )
        if incident.channel is not None and incident.ts is not None:
            self._post(incident.channel, text, incident.ts)
        self.desk.incidents.reminded(incident.id, now, None if every is None else now + every)

    def _post(self, channel: str, text: str, thread_ts: str | None) -> None:
        if self.announcer is None:
            log.warning("incidents: %s", text)
            return
        self.announcer.post_text(channel, text, thread_ts)

    def close(self) -> None:
        self.desk.close()
        if self.digest is not None:
            self.digest.close()
