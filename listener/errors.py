"""One exception tree for the whole product.

Callers catch `ListenerError` at the edges (CLI, stage runner) and report the
message; the subclasses say which part failed so the runner can decide whether
to retry, skip the record or stop.
"""

from __future__ import annotations

__all__ = [
    "BusError",
    "ClassifierError",
    "ConfigError",
    "IncidentError",
    "ListenerError",
    "NotifierError",
    "QuerySyntaxError",
    "SourceError",
    "StateError",
    "StoreError",
]


class ListenerError(Exception):
    """Base of every error Listener raises on purpose."""


class ConfigError(ListenerError):
    """The configuration is invalid; `problems` lists each one as `file:line: field: message`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class QuerySyntaxError(ListenerError):
    """A watch-term query could not be parsed.

    `column` is 1-based so that the rendered caret lines up with what the user typed.
    """

    def __init__(self, message: str, query: str, column: int) -> None:
        self.message = message
        self.query = query
        self.column = column
        super().__init__(self.render())

    def render(self) -> str:
        caret = " " * (self.column - 1) + "^"
        return f"{self.message} (column {self.column})\n  {self.query}\n  {caret}"


class SourceError(ListenerError):
    """A source could not be fetched or parsed; the source is retried on its next poll."""


class BusError(ListenerError):
    """The bus could not accept or deliver records."""


class StateError(ListenerError):
    """The control-state database (SQLite files or PostgreSQL) refused, or its schema is not current."""


class StoreError(ListenerError):
    """The search store failed to write or answer."""


class IncidentError(ListenerError):
    """An incident action was refused: unknown incident, wrong state, or not the owner."""


class ClassifierError(ListenerError):
    """The sentiment model could not be loaded or run."""


class NotifierError(ListenerError):
    """A notification failed.

    `retryable` follows Alertmanager's recoverable flag: the notifier knows whether
    trying again can help (rate limits, 5xx, network) and the caller decides when.
    """

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        self.retryable = retryable
        self.retry_after = retry_after
        super().__init__(message)
