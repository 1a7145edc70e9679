"""The stage runtime over a real embedded bus: outputs, commits, retries and dead letters."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bus_contract import drain

from listener.errors import BusError
from listener.records import Document, Mention, Record, decode, document_id, encode
from pipelines.bus import Message
from pipelines.bus_sqlite import EmbeddedBus, EmbeddedConsumer
from pipelines.runtime import DeadLetter, Pipeline, PipelineError, StageRunner, run_threads
from pipelines.stage import Output

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def doc(n: int, text: str | None = None) -> Document:
    return Document(
        id=document_id("acme-news", f"item-{n}"),
        source="acme-news",
        source_type="feed",
        text=text if text is not None else f"Acme rocket number {n} launched",
        published=NOW,
        fetched=NOW,
    )


class TagStage:
    """documents -> mentions, brand 'acme' for every document; fails on texts containing 'poison'."""

    name = "tag"
    input_topic = "documents"
    idle_tick = None

    def after_commit(self) -> None:
        """Nothing to confirm."""

    def __init__(self, fail_first: int = 0) -> None:
        self.calls = 0
        self.fail_first = fail_first

    def handle(self, records: Sequence[Record]) -> list[Output]:
        self.calls += 1
        if self.calls <= self.fail_first:
            raise ConnectionError("model server warming up")
        outputs = []
        for record in records:
            assert isinstance(record, Document)
            if "poison" in record.text:
                raise ValueError(f"cannot tag {record.id}")
            outputs.append(Output("mentions", "acme", Mention.from_document(record, "acme", ("acme",))))
        return outputs


class SinkStage:
    """mentions -> nothing: upserts by id into SQLite, like the search index does."""

    name = "sink"
    input_topic = "mentions"
    idle_tick = None

    def after_commit(self) -> None:
        """Nothing to confirm."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS mentions (id TEXT PRIMARY KEY, text TEXT)")
        self.handled: list[str] = []

    def handle(self, records: Sequence[Record]) -> list[Output]:
        for record in records:
            assert isinstance(record, Mention)
            self.handled.append(record.id)
            self.db.execute(
                "INSERT INTO mentions VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET text = excluded.text",
                (record.id, record.text),
            )
        self.db.commit()
        return []

    def ids(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT id FROM mentions")]


class CommitFailsOnce:
    """The real bus, except that the first commit fails as if the bus had gone away."""

    def __init__(self, bus: EmbeddedBus) -> None:
        self.bus = bus
        self.failed = False

    def publish(self, topic: str, key: str, value: bytes) -> None:
        self.bus.publish(topic, key, value)

    def publish_many(self, topic: str, items: Sequence[tuple[str, bytes]]) -> None:
        self.bus.publish_many(topic, items)

    def consumer(self, topic: str, group: str) -> EmbeddedConsumer:
        consumer = self.bus.consumer(topic, group)
        real_commit = consumer.commit

        def commit() -> None:
            if not self.failed:
                self.failed = True
                raise BusError("disk full")
            real_commit()

        consumer.commit = commit  # type: ignore[method-assign]
        return consumer

    def close(self) -> None:
        self.bus.close()


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[EmbeddedBus]:
    bus = EmbeddedBus(tmp_path / "bus.db")
    yield bus
    bus.close()


def publish_docs(bus: EmbeddedBus, docs: Sequence[Document]) -> None:
    bus.publish_many("documents", [(d.source, encode(d)) for d in docs])


def topic_records(bus: EmbeddedBus, topic: str, expected: int) -> list[Message]:
    return drain(bus.consumer(topic, f"audit-{time.monotonic_ns()}"), expected, timeout=2.0)


def dead_letters(bus: EmbeddedBus, expected: int) -> list[DeadLetter]:
    return [DeadLetter.from_bytes(m.value) for m in topic_records(bus, "dlq", expected)]


def no_sleep(seconds: float) -> None:
    pass


def test_a_stages_outputs_are_published_and_its_input_committed(bus: EmbeddedBus) -> None:
    docs = [doc(i) for i in range(7)]
    publish_docs(bus, docs)
    runner = StageRunner(bus, TagStage(), batch_size=3, poll_timeout=0)

    assert runner.run_until_idle() == 7
    mentions = [decode(m.value) for m in topic_records(bus, "mentions", 7)]
    assert [m.document_id for m in mentions if isinstance(m, Mention)] == [d.id for d in docs]
    assert bus.committed("documents", "tag") == 7
    assert (runner.stats.messages_in, runner.stats.messages_out, runner.stats.batches) == (7, 7, 3)
    assert runner.stats.last_offset == 6 and runner.stats.last_batch_latency is not None


def test_a_batch_redelivered_after_a_failed_commit_is_written_once_downstream(
    bus: EmbeddedBus, tmp_path: Path
) -> None:
    docs = [doc(i) for i in range(4)]
    publish_docs(bus, docs)
    StageRunner(bus, TagStage(), poll_timeout=0).run_until_idle()
    sink = SinkStage(tmp_path / "index.db")

    crashing = StageRunner(CommitFailsOnce(bus), sink, poll_timeout=0)
    with pytest.raises(BusError, match="disk full"):
        crashing.run_once()
    crashing.close()
    assert bus.committed("mentions", "sink") == 0

    StageRunner(bus, sink, poll_timeout=0).run_until_idle()
    assert len(sink.handled) == 8, "the batch is handled twice (at-least-once)"
    assert set(sink.ids()) == set(sink.handled) and len(sink.ids()) == 4


def test_a_runner_that_fails_to_commit_retries_the_same_batch_itself(bus: EmbeddedBus) -> None:
    publish_docs(bus, [doc(i) for i in range(3)])
    runner = StageRunner(CommitFailsOnce(bus), TagStage(), poll_timeout=0)
    with pytest.raises(BusError):
        runner.run_once()
    assert runner.run_until_idle() == 3
    ids = {decode(m.value).id for m in topic_records(bus, "mentions", 6)}
    assert len(ids) == 3, "the re-published outputs carry the same ids"


def test_messages_that_are_not_records_go_to_the_dlq_and_the_stream_goes_on(bus: EmbeddedBus) -> None:
    publish_docs(bus, [doc(1)])
    bus.publish("documents", "acme", b"\xff\xfe not json")
    bus.publish("documents", "acme", b'{"v":1,"kind":"document","data":{"id":"x"}}')
    bus.publish("documents", "acme", b'{"v":99,"kind":"document","data":{}}')
    publish_docs(bus, [doc(2)])
    runner = StageRunner(bus, TagStage(), poll_timeout=0)

    assert runner.run_until_idle() == 5
    assert len(topic_records(bus, "mentions", 2)) == 2
    letters = dead_letters(bus, 3)
    assert [(d.topic, d.offset, d.stage, d.group) for d in letters] == [
        ("documents", 1, "tag", "tag"),
        ("documents", 2, "tag", "tag"),
        ("documents", 3, "tag", "tag"),
    ]
    assert letters[0].payload_encoding == "base64"
    assert letters[0].original_value() == b"\xff\xfe not json"
    assert "ValidationError" in letters[1].error and "schema version 99" in letters[2].error
    assert bus.committed("documents", "tag") == 5 and runner.stats.dead_letters == 3


def test_a_record_that_makes_the_stage_raise_is_dead_lettered_alone(bus: EmbeddedBus) -> None:
    hostile = 'poison <script>alert("x")</script> \u202e'
    docs = [doc(1), doc(2), doc(3, text=hostile), doc(4), doc(5)]
    publish_docs(bus, docs)
    sleeps: list[float] = []
    runner = StageRunner(bus, TagStage(), poll_timeout=0, max_attempts=2, backoff=0.25, sleep=sleeps.append)

    assert runner.run_once() == 5
    published = [decode(m.value) for m in topic_records(bus, "mentions", 4)]
    assert [m.document_id for m in published if isinstance(m, Mention)] == [docs[i].id for i in (0, 1, 3, 4)]
    (letter,) = dead_letters(bus, 1)
    assert (letter.offset, letter.attempts, letter.payload_encoding) == (2, 2, "utf-8")
    assert "ValueError: cannot tag" in letter.error
    assert decode(letter.original_value()) == docs[2], "the payload is kept intact, hostile text and all"
    assert sleeps == [0.25, 0.25], "one backoff for the batch, one for the poison record alone"
    assert bus.committed("documents", "tag") == 5


def test_a_transient_failure_is_retried_with_growing_backoff(bus: EmbeddedBus) -> None:
    publish_docs(bus, [doc(1), doc(2)])
    sleeps: list[float] = []
    runner = StageRunner(bus, TagStage(fail_first=2), poll_timeout=0, max_attempts=3, sleep=sleeps.append)

    assert runner.run_until_idle() == 2
    assert sleeps == [0.5, 1.0]
    assert len(topic_records(bus, "mentions", 2)) == 2
    assert dead_letters(bus, 0) == [] and runner.stats.errors == 2


def test_a_stage_that_returns_something_other_than_outputs_is_reported(bus: EmbeddedBus) -> None:
    class Sloppy:
        name = "sloppy"
        input_topic = "documents"
        idle_tick = None

        def after_commit(self) -> None:
            """Nothing to confirm."""

        def handle(self, records: Sequence[Record]) -> list[Output]:
            return [{"topic": "mentions"}]  # type: ignore[list-item]

    publish_docs(bus, [doc(1)])
    StageRunner(bus, Sloppy(), poll_timeout=0, max_attempts=1).run_until_idle()
    (letter,) = dead_letters(bus, 1)
    assert "not an Output" in letter.error


def test_outputs_to_several_topics_keep_their_order_within_each_topic(bus: EmbeddedBus) -> None:
    class Fanout:
        name = "fanout"
        input_topic = "documents"
        idle_tick = None

        def after_commit(self) -> None:
            """Nothing to confirm."""

        def handle(self, records: Sequence[Record]) -> list[Output]:
            outs = []
            for r in records:
                mention = Mention.from_document(r, "acme", ())  # type: ignore[arg-type]
                outs += [Output("mentions", "acme", mention), Output("alerts-copy", "acme", r)]
            return outs

    docs = [doc(i) for i in range(5)]
    publish_docs(bus, docs)
    StageRunner(bus, Fanout(), poll_timeout=0).run_until_idle()
    copies = [decode(m.value).id for m in topic_records(bus, "alerts-copy", 5)]
    mentions = [decode(m.value) for m in topic_records(bus, "mentions", 5)]
    assert copies == [d.id for d in docs]
    assert [m.document_id for m in mentions if isinstance(m, Mention)] == [d.id for d in docs]


def test_a_pipeline_drains_a_chain_of_stages(bus: EmbeddedBus, tmp_path: Path) -> None:
    publish_docs(bus, [doc(i) for i in range(12)])
    sink = SinkStage(tmp_path / "index.db")
    pipeline = Pipeline([StageRunner(bus, TagStage(), batch_size=5), StageRunner(bus, sink, batch_size=5)])

    assert pipeline.run_until_idle() == 24
    assert len(sink.ids()) == 12
    assert [(s.stage, s.messages_in, s.messages_out) for s in pipeline.stats()] == [
        ("tag", 12, 12),
        ("sink", 12, 0),
    ]


def test_runners_in_threads_carry_records_until_stopped(bus: EmbeddedBus, tmp_path: Path) -> None:
    sink = SinkStage(tmp_path / "index.db")
    runners = [StageRunner(bus, TagStage(), poll_timeout=0.2), StageRunner(bus, sink, poll_timeout=0.2)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_threads(runners, stop)
        except BaseException as exc:
            errors.append(exc)

    pipeline = threading.Thread(target=run)
    pipeline.start()
    publish_docs(bus, [doc(i) for i in range(20)])
    deadline = time.monotonic() + 10
    while len(sink.ids()) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    pipeline.join(timeout=10)

    assert not pipeline.is_alive() and errors == []
    assert len(sink.ids()) == 20
    assert bus.committed("mentions", "sink") == 20


def test_a_crashing_runner_stops_the_whole_pipeline_instead_of_hanging(
    bus: EmbeddedBus, tmp_path: Path
) -> None:
    class Broken(TagStage):
        name = "broken"

    healthy = StageRunner(bus, SinkStage(tmp_path / "index.db"), poll_timeout=0.1)
    broken = StageRunner(bus, Broken(), poll_timeout=0.1)
    broken._consumer = bus.consumer("documents", "broken")
    broken._consumer.poll = lambda *a, **k: 1 / 0  # type: ignore[method-assign, assignment]
    stop = threading.Event()

    started = time.monotonic()
    with pytest.raises(PipelineError, match="stage broken crashed: ZeroDivisionError"):
        run_threads([healthy, broken], stop)
    assert stop.is_set() and time.monotonic() - started < 5


def test_run_forever_rides_out_a_bus_error(bus: EmbeddedBus) -> None:
    publish_docs(bus, [doc(1), doc(2)])
    stop = threading.Event()
    runner = StageRunner(CommitFailsOnce(bus), TagStage(), poll_timeout=0.05, backoff=0.01)
    thread = threading.Thread(target=runner.run_forever, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 10
    while bus.committed("documents", "tag") != 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(timeout=5)
    assert bus.committed("documents", "tag") == 2 and runner.stats.errors == 1


def test_a_dead_letter_envelope_round_trips_and_refuses_other_json() -> None:
    message = Message("documents", 0, 7, "acme", b"\x00\x01binary", 1.0)
    letter = DeadLetter.of(message, stage="tag", group="tag", error=KeyError("k"), attempts=3, failed_at=2.0)
    assert DeadLetter.from_bytes(letter.to_bytes()) == letter
    with pytest.raises(ValueError, match="dead letter"):
        DeadLetter.from_bytes(encode(doc(1)))


class _TickingStage:
    """A time-driven stage: emits one record per idle tick."""

    name = "ticker"
    input_topic = "in"
    idle_tick = 5.0

    def after_commit(self) -> None:
        """Nothing to confirm."""

    def __init__(self) -> None:
        self.ticks = 0

    def handle(self, records):
        if records:
            return []
        self.ticks += 1
        doc = Document(
            id=f"tick-{self.ticks}",
            source="clock",
            source_type="test",
            text="tick",
            published=datetime(2026, 1, 1, tzinfo=UTC),
            fetched=datetime(2026, 1, 1, tzinfo=UTC),
        )
        return [Output("out", "clock", doc)]


def test_a_time_driven_stage_gets_idle_ticks_at_its_interval(tmp_path) -> None:
    now = [1000.0]
    with EmbeddedBus(tmp_path / "bus.db") as bus:
        stage = _TickingStage()
        runner = StageRunner(bus, stage, poll_timeout=0.0, clock=lambda: now[0])
        runner.run_once()
        runner.run_once()  # same instant: no second tick
        now[0] += 5.0
        runner.run_once()
        assert stage.ticks == 2
        assert [decode(m.value).id for m in bus.consumer("out", "check").poll(10, 0.0)] == [
            "tick-1",
            "tick-2",
        ]
