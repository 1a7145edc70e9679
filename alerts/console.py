"""The console notifier: alerts as plain text on a stream (stdout by default).

Useful for the embedded demo and as a last-resort sink. Everything from a
mention is cleaned by `alerts.render` before it is written, so hostile text
cannot move the cursor, recolour the terminal or set its title.
"""

from __future__ import annotations

import sys
from typing import TextIO

from alerts.render import render_text
from listener.errors import NotifierError
from listener.records import Alert

__all__ = ["ConsoleNotifier"]


class ConsoleNotifier:
    """Satisfies `alerts.notifier.Notifier`; a terminal has no threads and no channels."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout

    def send(self, alert: Alert) -> str | None:
        self._write(render_text(alert))
        return None

    def reply(self, alert: Alert, thread_ref: str) -> str | None:
        """Printed as a follow-up: marked as continuing the alert above, not as a new one."""
        self._write("↳ " + render_text(alert))
        return None

    def channel(self, alert: Alert) -> str | None:
        return None

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError) as exc:  # a broken pipe; a closed stream raises ValueError
            raise NotifierError(f"cannot write alert to console: {exc}", retryable=False) from exc
