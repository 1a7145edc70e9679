"""The Kafka bus: the `Bus` seam over a Kafka cluster, for the distributed deployment.

Why Kafka: it is the log that operators of large listening setups already run,
and consumer groups give exactly the scaling model the stages need -- start a
second `classify` process in the same group and the partitions are split.

Mapping of the seam onto Kafka:

* Each logical topic (``documents``, ``mentions``, ...) is a Kafka topic named
  ``<topic_prefix><topic>``, created on first use with `partitions` partitions,
  so several deployments can share one cluster.
* Messages are keyed by brand (the stages already publish with the brand as key),
  so each brand's order holds within its partition. Order ACROSS keys is only
  Kafka's per-partition order.
* The producer is idempotent with ``acks=all``: `publish` returns once every
  in-sync replica has the message, and retries cannot reorder or duplicate it.
* Consumers join ``<topic_prefix><group>`` with auto-commit off. `commit` commits
  exactly what `poll` returned (or where `seek` moved), so a consumer that dies
  before committing gets its batch redelivered: at-least-once, like the embedded
  bus. On a rebalance the positions of revoked partitions are forgotten rather
  than committed: their new owner re-reads anything not yet committed.
* `publish_many` validates every item before sending any, then sends them all and
  waits for every acknowledgement. Kafka without transactions cannot make a batch
  atomic across partitions: a broker failure halfway leaves a prefix published
  and raises `BusError`. The runner then retries the whole batch, and since ids
  are deterministic and sinks upsert, the repeated prefix changes nothing.

Back-pressure is pull-based: a runner polls its next batch only after the last
one is processed and published, so a slow stage simply falls behind (visible as
consumer lag) instead of buffering without bound. `max_poll_interval_ms` must
exceed the slowest batch, or the broker assumes the member is dead and rebalances.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from listener.errors import BusError
from pipelines.bus import Message

try:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic
    from kafka.consumer.subscription_state import ConsumerRebalanceListener
    from kafka.errors import CommitFailedError, KafkaError, TopicAlreadyExistsError
    from kafka.structs import OffsetAndMetadata
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the Kafka bus needs kafka-python: pip install 'listener[kafka]' "
        "(kafka-python[crc32c]; without crc32c checksums run in pure Python, about 40x slower)"
    ) from exc

if TYPE_CHECKING:
    from listener.config import Config

__all__ = ["KafkaBus", "KafkaBusConsumer"]

log = logging.getLogger(__name__)


def _check_item(key: str, value: bytes) -> None:
    if not isinstance(key, str):
        raise TypeError(f"message key must be str, got {type(key).__name__}")
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"message value must be bytes, got {type(value).__name__}")


class KafkaBus:
    """The `Bus` seam over Kafka (any Kafka-protocol broker: Apache Kafka, Redpanda, Tansu).

    `client_options` go to every kafka-python client unchanged: that is where
    ``security_protocol``, ``sasl_mechanism``, ``sasl_plain_username`` and
    ``ssl_cafile`` go when the cluster needs them.
    """

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str],
        *,
        topic_prefix: str = "listener.",
        partitions: int = 6,
        replication_factor: int = 1,
        max_poll_interval_ms: int = 300_000,
        session_timeout_ms: int = 10_000,
        send_timeout: float = 30.0,
        connect_timeout: float = 30.0,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        if partitions < 1 or replication_factor < 1:
            raise ValueError("partitions and replication_factor must be at least 1")
        self.bootstrap_servers = (
            [bootstrap_servers] if isinstance(bootstrap_servers, str) else list(bootstrap_servers)
        )
        self.topic_prefix = topic_prefix
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.max_poll_interval_ms = max_poll_interval_ms
        self.session_timeout_ms = session_timeout_ms
        self.send_timeout = send_timeout
        self.connect_timeout = connect_timeout
        self.client_options = dict(client_options or {})
        self._known_topics: set[str] = set()
        self._lock = threading.Lock()
        self._producer: KafkaProducer | None = None
        self._admin: KafkaAdminClient | None = None
        self._closed = False

    @classmethod
    def from_config(cls, config: Config) -> KafkaBus:
        kafka = config.bus.kafka
        return cls(
            kafka.bootstrap_servers,
            topic_prefix=kafka.topic_prefix,
            partitions=kafka.partitions,
            replication_factor=kafka.replication_factor,
            max_poll_interval_ms=int(kafka.max_poll_interval * 1000),
            client_options=kafka.client_options(),
        )

    def __enter__(self) -> KafkaBus:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def topic_name(self, topic: str) -> str:
        return f"{self.topic_prefix}{topic}"

    def group_name(self, group: str) -> str:
        return f"{self.topic_prefix}{group}"

    # -- clients ---------------------------------------------------------------------

    def _common(self) -> dict[str, Any]:
        return {"bootstrap_servers": self.bootstrap_servers, **self.client_options}

    def _check_open(self) -> None:
        if self._closed:
            raise BusError("Kafka bus is closed")

    def producer(self) -> KafkaProducer:
        with self._lock:
            self._check_open()
            if self._producer is None:
                try:
                    # `publish_many` flushes after its last send, so lingering costs no latency;
                    # it lets one batch of records go out as one produce request per partition
                    # instead of one every couple of milliseconds while the caller is still
                    # sending (about 3x the publish rate on 1 KB records: benchmarks/pipeline.py).
                    self._producer = KafkaProducer(
                        acks="all", linger_ms=50, batch_size=512 * 1024, **self._common()
                    )
                except KafkaError as exc:
                    raise BusError(f"cannot reach Kafka at {self.bootstrap_servers}: {exc}") from exc
            return self._producer

    def ensure_topic(self, topic: str) -> str:
        """Create the Kafka topic for `topic` if it does not exist; return its name."""
        name = self.topic_name(topic)
        if name in self._known_topics:
            return name
        with self._lock:
            self._check_open()
            try:
                if self._admin is None:
                    self._admin = KafkaAdminClient(
                        bootstrap_timeout_ms=int(self.connect_timeout * 1000), **self._common()
                    )
                self._admin.create_topics([NewTopic(name, self.partitions, self.replication_factor)])
            except TopicAlreadyExistsError:
                pass
            except KafkaError as exc:
                raise BusError(
                    f"cannot create Kafka topic {name!r} on {self.bootstrap_servers}: {exc}"
                ) from exc
            self._known_topics.add(name)
        return name

    # -- the Bus seam ----------------------------------------------------------------

    def publish(self, topic: str, key: str, value: bytes) -> None:
        self.publish_many(topic, [(key, value)])

    def publish_many(self, topic: str, items: Sequence[tuple[str, bytes]]) -> None:
        """Send every item and wait until each is acknowledged by all in-sync replicas."""
        items = list(items)
        for key, value in items:
            _check_item(key, value)
        if not items:
            return
        name = self.ensure_topic(topic)
        producer = self.producer()
        try:
            futures = [producer.send(name, key=k.encode("utf-8"), value=bytes(v)) for k, v in items]
            producer.flush(timeout=self.send_timeout)
            for future in futures:
                future.get(timeout=self.send_timeout)
        except KafkaError as exc:
            raise BusError(f"publish to Kafka topic {name!r} failed: {exc}") from exc

    def consumer(self, topic: str, group: str) -> KafkaBusConsumer:
        if not isinstance(group, str) or not group:
            raise ValueError(f"consumer group must be a non-empty string, got {group!r}")
        self._check_open()
        return KafkaBusConsumer(self, topic, group)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            producer, self._producer = self._producer, None
            admin, self._admin = self._admin, None
        if producer is not None:
            producer.close(timeout=self.send_timeout)
        if admin is not None:
            admin.close()

    # -- browsing, lag and retention ---------------------------------------------------

    def read(
        self, topic: str, offset: int = 0, limit: int = 100, partition: int | None = None
    ) -> list[Message]:
        """Messages of `topic` from `offset` in each partition (or one), without joining a group.

        `listener dlq list` uses this, so inspecting dead letters moves no offset.
        """
        name = self.ensure_topic(topic)
        reader = KafkaConsumer(enable_auto_commit=False, **self._common())
        try:
            parts = sorted(reader.partitions_for_topic(name) or ())
            tps = [TopicPartition(name, p) for p in parts if partition is None or p == partition]
            reader.assign(tps)
            ends = reader.end_offsets(tps)
            for tp in tps:
                reader.seek(tp, offset)
            messages: list[Message] = []
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline and any(reader.position(tp) < ends[tp] for tp in tps):
                for records in reader.poll(timeout_ms=200).values():
                    messages.extend(_message(topic, r) for r in records)
            return sorted(messages, key=lambda m: (m.timestamp, m.partition, m.offset))[:limit]
        finally:
            reader.close(autocommit=False)

    def group_lag(self, topic: str, group: str) -> dict[int, int]:
        """Per partition, how far `group`'s committed offset is behind the end of `topic`.

        Read with a client of its own that never joins the group, so a metrics
        scrape neither touches a stage's consumer (not thread-safe) nor triggers a
        rebalance. A group that never committed lags by what the partition retains.
        """
        name = self.ensure_topic(topic)
        reader = KafkaConsumer(group_id=self.group_name(group), enable_auto_commit=False, **self._common())
        try:
            tps = [TopicPartition(name, p) for p in sorted(reader.partitions_for_topic(name) or ())]
            starts, ends = reader.beginning_offsets(tps), reader.end_offsets(tps)
            return {tp.partition: max(0, ends[tp] - max(reader.committed(tp) or 0, starts[tp])) for tp in tps}
        except KafkaError as exc:
            raise BusError(f"cannot read the lag of group {group!r} on {name!r}: {exc}") from exc
        finally:
            reader.close(autocommit=False)

    def trim_all(self, *, max_age: float) -> dict[str, int]:
        """Delete nothing: on Kafka retention is the broker's job, not the client's.

        Each topic's ``retention.ms`` (or the broker's ``log.retention.hours``) drops old
        segments on the broker's own schedule; a client deleting records itself would race
        it and need admin rights the stages should not hold. So the housekeeping job that
        trims the embedded bus is a no-op here: set `retention.ms` on the topics to `max_age`.
        """
        return {}


def _message(topic: str, record: Any) -> Message:
    key = record.key.decode("utf-8", "replace") if record.key is not None else ""
    return Message(
        topic, record.partition, record.offset, key, bytes(record.value or b""), record.timestamp / 1000
    )


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: KafkaBusConsumer) -> None:
        self.owner = owner

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.owner._forget({tp.partition for tp in revoked})

    def on_partitions_assigned(self, assigned: Any) -> None:
        log.info(
            "group %s on %s: assigned partitions %s",
            self.owner.group,
            self.owner.topic,
            sorted(tp.partition for tp in assigned),
        )


class KafkaBusConsumer:
    """One member of a consumer group on one topic; use it from one thread at a time."""

    def __init__(self, bus: KafkaBus, topic: str, group: str) -> None:
        self.bus = bus
        self.topic = topic
        self.group = group
        self.name = bus.ensure_topic(topic)
        self._positions: dict[int, int] = {}  # partition -> next offset to commit
        self._closed = False
        try:
            self._consumer = KafkaConsumer(
                group_id=bus.group_name(group),
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_interval_ms=bus.max_poll_interval_ms,
                session_timeout_ms=bus.session_timeout_ms,
                heartbeat_interval_ms=max(100, bus.session_timeout_ms // 4),
                **bus._common(),
            )
            self._consumer.subscribe([self.name], listener=_Rebalance(self))
        except KafkaError as exc:
            raise BusError(f"cannot join group {group!r} on Kafka topic {self.name!r}: {exc}") from exc

    def _forget(self, partitions: set[int]) -> None:
        for partition in partitions:
            self._positions.pop(partition, None)

    def _check_open(self) -> None:
        if self._closed:
            raise BusError(f"consumer of {self.topic!r} in group {self.group!r} is closed")

    def poll(self, max_records: int = 100, timeout: float = 1.0) -> list[Message]:
        """Up to `max_records` messages; the first poll also joins the group (a few seconds)."""
        self._check_open()
        if max_records < 1:
            raise ValueError(f"max_records must be at least 1, got {max_records}")
        try:
            batches = self._consumer.poll(timeout_ms=int(max(0.0, timeout) * 1000), max_records=max_records)
        except KafkaError as exc:
            raise BusError(f"poll of {self.name!r} in group {self.group!r} failed: {exc}") from exc
        messages: list[Message] = []
        for tp in sorted(batches, key=lambda tp: tp.partition):
            records = batches[tp]
            if records:
                messages.extend(_message(self.topic, r) for r in records)
                self._positions[tp.partition] = records[-1].offset + 1
        return messages

    def commit(self) -> None:
        """Commit what `poll` returned on the partitions this member still owns.

        If a rebalance took partitions away meanwhile, their part of the batch is
        not committed here: the new owner reprocesses it (at-least-once).
        """
        self._check_open()
        owned = {tp.partition for tp in self._consumer.assignment()}
        offsets = {
            TopicPartition(self.name, p): OffsetAndMetadata(o, "", -1)
            for p, o in self._positions.items()
            if p in owned
        }
        if not offsets:
            return
        try:
            self._consumer.commit(offsets)
        except CommitFailedError as exc:
            log.warning(
                "group %s on %s: commit lost to a rebalance; the batch is redelivered: %s",
                self.group,
                self.name,
                exc,
            )
            self._positions.clear()
        except KafkaError as exc:
            raise BusError(f"commit of group {self.group!r} on {self.name!r} failed: {exc}") from exc

    def seek(self, offset: int, partition: int = 0) -> None:
        """Replay `partition` from `offset`; the committed offset moves only with `commit`."""
        self._check_open()
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        tp = TopicPartition(self.name, partition)
        if tp not in self._consumer.assignment():
            raise BusError(f"partition {partition} of {self.name!r} is not assigned to this member")
        self._consumer.seek(tp, offset)
        self._positions[partition] = offset

    def lag(self) -> dict[int, int]:
        """Messages not yet polled, per owned partition (what the consumer-lag gauge shows)."""
        owned = list(self._consumer.assignment())
        if not owned:
            return {}
        ends = self._consumer.end_offsets(owned)
        return {tp.partition: max(0, ends[tp] - self._consumer.position(tp)) for tp in owned}

    def close(self) -> None:
        """Leave the group without committing: what was polled since the last commit comes back."""
        if not self._closed:
            self._closed = True
            self._consumer.close(autocommit=False)
