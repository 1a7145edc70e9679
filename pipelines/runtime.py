"""The stage runtime: poll a stage's topic, decode, handle, publish, and only then commit.

The order is what makes delivery at-least-once: outputs are durable on the bus
before the input is committed, so a runner killed anywhere in between sees the
batch again and re-publishes the same records (ids are deterministic, sinks
upsert). Failures are contained per record:

* a message that does not decode is dead-lettered at once (retrying cannot help);
* a batch whose `handle` raises is retried with backoff, then split and retried
  record by record, so that one poison record goes to `dlq` alone and neither
  blocks the stream nor takes good records with it.
"""

from __future__ import annotations

import base64
import bisect
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from listener.errors import BusError, ListenerError, StateError
from listener.records import Record, decode, encode
from pipelines.bus import Bus, Consumer, Message
from pipelines.stage import Output, Stage

__all__ = [
    "DLQ_TOPIC",
    "LATENCY_BUCKETS",
    "DeadLetter",
    "Pipeline",
    "PipelineError",
    "RunnerStats",
    "StageRunner",
    "run_threads",
]

log = logging.getLogger(__name__)

DLQ_TOPIC = "dlq"
# Upper bounds (seconds) of the batch latency histogram: a match batch takes milliseconds,
# a classify batch on CPU seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class PipelineError(ListenerError):
    """A stage runner crashed; the pipeline stopped rather than run with a hole in it."""


@dataclass
class RunnerStats:
    """Counters the CLI prints per stage; `snapshot()` for a consistent copy from another thread."""

    stage: str
    messages_in: int = 0
    messages_out: int = 0
    errors: int = 0
    dead_letters: int = 0
    batches: int = 0
    last_batch_latency: float | None = None
    last_offset: int | None = None
    last_poll: float | None = None  # time.monotonic() of the last poll: the health check's heartbeat
    busy_seconds: float = 0.0  # summed batch latency
    # Batches per LATENCY_BUCKETS slot (the last one is +Inf): a Prometheus histogram read at
    # scrape time, so the hot path pays one bisect per batch and nothing per message.
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))

    def observe_batch(self, latency: float) -> None:
        self.last_batch_latency = latency
        self.busy_seconds += latency
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, latency)] += 1

    def snapshot(self) -> RunnerStats:
        return replace(self, latency_counts=list(self.latency_counts))


@dataclass(frozen=True)
class DeadLetter:
    """What `dlq` holds: the failed message, unchanged, with where and why it failed.

    The payload is kept as text when it is valid UTF-8 (readable in `listener dlq`)
    and as base64 otherwise, so that any message can be replayed byte for byte.
    """

    stage: str
    group: str
    error: str
    topic: str
    partition: int
    offset: int
    key: str
    timestamp: float
    failed_at: float
    payload: str
    payload_encoding: str  # "utf-8" or "base64"
    attempts: int = 0

    @classmethod
    def of(
        cls,
        message: Message,
        *,
        stage: str,
        group: str,
        error: BaseException,
        attempts: int,
        failed_at: float,
    ) -> DeadLetter:
        try:
            payload, encoding = message.value.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            payload, encoding = base64.b64encode(message.value).decode("ascii"), "base64"
        return cls(
            stage=stage,
            group=group,
            error=f"{type(error).__name__}: {error}",
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            timestamp=message.timestamp,
            failed_at=failed_at,
            payload=payload,
            payload_encoding=encoding,
            attempts=attempts,
        )

    def to_bytes(self) -> bytes:
        body: dict[str, Any] = {"v": 1, "kind": "dead_letter", **asdict(self)}
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, value: bytes) -> DeadLetter:
        body = json.loads(value)
        if not isinstance(body, dict) or body.get("kind") != "dead_letter":
            raise ValueError("not a dead letter envelope")
        fields = {k: v for k, v in body.items() if k not in ("v", "kind")}
        try:
            return cls(**fields)
        except TypeError as exc:
            raise ValueError(f"not a dead letter envelope: {exc}") from None

    def original_value(self) -> bytes:
        """The failed message's bytes, to republish once the cause is fixed."""
        if self.payload_encoding == "base64":
            return base64.b64decode(self.payload)
        return self.payload.encode("utf-8")


_Item = tuple[Message, Record]


class _HandleFailed(Exception):
    def __init__(self, cause: BaseException, attempts: int) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.attempts = attempts


