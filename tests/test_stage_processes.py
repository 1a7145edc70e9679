"""Stages as separate processes on Kafka: a `classify` process is SIGKILLed mid-stream,
restarted, and every mention still ends up indexed exactly once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from stageprocs import answers_ok, consumed, free_port

from listener.records import Document, Mention, document_id, encode
from listener.stages import IndexStage
from pipelines.bus_kafka import KafkaBus
from pipelines.runtime import StageRunner
from pipelines.store import SearchRequest
from pipelines.store_sqlite import EmbeddedStore

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

N = 600


def write_config(tmp_path: Path, bootstrap: str, prefix: str) -> Path:
    path = tmp_path / "watch.yaml"
    path.write_text(
        "data_dir: data\n"
        "brands:\n  - name: acme\n    queries: ['acme']\n  - name: globex\n    queries: ['globex']\n"
        "bus:\n  engine: kafka\n  kafka:\n"
        f"    bootstrap_servers: ['{bootstrap}']\n    topic_prefix: '{prefix}'\n"
        "    partitions: 2\n    max_poll_interval: 6s\n"
    )
    return path


def mentions(n: int) -> list[Mention]:
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        brand = ("acme", "globex")[i % 2]
        doc = Document(
            id=document_id("news", f"item-{i}"),
            source="news",
            source_type="feed",
            text=f"{brand} item {i}: the {brand} service is down again",
            published=now,
            fetched=now,
        )
        out.append(Mention.from_document(doc, brand, (brand,)))
    return out


def fresh_deployment(tmp_path: Path, kafka_bootstrap: str) -> tuple[Path, KafkaBus]:
    """A watch.yaml and a bus on topics of their own (two partitions), so tests never share a topic."""
    prefix = f"k{uuid.uuid4().hex[:8]}."
    config = write_config(tmp_path, kafka_bootstrap, prefix)
    bus = KafkaBus(
        kafka_bootstrap, topic_prefix=prefix, partitions=2, max_poll_interval_ms=6000, session_timeout_ms=6000
    )
    return config, bus


def start_classify(config: Path, *options: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "listener.cli", "run", "--stage", "classify", "-c", str(config), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_a_classify_process_killed_mid_stream_loses_and_duplicates_nothing(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    config, bus = fresh_deployment(tmp_path, kafka_bootstrap)
    sent = mentions(N)
    bus.publish_many("mentions", [(m.brand, encode(m)) for m in sent])

    store = EmbeddedStore(tmp_path / "store.db")
    index = StageRunner(bus, IndexStage(store), batch_size=200, poll_timeout=0.5)
    first = start_classify(config)
    deadline = time.monotonic() + 180
    while index.stats.messages_in == 0 and time.monotonic() < deadline:
        index.run_once()
    assert 0 < index.stats.messages_in < N, "the kill must land mid-stream"
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)

    second = start_classify(config)
    try:
        while store.search(SearchRequest(limit=0)).total < N and time.monotonic() < deadline:
            index.run_once()
        index.run_until_idle(idle_timeout=3.0)
    finally:
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=60)
    stored = [store.get(m.id) for m in sent]
    assert all(s is not None and s.sentiment.model_id for s in stored)
    assert store.search(SearchRequest(limit=0)).total == N, "every mention indexed exactly once"
    assert second.returncode == 0, err.decode(errors="replace")[-2000:]
    index.close()
    store.close()
    bus.close()


def test_two_classify_processes_in_one_group_split_the_partitions(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    config, bus = fresh_deployment(tmp_path, kafka_bootstrap)
    ports = [free_port(), free_port()]
    procs = [start_classify(config, "--metrics-port", str(port)) for port in ports]
    store = EmbeddedStore(tmp_path / "store.db")
    index = StageRunner(bus, IndexStage(store), batch_size=200, poll_timeout=0.5)
    try:
        # Both members must be in the group before the work arrives, or the first takes it all.
        deadline = time.monotonic() + 180
        health = [f"http://127.0.0.1:{port}/healthz" for port in ports]  # ok once the model is loaded
        while time.monotonic() < deadline and not all(answers_ok(url) for url in health):
            time.sleep(0.5)
        time.sleep(8)  # the group settles: joins on Tansu complete a few seconds apart
        sent = mentions(200)
        bus.publish_many("mentions", [(m.brand, encode(m)) for m in sent])
        while store.search(SearchRequest(limit=0)).total < len(sent) and time.monotonic() < deadline:
            index.run_once()
        shares = [consumed(port, "classify") for port in ports]
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        errors = [proc.communicate(timeout=60)[1] for proc in procs]
    assert store.search(SearchRequest(limit=0)).total == len(sent)
    assert all(share > 0 for share in shares), f"each process classified some of the stream: {shares}"
    assert sum(shares) >= len(sent)
    for proc, err in zip(procs, errors, strict=True):
        assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    index.close()
    store.close()
    bus.close()
