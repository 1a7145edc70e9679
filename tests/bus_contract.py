"""The contract every `Bus` engine must keep, written once and run over each engine.

An engine's test module subclasses `BusContract` and provides one fixture,
`bus_factory`: a callable that opens a NEW bus on the SAME storage each time it
is called (a file for the embedded bus, a broker address for Kafka), so that
tests can "restart" the process. Override `topic` too if the engine needs topics
created up front. Everything here talks only through the `Bus` protocol.

    class TestEmbeddedBusContract(BusContract):
        @pytest.fixture
        def bus_factory(self, tmp_path): ...

Polls accumulate over several calls (`drain`), because a distributed consumer may
return nothing while it joins its group.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from pipelines.bus import Bus, Consumer, Message

__all__ = ["BusContract", "BusFactory", "drain", "poll_some"]

BusFactory = Callable[[], Bus]


def drain(consumer: Consumer, expected: int, timeout: float = 10.0, max_records: int = 100) -> list[Message]:
    """Poll until `expected` messages came (or `timeout`), then one short extra poll for surplus."""
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        got.extend(consumer.poll(max_records=max_records, timeout=0.5))
    got.extend(consumer.poll(max_records=max_records, timeout=0.2))
    return got


def poll_some(consumer: Consumer, max_records: int, timeout: float = 10.0) -> list[Message]:
    """The first non-empty poll: one batch, as a stage would see it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = consumer.poll(max_records=max_records, timeout=0.5)
        if batch:
            assert len(batch) <= max_records
            return batch
    raise AssertionError(f"nothing to poll within {timeout}s")


def values(messages: list[Message]) -> list[bytes]:
    return [m.value for m in messages]


