"""Operations on a running deployment: dead letters and moving the index between engines.

Both work the same on either engine pair. Dead letters are browsed without
joining a consumer group, so looking at them moves no offset and holds back no
retention; a replay puts the original bytes back on the topic they came from,
under their original key, so the stage that failed sees exactly what it saw.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from listener.config import Config
from listener.errors import BusError, StoreError
from pipelines.bus import Bus, Message
from pipelines.runtime import DLQ_TOPIC, DeadLetter
from pipelines.store import MentionStore, SearchRequest

__all__ = [
    "ENGINES",
    "LetterRef",
    "ListedLetter",
    "browse",
    "count",
    "dead_letters",
    "open_store_engine",
    "reindex",
    "replay",
]

ENGINES = ("embedded", "elasticsearch")


@dataclass(frozen=True, slots=True)
class LetterRef:
    """Where a dead letter sits in the dead-letter topic: `partition:offset`."""

    partition: int
    offset: int

    @classmethod
    def parse(cls, text: str) -> LetterRef:
        part, sep, off = text.partition(":")
        if not sep:
            part, off = "0", text
        try:
            ref = cls(int(part), int(off))
        except ValueError:
            raise ValueError(f"{text!r} is not a dead letter reference (PARTITION:OFFSET)") from None
        if ref.partition < 0 or ref.offset < 0:
            raise ValueError(f"{text!r} is not a dead letter reference (PARTITION:OFFSET)")
        return ref

    def __str__(self) -> str:
        return f"{self.partition}:{self.offset}"


@dataclass(frozen=True, slots=True)
class ListedLetter:
    ref: LetterRef
    letter: DeadLetter | None  # None when the dlq message itself is not an envelope
    problem: str = ""


def browse(bus: Bus, topic: str, limit: int) -> list[Message]:
    """Up to `limit` messages of `topic` from the start, without joining a group."""
    return bus.read(topic, 0, limit)


def dead_letters(bus: Bus, limit: int = 1000) -> list[ListedLetter]:
    """The dead letters on `bus`, oldest first; a damaged envelope is listed, not skipped."""
    listed = []
    for message in browse(bus, DLQ_TOPIC, limit):
        ref = LetterRef(message.partition, message.offset)
        try:
            listed.append(ListedLetter(ref, DeadLetter.from_bytes(message.value)))
        except ValueError as exc:
            listed.append(ListedLetter(ref, None, f"not a dead letter envelope: {exc}"))
    return listed


def replay(
    bus: Bus,
    letters: Iterable[ListedLetter],
    *,
    refs: Sequence[LetterRef] = (),
    stage: str | None = None,
) -> list[ListedLetter]:
    """Republish the chosen letters' original bytes to their topics; return those replayed.

    A letter is chosen when it is named in `refs`, or (without refs) when it
    failed in `stage`. Asking for a reference that is not a dead letter raises
    before anything is published, so a typo replays nothing rather than part.
    """
    available = [item for item in letters if item.letter is not None]
    by_ref = {item.ref: item for item in available}
    missing = [str(r) for r in refs if r not in by_ref]
    if missing:
        where = ", ".join(missing)
        raise BusError(f"no dead letter at {where} (see `listener dlq list`; --limit reads further)")
    if refs:
        chosen = [by_ref[r] for r in dict.fromkeys(refs)]
    else:
        chosen = [i for i in available if stage is None or (i.letter is not None and i.letter.stage == stage)]
    by_topic: dict[str, list[tuple[str, bytes]]] = {}
    for item in chosen:
        assert item.letter is not None
        by_topic.setdefault(item.letter.topic, []).append((item.letter.key, item.letter.original_value()))
    for topic, items in by_topic.items():
        bus.publish_many(topic, items)
    return chosen


def open_store_engine(config: Config, engine: str) -> MentionStore:
    """The store of `engine` as `config` describes it, whatever `store.engine` says."""
    from listener.app import open_store

    if engine not in ENGINES:
        raise StoreError(f"unknown store engine {engine!r}; choose one of {', '.join(ENGINES)}")
    chosen = config.model_copy(update={"store": config.store.model_copy(update={"engine": engine})})
    return open_store(chosen)


def reindex(
    source: MentionStore,
    target: MentionStore,
    *,
    batch: int = 500,
    progress: Callable[[int], None] = lambda _n: None,
) -> int:
    """Copy every mention of `source` into `target` by upsert; return how many.

    Upserts by id make a reindex safe to interrupt and run again, and safe to
    run while `index` is still writing to the target.
    """
    copied = 0
    for mentions in source.scan(batch):
        target.upsert(mentions)
        copied += len(mentions)
        progress(len(mentions))
    target.refresh()  # make the copy searchable at once rather than after the next refresh interval
    return copied


def count(store: MentionStore) -> int:
    return store.search(SearchRequest(limit=0)).total