class StageRunner:
    """Runs one stage over the bus, in consumer group `group` (the stage's name by default).

    `clock` times batches and stamps dead letters; `sleep` waits between retries.
    Both are injectable so that tests run without waiting.
    """

    def __init__(
        self,
        bus: Bus,
        stage: Stage,
        group: str | None = None,
        batch_size: int = 100,
        poll_timeout: float = 1.0,
        max_attempts: int = 3,
        *,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        dlq_topic: str = DLQ_TOPIC,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if batch_size < 1 or max_attempts < 1:
            raise ValueError("batch_size and max_attempts must be at least 1")
        self.bus = bus
        self.stage = stage
        self.group = group or stage.name
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.dlq_topic = dlq_topic
        self.clock = clock
        self.sleep = sleep
        self.stats = RunnerStats(stage.name)
        self._consumer: Consumer | None = None
        self._last_tick = float("-inf")

    @property
    def consumer(self) -> Consumer:
        if self._consumer is None:
            self._consumer = self.bus.consumer(self.stage.input_topic, self.group)
        return self._consumer

    def close(self) -> None:
        """Leave the group; anything polled but not committed is redelivered later."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    # -- one batch -----------------------------------------------------------------------

    def run_once(self, timeout: float | None = None) -> int:
        """Process at most one batch; return how many messages were consumed (0 if idle)."""
        messages = self.consumer.poll(self.batch_size, self.poll_timeout if timeout is None else timeout)
        self.stats.last_poll = time.monotonic()
        if not messages:
            self._tick_if_idle()
            return 0
        started = self.clock()
        try:
            self._process(messages)
        except BaseException:
            # Nothing was committed: rewind every partition of the batch so that this
            # runner, if it goes on, retries all of it (a Kafka batch spans partitions).
            firsts: dict[int, int] = {}
            for message in messages:
                firsts.setdefault(message.partition, message.offset)
            for partition, offset in firsts.items():
                self.consumer.seek(offset, partition)
            raise
        self.stats.batches += 1
        self.stats.messages_in += len(messages)
        self.stats.last_offset = messages[-1].offset
        self.stats.observe_batch(self.clock() - started)
        return len(messages)

    def _tick_if_idle(self) -> None:
        """Give time-driven stages (a detector closing a quiet spike) a turn when nothing arrives.

        A stage opts in with its `idle_tick`: the seconds between empty `handle([])`
        calls (None: never). A failing tick is logged and retried at the next one.
        """
        interval = self.stage.idle_tick
        now = self.clock()
        if interval is None or now - self._last_tick < interval:
            return
        self._last_tick = now
        try:
            self._publish([(o.topic, o.key, encode(o.record)) for o in _outputs(self.stage.handle([]))])
            self.stage.after_commit()
        except Exception as exc:
            self.stats.errors += 1
            log.warning("stage %s: idle tick failed: %s", self.stage.name, exc)

    def _process(self, messages: list[Message]) -> None:
        dead: list[DeadLetter] = []
        items: list[_Item] = []
        for message in messages:
            try:
                items.append((message, decode(message.value)))
            except Exception as exc:  # malformed JSON, unknown kind, failed validation
                log.warning(
                    "stage %s: %s@%d is not a valid record, dead-lettering: %s",
                    self.stage.name,
                    message.topic,
                    message.offset,
                    exc,
                )
                dead.append(self._dead_letter(message, exc, attempts=0))
        payloads = self._handle_contained(items, dead) if items else []
        self._publish(payloads)
        if dead:
            self.bus.publish_many(self.dlq_topic, [(d.key, d.to_bytes()) for d in dead])
            self.stats.dead_letters += len(dead)
        self.consumer.commit()
        self.stage.after_commit()

    def _handle_contained(self, items: list[_Item], dead: list[DeadLetter]) -> list[tuple[str, str, bytes]]:
        """Outputs of the whole batch, or of each record alone once the batch keeps failing."""
        try:
            return self._attempt(items)
        except _HandleFailed as failure:
            if len(items) == 1:
                dead.append(self._dead_letter(items[0][0], failure.cause, failure.attempts))
                return []
        log.warning(
            "stage %s: batch %s@%d-%d keeps failing; retrying its %d records one by one",
            self.stage.name,
            items[0][0].topic,
            items[0][0].offset,
            items[-1][0].offset,
            len(items),
        )
        payloads: list[tuple[str, str, bytes]] = []
        for item in items:
            try:
                payloads.extend(self._attempt([item]))
            except _HandleFailed as failure:
                log.error(
                    "stage %s: %s@%d failed %d times, dead-lettering: %s",
                    self.stage.name,
                    item[0].topic,
                    item[0].offset,
                    failure.attempts,
                    failure.cause,
                    extra={"stage": self.stage.name, "mention_id": item[1].id},
                )
                dead.append(self._dead_letter(item[0], failure.cause, failure.attempts))
        return payloads

    def _attempt(self, items: list[_Item]) -> list[tuple[str, str, bytes]]:
        """`handle` with retries and exponential backoff; encodes the outputs as part of the try."""
        records = [record for _, record in items]
        for attempt in range(1, self.max_attempts + 1):
            try:
                return [(o.topic, o.key, encode(o.record)) for o in _outputs(self.stage.handle(records))]
            except StateError:
                # The state database is down, not the records at fault: dead-lettering them would
                # turn an outage into lost alerts. The batch goes back and `run_forever` waits.
                raise
            except Exception as exc:
                self.stats.errors += 1
                first, last = items[0][0], items[-1][0]
                log.warning(
                    "stage %s: handle failed on %s@%d-%d (attempt %d/%d): %s",
                    self.stage.name,
                    first.topic,
                    first.offset,
                    last.offset,
                    attempt,
                    self.max_attempts,
                    exc,
                )
                if attempt == self.max_attempts:
                    raise _HandleFailed(exc, attempt) from exc
                self.sleep(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))
        raise AssertionError("unreachable")  # pragma: no cover

    def _publish(self, payloads: list[tuple[str, str, bytes]]) -> None:
        """One `publish_many` per topic, keeping the stage's order within each topic."""
        by_topic: dict[str, list[tuple[str, bytes]]] = {}
        for topic, key, value in payloads:
            by_topic.setdefault(topic, []).append((key, value))
        for topic, items in by_topic.items():
            self.bus.publish_many(topic, items)
        self.stats.messages_out += len(payloads)

    def _dead_letter(self, message: Message, error: BaseException, attempts: int) -> DeadLetter:
        return DeadLetter.of(
            message,
            stage=self.stage.name,
            group=self.group,
            error=error,
            attempts=attempts,
            failed_at=self.clock(),
        )

    # -- loops ---------------------------------------------------------------------------

    def run_until_idle(self, max_batches: int = 10_000, idle_timeout: float = 0.0) -> int:
        """Process batches until a poll finds nothing (or `max_batches`); return messages consumed."""
        total = 0
        for _ in range(max_batches):
            consumed = self.run_once(timeout=idle_timeout)
            if consumed == 0:
                break
            total += consumed
        return total

    def run_forever(self, stop: threading.Event) -> None:
        """Run until `stop` is set. Bus and state-database errors are retried after a growing
        pause (the batch is redelivered, nothing is dead-lettered); anything else propagates."""
        pause = self.backoff
        try:
            while not stop.is_set():
                try:
                    self.run_once()
                    pause = self.backoff
                except (BusError, StateError) as exc:
                    self.stats.errors += 1
                    what = "bus" if isinstance(exc, BusError) else "state database"
                    log.error("stage %s: %s error, retrying in %.1fs: %s", self.stage.name, what, pause, exc)
                    stop.wait(pause)
                    pause = min(self.max_backoff, pause * 2)
        finally:
            self.close()


def _outputs(result: object) -> list[Output]:
    """Check what `handle` returned, so a stage bug is reported as that stage's failure."""
    if not isinstance(result, list):
        raise TypeError(f"handle must return a list of Output, got {type(result).__name__}")
    for output in result:
        if not isinstance(output, Output):
            raise TypeError(f"handle returned a {type(output).__name__}, not an Output")
    return result


class Pipeline:
    """Several runners, for the demo (`run_until_idle`) or the embedded monitor (`run`)."""

    def __init__(self, runners: Sequence[StageRunner]) -> None:
        self.runners = list(runners)

    def run_until_idle(self, max_rounds: int = 1_000) -> int:
        """Round-robin until a whole round consumes nothing; return messages consumed."""
        total = 0
        for _ in range(max_rounds):
            consumed = sum(runner.run_until_idle() for runner in self.runners)
            if consumed == 0:
                break
            total += consumed
        return total

    def run(self, stop: threading.Event) -> None:
        run_threads(self.runners, stop)

    def stats(self) -> list[RunnerStats]:
        return [runner.stats.snapshot() for runner in self.runners]


def run_threads(runners: Sequence[StageRunner], stop: threading.Event, join_interval: float = 0.2) -> None:
    """Run each runner in its own thread until `stop` is set.

    A runner that crashes logs the error and sets `stop`, so the others wind down
    instead of the pipeline running on with a dead stage; `PipelineError` is
    raised once every thread has ended. Ctrl-C stops the threads too.
    """
    crashes: list[tuple[str, BaseException]] = []

    def guarded(runner: StageRunner) -> None:
        try:
            runner.run_forever(stop)
        except BaseException as exc:
            log.exception("stage %s crashed; stopping the pipeline", runner.stage.name)
            crashes.append((runner.stage.name, exc))
            stop.set()

    threads = [
        threading.Thread(target=guarded, args=(r,), name=f"stage-{r.stage.name}", daemon=True)
        for r in runners
    ]
    for thread in threads:
        thread.start()
    try:
        while any(thread.is_alive() for thread in threads):
            for thread in threads:
                thread.join(join_interval)
    except KeyboardInterrupt:
        stop.set()
        for thread in threads:
            thread.join()
        raise
    if crashes:
        name, exc = crashes[0]
        raise PipelineError(f"stage {name} crashed: {type(exc).__name__}: {exc}") from exc
