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
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout

    def send(self, alert: Alert) -> str | None:
        try:
            self.stream.write(render_text(alert))
            self.stream.flush()
        except OSError as exc:
            raise NotifierError(f"cannot write alert to console: {exc}", retryable=False) from exc
        return None
