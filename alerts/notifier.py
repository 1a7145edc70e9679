"""The `Notifier` seam: deliver an alert to people."""

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
