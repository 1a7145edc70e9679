"""The hand-over between a push stream's reader threads and the scheduler's polls.

Streaming sources (Jetstream, Mastodon's streaming API) read on their own
threads while the scheduler polls on its own clock. The buffer between them is
bounded: when polls fall behind, the oldest documents go first and are
counted, so a stalled pipeline costs a known number of mentions instead of
unbounded memory. A reader may also record how far it has read (`mark`); the
mark is handed over with the documents in one step, so a cursor committed
after a poll never runs ahead of the documents that poll returned.
"""

from __future__ import annotations

import threading
from collections import deque

from listener.records import Document

__all__ = ["StreamBuffer", "reconnect_delay"]

_MAX_WAIT = 60.0


def reconnect_delay(failures: int) -> float:
    """Seconds before reconnecting: quick after a clean end, doubling per failure up to a minute."""
    return float(min(_MAX_WAIT, 0.2 * 2.0 ** min(failures, 10)))


class StreamBuffer:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.dropped = 0
        self._documents: deque[Document] = deque()
        self._mark: int | None = None
        self._lock = threading.Lock()

    @property
    def mark(self) -> int | None:
        with self._lock:
            return self._mark

    def push(self, document: Document | None, mark: int | None = None) -> None:
        """Add a document (None: nothing to keep) and advance the mark, dropping the oldest when full."""
        with self._lock:
            if mark is not None:
                self._mark = max(self._mark or 0, mark)
            if document is None:
                return
            if len(self._documents) >= self.capacity:
                self._documents.popleft()
                self.dropped += 1
            self._documents.append(document)

    def drain(self) -> tuple[list[Document], int | None]:
        """Everything buffered, oldest first, and the mark as of the same moment."""
        with self._lock:
            documents = list(self._documents)
            self._documents.clear()
            return documents, self._mark
