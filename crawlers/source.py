"""The `Source` seam: one poll of one configured source."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from listener.records import Document

__all__ = ["Source"]


class Source(Protocol):
    name: str
    poll_interval: float  # seconds between polls

    def poll(self) -> Iterator[Document]:
        """Fetch what is new since the last poll.

        Items already seen (in this process or before a restart) are not yielded
        again. Problems with single items are logged and skipped; a failure of the
        whole fetch raises `SourceError` so the scheduler can back off.
        """
        ...
