"""The `Bus` seam: durable topics, consumer groups, committed offsets, replay.

Delivery is at-least-once: a consumer that dies before `commit()` sees the same
messages again, so every stage writes idempotently (upserts by mention id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["TOPICS", "Bus", "Consumer", "Message"]

# One topic per arrow in the flow (see the design's diagram).
TOPICS = ("documents", "mentions", "mentions.scored", "alerts", "dlq")


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: str
    value: bytes
    timestamp: float


class Consumer(Protocol):
    def poll(self, max_records: int = 100, timeout: float = 1.0) -> list[Message]:
        """Return up to `max_records` messages after this group's position (may be empty)."""
        ...

    def commit(self) -> None:
        """Make everything returned by `poll` so far committed for the group."""
        ...

    def seek(self, offset: int, partition: int = 0) -> None:
        """Move the position (not the committed offset) to replay from `offset`."""
        ...

    def close(self) -> None: ...


class Bus(Protocol):
    def publish(self, topic: str, key: str, value: bytes) -> None:
        """Return only once the message is durable."""
        ...

    def publish_many(self, topic: str, items: Sequence[tuple[str, bytes]]) -> None:
        """Durable as one unit: all of `items` or none."""
        ...

    def consumer(self, topic: str, group: str) -> Consumer: ...

    def read(self, topic: str, offset: int = 0, limit: int = 100) -> list[Message]:
        """Up to `limit` messages of `topic` from `offset` on, oldest first, without joining a
        group: browsing dead letters must move no offset and hold back no retention."""
        ...

    def group_lag(self, topic: str, group: str) -> dict[int, int]:
        """Per partition, how many messages of `topic` `group` has not committed yet (the
        consumer-lag gauge); a group that never committed lags by everything retained."""
        ...

    def trim_all(self, *, max_age: float) -> dict[str, int]:
        """Apply age-based retention to every topic; how many messages each topic lost.

        Never drops a message some group has not committed. An engine whose broker
        enforces retention itself deletes nothing and says so with an empty result.
        """
        ...

    def close(self) -> None: ...
