"""The state database goes down mid-stream: the stages wait for it, and nothing is dead-lettered.

An on-call team's worst night is a PostgreSQL failover during a crisis. The
detect stage cannot save its counts, so it must neither crash (blinding the
monitor) nor dead-letter the mentions (losing the alert). It waits, with the
batch uncommitted on the bus, and carries on when the database is back.
This test runs its own PostgreSQL server so that it can stop and restart it.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alertstory import RULE, T0, Clock, scored
from postgres_server import start_again, start_postgres, stop_postgres

from alerts.stages import DetectStage
from alerts.state import MIGRATIONS, DetectorStore
from listener.records import encode
from listener.statedb import PostgresStateDB
from pipelines.bus_sqlite import EmbeddedBus
from pipelines.runtime import StageRunner

pytestmark = pytest.mark.slow


@pytest.fixture
def own_postgres() -> Iterator[tuple[str, Path]]:
    root = Path(tempfile.mkdtemp(prefix="listener-pg-outage-"))
    url, data = start_postgres(root)
    try:
        yield url, data
    finally:
        stop_postgres(data)
        shutil.rmtree(root, ignore_errors=True)


def test_a_state_database_outage_holds_the_batch_and_loses_no_mention(
    own_postgres: tuple[str, Path], tmp_path: Path
) -> None:
    url, data = own_postgres
    db = PostgresStateDB(url, connect_timeout=2)
    db.migrate("detector", MIGRATIONS)
    bus = EmbeddedBus(tmp_path / "bus.db")
    detect = DetectStage({"Acme": RULE}, {"Acme": None}, state_path=db, clock=Clock(T0 + timedelta(hours=1)))
    runner = StageRunner(bus, detect, poll_timeout=0.1, backoff=0.2, max_backoff=1.0)
    stop = threading.Event()
    thread = threading.Thread(target=runner.run_forever, args=(stop,), daemon=True)
    try:
        stop_postgres(data)
        mentions = [scored(T0 + timedelta(minutes=i % 50)) for i in range(30)]
        bus.publish_many("mentions.scored", [(m.brand, encode(m)) for m in mentions])
        thread.start()
        deadline = time.monotonic() + 30
        while runner.stats.errors < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert runner.stats.errors >= 2, "the stage noticed the outage and kept trying"
        assert thread.is_alive(), "an outage does not stop the stage"
        assert bus.committed("mentions.scored", "detect") == 0, "the batch waits on the bus"
        assert runner.stats.dead_letters == 0

        start_again(data)
        while bus.committed("mentions.scored", "detect") < len(mentions) and time.monotonic() < deadline + 30:
            time.sleep(0.1)
        assert bus.committed("mentions.scored", "detect") == len(mentions)
        assert runner.stats.dead_letters == 0
        counted = DetectorStore(db).load("Acme")
        assert sum(counted.negative.values()) == len(mentions), "every mention counted once"
    finally:
        stop.set()
        thread.join(timeout=10)
        bus.close()
        db.close()
