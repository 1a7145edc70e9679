"""The `Notifier` seam: deliver an alert, and its follow-ups, to people.

Every channel (console, Slack, email, a paging webhook) is one engine. The
notify step calls exactly these three methods and no others, so an engine that
implements them can be listed in the deployment without the step knowing it.
Posting free text (escalations, source notices) is a different seam,
`alerts.escalation.Announcer`, which only chat engines implement.
"""

from __future__ import annotations

from typing import Protocol

from listener.records import Alert

__all__ = ["Notifier"]


class Notifier(Protocol):
    def send(self, alert: Alert) -> str | None:
        """Deliver; return a delivery reference (e.g. Slack's message ts) if there is one.

        Raises `NotifierError` with `retryable` set when delivery failed.
        """
        ...

    def reply(self, alert: Alert, thread_ref: str) -> str | None:
        """Deliver a follow-up (update, resolution) under the message `send` returned as
        `thread_ref`, where the engine threads; elsewhere as a message of its own. Returns
        and raises as `send` does."""
        ...

    def channel(self, alert: Alert) -> str | None:
        """Where `send` delivers this alert (a Slack channel), recorded with the incident so
        later actions find the message; None for an engine without channels."""
        ...