class BusContract:
    """Behaviour the stages rely on; any engine that passes can run the pipeline."""

    @pytest.fixture
    def bus_factory(self) -> BusFactory:
        raise NotImplementedError("an engine's test class provides bus_factory")

    @pytest.fixture
    def topic(self) -> str:
        return f"contract-{uuid.uuid4().hex[:12]}"

    @pytest.fixture
    def bus(self, bus_factory: BusFactory) -> Iterator[Bus]:
        bus = bus_factory()
        yield bus
        bus.close()

    def test_messages_come_back_in_publish_order_with_their_keys(self, bus: Bus, topic: str) -> None:
        sent = [(f"brand-{i % 3}", f"m{i}".encode()) for i in range(30)]
        for key, value in sent:
            bus.publish(topic, key, value)
        got = drain(bus.consumer(topic, "readers"), len(sent))
        assert [(m.key, m.value) for m in got] == sent
        assert all(m.topic == topic for m in got)
        for brand in {k for k, _ in sent}:
            offsets = [m.offset for m in got if m.key == brand]
            assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)

    def test_a_message_carries_a_recent_timestamp(self, bus: Bus, topic: str) -> None:
        before = time.time()
        bus.publish(topic, "acme", b"hello")
        (message,) = drain(bus.consumer(topic, "readers"), 1)
        assert before - 5 <= message.timestamp <= time.time() + 5

    def test_two_groups_each_see_every_message(self, bus: Bus, topic: str) -> None:
        bus.publish_many(topic, [("acme", b"a"), ("acme", b"b"), ("globex", b"c")])
        index, detect = bus.consumer(topic, "index"), bus.consumer(topic, "detect")
        assert values(drain(index, 3)) == [b"a", b"b", b"c"]
        index.commit()
        assert values(drain(detect, 3)) == [b"a", b"b", b"c"]

    def test_a_restarted_consumer_resumes_after_its_committed_offset(
        self, bus_factory: BusFactory, topic: str
    ) -> None:
        first = bus_factory()
        first.publish_many(topic, [("acme", f"{i}".encode()) for i in range(10)])
        consumer = first.consumer(topic, "classify")
        done = poll_some(consumer, max_records=4)
        consumer.commit()
        consumer.close()
        first.close()

        second = bus_factory()
        try:
            rest = drain(second.consumer(topic, "classify"), 6)
        finally:
            second.close()
        assert values(done + rest) == [f"{i}".encode() for i in range(10)]
        assert rest[0].offset == done[-1].offset + 1

    def test_messages_polled_but_not_committed_are_delivered_again(self, bus: Bus, topic: str) -> None:
        bus.publish_many(topic, [("acme", b"handled"), ("acme", b"in-flight-1"), ("acme", b"in-flight-2")])
        crashed = bus.consumer(topic, "index")
        assert values(poll_some(crashed, max_records=1)) == [b"handled"]
        crashed.commit()
        assert values(drain(crashed, 2)) == [b"in-flight-1", b"in-flight-2"]
        crashed.close()  # dies before committing the second batch

        successor = bus.consumer(topic, "index")
        assert values(drain(successor, 2)) == [b"in-flight-1", b"in-flight-2"]

    def test_seek_replays_from_an_offset_without_moving_the_commit(self, bus: Bus, topic: str) -> None:
        bus.publish_many(topic, [("acme", f"{i}".encode()) for i in range(5)])
        consumer = bus.consumer(topic, "replayer")
        first_pass = drain(consumer, 5)
        consumer.commit()
        consumer.seek(first_pass[2].offset)
        assert values(drain(consumer, 3)) == [b"2", b"3", b"4"]
        consumer.seek(first_pass[0].offset)
        consumer.close()
        # A marker published afterwards proves the new member has joined and read from the commit on.
        bus.publish(topic, "acme", b"after")
        assert values(drain(bus.consumer(topic, "replayer"), 1)) == [b"after"]

    def test_publish_many_delivers_a_batch_contiguously_and_in_order(self, bus: Bus, topic: str) -> None:
        batch = [("acme", f"b{i}".encode()) for i in range(50)]
        bus.publish(topic, "globex", b"before")
        bus.publish_many(topic, batch)
        got = drain(bus.consumer(topic, "readers"), 51)
        assert values(got) == [b"before", *[v for _, v in batch]]
        offsets = [m.offset for m in got[1:]]
        assert offsets == list(range(offsets[0], offsets[0] + 50))

    def test_a_batch_with_a_bad_item_is_refused_whole(self, bus: Bus, topic: str) -> None:
        bus.publish(topic, "acme", b"kept")
        bad_batch = [("acme", b"fine"), ("acme", "not bytes"), ("acme", b"also fine")]
        with pytest.raises((TypeError, ValueError)):
            bus.publish_many(topic, bad_batch)  # type: ignore[arg-type]
        assert values(drain(bus.consumer(topic, "readers"), 1)) == [b"kept"]

    def test_an_empty_poll_waits_about_the_timeout_without_spinning(self, bus: Bus, topic: str) -> None:
        bus.publish(topic, "acme", b"only")
        consumer = bus.consumer(topic, "readers")
        assert len(drain(consumer, 1)) == 1
        wall, cpu = time.monotonic(), time.process_time()
        assert consumer.poll(timeout=1.0) == []
        wall, cpu = time.monotonic() - wall, time.process_time() - cpu
        assert 0.8 <= wall <= 3.0
        assert cpu < wall / 2, f"poll burned {cpu:.2f}s of CPU waiting {wall:.2f}s"

    def test_seek_then_commit_resets_the_group_for_a_replay(self, bus: Bus, topic: str) -> None:
        bus.publish_many(topic, [("acme", f"{i}".encode()) for i in range(4)])
        consumer = bus.consumer(topic, "index")
        first_pass = drain(consumer, 4)
        consumer.commit()
        consumer.seek(first_pass[1].offset)
        consumer.commit()
        consumer.close()
        assert values(drain(bus.consumer(topic, "index"), 3)) == [b"1", b"2", b"3"]

    def test_a_waiting_poll_wakes_up_when_a_message_is_published(self, bus: Bus, topic: str) -> None:
        consumer = bus.consumer(topic, "readers")
        drain(consumer, 0, timeout=0.5)
        publisher = threading.Timer(0.3, bus.publish, args=(topic, "acme", b"late"))
        started = time.monotonic()
        publisher.start()
        try:
            got = consumer.poll(timeout=8.0)
        finally:
            publisher.join()
        assert values(got) == [b"late"]
        assert time.monotonic() - started < 4.0

    # --- operations: browsing dead letters, consumer lag, retention ---------------------------

    def test_reading_a_topic_shows_its_messages_and_moves_no_group(self, bus: Bus, topic: str) -> None:
        bus.publish_many(topic, [("acme", b"a"), ("globex", b"b"), ("acme", b"c")])
        assert values(bus.read(topic, 0, 10)) == [b"a", b"b", b"c"]
        assert values(bus.read(topic, 0, 2)) == [b"a", b"b"]
        assert values(drain(bus.consumer(topic, "index"), 3)) == [b"a", b"b", b"c"]

    def test_group_lag_counts_what_the_group_has_not_committed(self, bus: Bus, topic: str) -> None:
        for i in range(5):  # one by one: Tansu reports a batch's end offset as its first offset + 1
            bus.publish(topic, "acme", f"{i}".encode())
        assert sum(bus.group_lag(topic, "index").values()) == 5, "a group that never committed"
        consumer = bus.consumer(topic, "index")
        assert len(drain(consumer, 5)) == 5
        assert sum(bus.group_lag(topic, "index").values()) == 5, "polled is not committed"
        consumer.commit()
        assert sum(bus.group_lag(topic, "index").values()) == 0
        bus.publish(topic, "acme", b"late")
        assert sum(bus.group_lag(topic, "index").values()) == 1
        consumer.close()

    def test_retention_never_drops_what_a_group_has_not_committed(self, bus: Bus, topic: str) -> None:
        bus.publish_many(topic, [("acme", b"a"), ("acme", b"b")])
        consumer = bus.consumer(topic, "index")
        trimmed = bus.trim_all(max_age=0.0)
        assert all(isinstance(n, int) and n >= 0 for n in trimmed.values())
        assert values(drain(consumer, 2)) == [b"a", b"b"]
