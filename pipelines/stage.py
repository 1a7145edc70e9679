"""What a stage is: a small object that turns a batch of records into outputs.

Stages know nothing about the bus; the runtime polls their input topic,
decodes, calls `handle`, publishes the outputs and only then commits. So a
stage that crashes mid-batch sees the batch again (at-least-once), which is
why every sink writes idempotently by id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from listener.records import Record

__all__ = ["Output", "Stage"]


@dataclass(frozen=True, slots=True)
class Output:
    topic: str
    key: str  # the brand, so one brand's records stay in order within a partition
    record: Record


class Stage(Protocol):
    name: str
    input_topic: str

    @property
    def idle_tick(self) -> float | None:
        """Seconds between `handle([])` calls while the input topic is quiet, for stages that act
        on time (a detector closing a spike that went silent, an incident left unanswered); None
        for stages that only react to records. A plain class attribute satisfies it."""
        ...

    def handle(self, records: Sequence[Record]) -> list[Output]:
        """Process one batch; raise to have the runtime retry and, failing that, dead-letter."""
        ...

    def after_commit(self) -> None:
        """The outputs of the last `handle` are on the bus (and its input, if any, committed).

        A stage that commits state of its own before returning outputs (detect) keeps
        what it emitted in a transactional outbox until this call, and emits it again
        if a crash came in between, so nothing it decided is lost. Others do nothing.
        """
        ...
