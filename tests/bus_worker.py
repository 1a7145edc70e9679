"""A separate process that uses the embedded bus, for tests that kill it with SIGKILL.

    python tests/bus_worker.py publish DB TOPIC COUNT           # prints "acked I" per message
    python tests/bus_worker.py publish-batches DB TOPIC COUNT SIZE  # prints "acked J" per batch
    python tests/bus_worker.py consume DB TOPIC GROUP SIZE      # commits one batch, holds the next

Each line is printed (and flushed) only after the bus accepted the message, so
whatever the parent has read was acknowledged before the kill.
"""

from __future__ import annotations

import hashlib
import sys
import time

from pipelines.bus_sqlite import EmbeddedBus


def payload(label: str) -> bytes:
    """A value whose integrity can be checked after the crash: label plus its digest."""
    return f"{label}:{hashlib.sha256(label.encode()).hexdigest()}".encode()


def is_intact(value: bytes) -> bool:
    label, _, digest = value.decode().partition(":")
    return digest == hashlib.sha256(label.encode()).hexdigest()


def publish(db: str, topic: str, count: int) -> None:
    bus = EmbeddedBus(db)
    for i in range(count):
        bus.publish(topic, f"brand-{i % 3}", payload(f"m{i}"))
        print(f"acked {i}", flush=True)


def publish_batches(db: str, topic: str, count: int, size: int) -> None:
    bus = EmbeddedBus(db)
    for j in range(count):
        bus.publish_many(topic, [("acme", payload(f"b{j}-{i}")) for i in range(size)])
        print(f"acked {j}", flush=True)


def consume(db: str, topic: str, group: str, size: int) -> None:
    consumer = EmbeddedBus(db).consumer(topic, group)
    handled = consumer.poll(max_records=size, timeout=5.0)
    consumer.commit()
    print("committed " + " ".join(str(m.offset) for m in handled), flush=True)
    in_flight = consumer.poll(max_records=size, timeout=5.0)
    print("polled " + " ".join(str(m.offset) for m in in_flight), flush=True)
    while True:  # mid-batch, never committing: waits for SIGKILL
        time.sleep(1)


def main(argv: list[str]) -> None:
    mode, db, topic, *rest = argv
    if mode == "publish":
        publish(db, topic, int(rest[0]))
    elif mode == "publish-batches":
        publish_batches(db, topic, int(rest[0]), int(rest[1]))
    elif mode == "consume":
        consume(db, topic, rest[0], int(rest[1]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
