"""The `Source` seam: one poll of one configured source, committed once published."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from listener.records import Document

__all__ = ["Source"]


class Source(Protocol):
    name: str
    poll_interval: float  # seconds between polls

    def poll(self) -> Iterator[Document]:
        """Fetch what is new since the last commit.

        Items already committed (in this process or before a restart) are not
        yielded again; items polled but not committed are. Problems with single
        items are logged and skipped; a failure of the whole fetch raises
        `SourceError` so the scheduler can back off.
        """
        ...

    def commit(self, documents: Iterable[Document]) -> None:
        """Record the last poll's `documents` as delivered: the scheduler calls it only after
        publishing them, so a crash in between redelivers rather than loses them."""
        ...

    def close(self) -> None:
        """Release what the source holds (sessions, reader threads, a crawl in progress);
        anything polled and not committed is fetched again by the next process."""
        ...
