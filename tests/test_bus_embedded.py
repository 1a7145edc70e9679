"""The embedded bus: the shared contract, plus what only a file on disk can promise.

Durability is tested the hard way: a real process is killed with SIGKILL while
it publishes or consumes, and the file is reopened afterwards.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bus_contract import BusContract, BusFactory, drain
from bus_worker import is_intact

from listener.errors import BusError
from pipelines.bus_sqlite import EmbeddedBus

WORKER = Path(__file__).with_name("bus_worker.py")


class TestEmbeddedBusContract(BusContract):
    @pytest.fixture
    def bus_factory(self, tmp_path: Path) -> BusFactory:
        return lambda: EmbeddedBus(tmp_path / "bus.db")


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[EmbeddedBus]:
    bus = EmbeddedBus(tmp_path / "bus.db")
    yield bus
    bus.close()


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- killed processes ------------------------------------------------------------------


def start_worker(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_until_killed(proc: subprocess.Popen[str], lines_before_kill: int) -> list[str]:
    """Read acknowledgements, SIGKILL the worker mid-stream, then collect what it had printed."""
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line.split())
        if len(lines) >= lines_before_kill:
            break
    else:
        pytest.fail(f"worker ended early: {proc.stderr.read() if proc.stderr else ''}")
    proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the worker finished before it could be killed"
    return [" ".join(words) for words in lines] + rest.splitlines()


def test_every_acknowledged_message_survives_the_publisher_being_killed(tmp_path: Path) -> None:
    db = tmp_path / "bus.db"
    proc = start_worker("publish", db, "documents", 1_000_000)
    acked = [int(line.split()[1]) for line in read_until_killed(proc, 300)]

    reopened = EmbeddedBus(db)
    stored = drain(reopened.consumer("documents", "audit"), len(acked), max_records=10_000)
    reopened.close()
    assert len(stored) >= len(acked)
    assert [m.offset for m in stored] == list(range(len(stored))), "offsets must have no gaps"
    by_label = {m.value.split(b":")[0].decode(): m for m in stored}
    for i in acked:
        message = by_label[f"m{i}"]
        assert is_intact(message.value) and message.key == f"brand-{i % 3}"


def test_a_batch_is_stored_whole_or_not_at_all_when_the_publisher_is_killed(tmp_path: Path) -> None:
    db = tmp_path / "bus.db"
    proc = start_worker("publish-batches", db, "documents", 1_000_000, 250)
    acked = {int(line.split()[1]) for line in read_until_killed(proc, 20)}

    reopened = EmbeddedBus(db)
    stored = drain(reopened.consumer("documents", "audit"), 250 * len(acked), max_records=100_000)
    reopened.close()
    sizes: dict[int, int] = {}
    for message in stored:
        assert is_intact(message.value)
        batch = int(message.value.split(b"-")[0][1:])
        sizes[batch] = sizes.get(batch, 0) + 1
    assert acked <= set(sizes)
    assert set(sizes.values()) == {250}, "a killed publish_many left a partial batch"


def test_a_consumer_killed_mid_batch_gets_its_uncommitted_messages_again(tmp_path: Path) -> None:
    db = tmp_path / "bus.db"
    with EmbeddedBus(db) as bus:
        bus.publish_many("mentions", [("acme", f"m{i}".encode()) for i in range(25)])
    proc = start_worker("consume", db, "mentions", "index", 10)
    lines = read_until_killed(proc, 2)
    committed = [int(o) for o in lines[0].split()[1:]]
    in_flight = [int(o) for o in lines[1].split()[1:]]
    assert committed == list(range(10)) and in_flight == list(range(10, 20))

    with EmbeddedBus(db) as bus:
        again = drain(bus.consumer("mentions", "index"), 15)
    assert [m.offset for m in again] == list(range(10, 25))


def test_a_poll_sees_what_another_process_publishes(tmp_path: Path, bus: EmbeddedBus) -> None:
    consumer = bus.consumer("documents", "match")
    proc = start_worker("publish", tmp_path / "bus.db", "documents", 3)
    got = drain(consumer, 3, timeout=20)
    proc.wait(timeout=20)
    assert [m.offset for m in got] == [0, 1, 2]


# -- threads ---------------------------------------------------------------------------


def test_threads_publishing_at_once_get_distinct_consecutive_offsets(bus: EmbeddedBus) -> None:
    def publisher(n: int) -> None:
        for i in range(50):
            bus.publish("documents", f"brand-{n}", f"{n}-{i}".encode())

    threads = [threading.Thread(target=publisher, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    got = drain(bus.consumer("documents", "audit"), 200, max_records=500)
    assert [m.offset for m in got] == list(range(200))
    for n in range(4):
        assert [m.value for m in got if m.key == f"brand-{n}"] == [f"{n}-{i}".encode() for i in range(50)]


def test_a_poll_in_another_thread_is_woken_at_once_by_a_publish(tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path / "bus.db", poll_interval=5.0)  # only the wake-up can be fast
    consumer = bus.consumer("alerts", "notify")
    result: list[float] = []

    def wait_for_alert() -> None:
        started = time.monotonic()
        consumer.poll(timeout=10.0)
        result.append(time.monotonic() - started)

    waiter = threading.Thread(target=wait_for_alert)
    waiter.start()
    time.sleep(0.2)
    bus.publish("alerts", "acme", b"spike")
    waiter.join(timeout=15)
    bus.close()
    assert result and result[0] < 2.0


# -- retention -------------------------------------------------------------------------


def test_trim_deletes_only_what_every_group_has_committed(bus: EmbeddedBus) -> None:
    bus.publish_many("mentions", [("acme", f"{i}".encode()) for i in range(10)])
    index, detect = bus.consumer("mentions", "index"), bus.consumer("mentions", "detect")
    index.poll(max_records=8, timeout=0)
    index.commit()
    detect.poll(max_records=3, timeout=0)
    detect.commit()

    assert bus.trim("mentions", before_offset=100) == 3
    assert [m.offset for m in bus.consumer("mentions", "detect").poll(timeout=0)] == list(range(3, 10))
    (stats,) = bus.stats()
    assert (stats.messages, stats.first_offset, stats.next_offset) == (7, 3, 10)


def test_trim_by_age_keeps_recent_messages(tmp_path: Path) -> None:
    clock = FakeClock()
    bus = EmbeddedBus(tmp_path / "bus.db", clock=clock)
    bus.publish_many("dlq", [("acme", b"old-1"), ("acme", b"old-2")])
    clock.now += 8 * 86400
    bus.publish("dlq", "acme", b"new")
    assert bus.trim("dlq", max_age=7 * 86400) == 2
    assert [m.value for m in bus.consumer("dlq", "ops").poll(timeout=0)] == [b"new"]
    bus.close()


def test_a_group_that_has_not_committed_holds_back_retention(bus: EmbeddedBus) -> None:
    bus.publish_many("documents", [("acme", b"a"), ("acme", b"b")])
    bus.consumer("documents", "slow-stage")
    assert bus.trim("documents", before_offset=2) == 0
    bus.delete_group("slow-stage")
    assert bus.trim("documents", before_offset=2) == 2


def test_offsets_are_never_reused_after_everything_was_trimmed(bus: EmbeddedBus) -> None:
    bus.publish_many("documents", [("acme", b"a"), ("acme", b"b")])
    assert bus.trim("documents", before_offset=2) == 2
    bus.publish("documents", "acme", b"c")
    (message,) = bus.consumer("documents", "late-group").poll(timeout=0)
    assert (message.offset, message.value) == (2, b"c")


def test_trim_all_applies_age_retention_to_every_topic(tmp_path: Path) -> None:
    clock = FakeClock()
    bus = EmbeddedBus(tmp_path / "bus.db", clock=clock)
    bus.publish("documents", "acme", b"d")
    bus.publish("dlq", "acme", b"x")
    clock.now += 100
    assert bus.trim_all(max_age=50) == {"dlq": 1, "documents": 1}
    bus.close()


# -- settings and bad input ------------------------------------------------------------


def test_the_file_is_in_wal_mode_with_the_chosen_synchronous_level(tmp_path: Path) -> None:
    bus = EmbeddedBus(tmp_path / "bus.db", synchronous="full")
    bus.publish("documents", "acme", b"x")
    conn = bus._conn()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    bus.close()
    with pytest.raises(ValueError, match="synchronous"):
        EmbeddedBus(tmp_path / "bus.db", synchronous="off")  # type: ignore[arg-type]


def test_a_deployment_keeps_its_bus_in_the_data_dir(tmp_path: Path) -> None:
    bus = EmbeddedBus.in_dir(tmp_path / "data")
    bus.publish("documents", "acme", b"x")
    bus.close()
    assert (tmp_path / "data" / "bus.db").is_file()


@pytest.mark.parametrize("topic", ["", "has space", "semi;colon", "x" * 250])
def test_an_invalid_topic_name_is_refused_clearly(bus: EmbeddedBus, topic: str) -> None:
    with pytest.raises(ValueError, match="invalid topic name"):
        bus.publish(topic, "acme", b"x")


def test_a_text_value_is_refused_and_nothing_is_stored(bus: EmbeddedBus) -> None:
    with pytest.raises(TypeError, match="bytes"):
        bus.publish("documents", "acme", "text")  # type: ignore[arg-type]
    assert bus.stats() == []


def test_a_closed_bus_or_consumer_says_so(bus: EmbeddedBus) -> None:
    consumer = bus.consumer("documents", "match")
    consumer.close()
    with pytest.raises(BusError, match="closed"):
        consumer.poll(timeout=0)
    bus.close()
    with pytest.raises(BusError, match="closed"):
        bus.publish("documents", "acme", b"x")


def test_a_file_that_is_not_a_bus_gives_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "bus.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BusError, match=r"bus\.db"):
        EmbeddedBus(junk)


def test_a_seek_to_another_partition_is_refused(bus: EmbeddedBus) -> None:
    with pytest.raises(ValueError, match="one partition"):
        bus.consumer("documents", "match").seek(0, partition=1)


def test_the_committed_offset_is_visible_to_operators(bus: EmbeddedBus) -> None:
    assert bus.committed("documents", "match") is None
    bus.publish_many("documents", [("acme", b"a"), ("acme", b"b")])
    consumer = bus.consumer("documents", "match")
    assert bus.committed("documents", "match") == 0
    consumer.poll(timeout=0)
    consumer.commit()
    assert bus.committed("documents", "match") == 2
    assert sqlite3.connect(bus.path).execute("SELECT COUNT(*) FROM group_offsets").fetchone()[0] == 1


def test_browsing_a_topic_does_not_register_a_group(bus: EmbeddedBus) -> None:
    bus.publish_many("dlq", [("acme", b"a"), ("acme", b"b"), ("acme", b"c")])
    assert [m.value for m in bus.read("dlq", offset=1)] == [b"b", b"c"]
    assert bus.trim("dlq", before_offset=3) == 3
