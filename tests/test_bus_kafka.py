"""The Kafka bus: the shared bus contract on a real broker, plus what only partitions can show.

The broker is Tansu (a Kafka-protocol broker) started on loopback for the session.
Contract topics have one partition, because the contract's ordering test checks
the order of several keys together; the tests below use several partitions.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from bus_contract import BusContract, BusFactory, drain

from listener.errors import BusError
from pipelines.bus_kafka import KafkaBus

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def kafka_bus(bootstrap: str, prefix: str, partitions: int = 1) -> KafkaBus:
    # A short poll interval lets the broker finish group rebalances quickly in tests.
    return KafkaBus(
        bootstrap,
        topic_prefix=prefix,
        partitions=partitions,
        max_poll_interval_ms=6000,
        session_timeout_ms=6000,
    )


class TestKafkaBusContract(BusContract):
    @pytest.fixture
    def bus_factory(self, kafka_bootstrap: str) -> BusFactory:
        prefix = f"t{uuid.uuid4().hex[:8]}."
        return lambda: kafka_bus(kafka_bootstrap, prefix)


@pytest.fixture
def bus(kafka_bootstrap: str) -> Iterator[KafkaBus]:
    bus = kafka_bus(kafka_bootstrap, f"t{uuid.uuid4().hex[:8]}.", partitions=3)
    yield bus
    bus.close()


def test_each_brand_keeps_its_order_across_partitions(bus: KafkaBus) -> None:
    sent = [(f"brand-{i % 5}", f"{i % 5}:{i}".encode()) for i in range(100)]
    bus.publish_many("mentions", sent)
    got = drain(bus.consumer("mentions", "index"), len(sent), max_records=500)
    assert sorted(m.value for m in got) == sorted(v for _, v in sent)
    assert len({m.partition for m in got}) > 1, "five brands should land on more than one partition"
    for brand in {k for k, _ in sent}:
        assert [m.value for m in got if m.key == brand] == [v for k, v in sent if k == brand]
        assert len({m.partition for m in got if m.key == brand}) == 1


def test_two_members_of_a_group_split_the_partitions(bus: KafkaBus) -> None:
    bus.publish_many("mentions", [(f"brand-{i % 7}", f"m{i}".encode()) for i in range(70)])
    first, second = bus.consumer("mentions", "classify"), bus.consumer("mentions", "classify")
    got: dict[str, list[bytes]] = {"first": [], "second": []}
    deadline = time.monotonic() + 30
    while len(got["first"]) + len(got["second"]) < 70 and time.monotonic() < deadline:
        for name, member in (("first", first), ("second", second)):
            batch = member.poll(max_records=10, timeout=0.3)
            got[name].extend(m.value for m in batch)
            member.commit()
    assert sorted(got["first"] + got["second"]) == sorted(f"m{i}".encode() for i in range(70))
    first.close()
    second.close()


def test_a_member_that_leaves_hands_its_uncommitted_messages_to_the_other(bus: KafkaBus) -> None:
    bus.publish_many("mentions", [(f"brand-{i % 6}", f"m{i}".encode()) for i in range(60)])
    leaving = bus.consumer("mentions", "classify")
    taken = drain(leaving, 60, max_records=1000)
    assert len(taken) == 60
    leaving.close()  # polled everything, committed nothing
    staying = bus.consumer("mentions", "classify")
    assert sorted(m.value for m in drain(staying, 60, max_records=1000)) == sorted(m.value for m in taken)
    staying.close()


def test_lag_counts_what_the_member_has_not_read(bus: KafkaBus) -> None:
    bus.publish_many("alerts", [("acme", b"a"), ("acme", b"b"), ("acme", b"c")])
    consumer = bus.consumer("alerts", "notify")
    drain(consumer, 3)
    # One publish per message: Tansu answers "latest offset" with the last record
    # batch's base offset + 1 rather than the high watermark, which undercounts a
    # multi-record batch (Apache Kafka reports the high watermark).
    bus.publish("alerts", "acme", b"d")
    bus.publish("alerts", "acme", b"e")
    assert sum(consumer.lag().values()) == 2
    consumer.close()


def test_browsing_a_topic_moves_no_group(bus: KafkaBus) -> None:
    bus.publish_many("dlq", [("acme", b"x"), ("globex", b"y")])
    assert sorted(m.value for m in bus.read("dlq")) == [b"x", b"y"]
    assert sorted(m.value for m in drain(bus.consumer("dlq", "ops"), 2)) == [b"x", b"y"]


def test_topics_are_prefixed_and_get_the_configured_partitions(bus: KafkaBus) -> None:
    name = bus.ensure_topic("documents")
    assert name == f"{bus.topic_prefix}documents"
    from kafka import KafkaConsumer

    probe = KafkaConsumer(bootstrap_servers=bus.bootstrap_servers)
    assert probe.partitions_for_topic(name) == {0, 1, 2}
    probe.close()


def test_a_seek_to_a_partition_this_member_does_not_own_is_refused(bus: KafkaBus) -> None:
    consumer = bus.consumer("documents", "match")
    with pytest.raises(BusError, match="not assigned"):
        consumer.seek(0, partition=2)
    consumer.close()


def test_an_unreachable_cluster_gives_a_bus_error() -> None:
    bus = KafkaBus("127.0.0.1:1", connect_timeout=2.0)
    with pytest.raises(BusError, match=r"127\.0\.0\.1:1"):
        bus.publish("documents", "acme", b"x")
    bus.close()
