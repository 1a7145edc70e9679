"""Operating stages: Prometheus scrapes each process's real /metrics endpoint over loopback,
a health check tells a starting stage from a working one, and logs come out as one JSON
object per line carrying the stage and, where known, the mention id."""

from __future__ import annotations

import io
import json
import logging
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from listener.config import load_config
from listener.observability import JsonFormatter, MetricsServer
from listener.records import Document, Mention, Record, decode, document_id, encode
from listener.stages import MatchStage
from pipelines.bus import Bus
from pipelines.bus_sqlite import EmbeddedBus
from pipelines.runtime import StageRunner
from pipelines.stage import Output


def documents(n: int) -> list[tuple[str, bytes]]:
    now = datetime.now(UTC)
    return [
        (
            "news",
            encode(
                Document(
                    id=document_id("news", f"d{i}"),
                    source="news",
                    source_type="feed",
                    text=f"acme outage number {i}",
                    published=now,
                    fetched=now,
                )
            ),
        )
        for i in range(n)
    ]


def scrape(url: str) -> dict[str, float]:
    """Every sample of a /metrics page as 'name{label=value,...}' -> value."""
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def healthz(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def brands_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "watch.yaml"
    path.write_text(f"data_dir: {tmp_path / 'data'}\nbrands:\n  - name: acme\n    queries: ['acme']\n{extra}")
    return path


def metrics_story(bus: Bus, tmp_path: Path) -> None:
    """A match stage consumes 30 documents and one poison message; the scrapes tell the story."""
    cfg = load_config(brands_config(tmp_path))
    # One message at a time: Tansu reports a topic's end as the last record batch's start + 1.
    for key, value in [*documents(30), ("news", b"not json")]:
        bus.publish("documents", key, value)
    runners: list[StageRunner] = []
    server = MetricsServer(lambda: runners, bus, port=0).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        runners.append(StageRunner(bus, MatchStage(cfg.brands), batch_size=10, poll_timeout=0.5))
        code, body = healthz(f"{base}/healthz")
        assert code == 503 and body["stages"] == {
            "match": {"state": "starting", "seconds_since_poll": None, "messages_in": 0}
        }
        lag = "listener_consumer_lag_messages{group=match,stage=match,topic=documents}"
        assert scrape(f"{base}/metrics")[lag] == 31

        while runners[0].stats.messages_in < 31:
            runners[0].run_once(timeout=5.0)
        samples = scrape(f"{base}/metrics")
        assert samples["listener_stage_messages_in_total{stage=match}"] == 31
        assert samples["listener_stage_messages_out_total{stage=match}"] == 30
        assert samples["listener_stage_dead_letters_total{stage=match}"] == 1
        batches = samples["listener_stage_batches_total{stage=match}"]
        assert batches == samples["listener_stage_batch_latency_seconds_count{stage=match}"] >= 4
        assert samples["listener_stage_batch_latency_seconds_bucket{le=+Inf,stage=match}"] == batches
        assert healthz(f"{base}/healthz")[0] == 200
    finally:
        server.stop()
        for runner in runners:
            runner.close()


def test_an_embedded_stage_exposes_its_counters_lag_and_health(tmp_path: Path) -> None:
    with EmbeddedBus(tmp_path / "bus.db") as bus:
        metrics_story(bus, tmp_path)
        # A fresh server (no cached lag) sees the group caught up.
        runners = [StageRunner(bus, MatchStage(load_config(brands_config(tmp_path)).brands))]
        server = MetricsServer(lambda: runners, bus, port=0).start()
        try:
            lag = scrape(f"http://127.0.0.1:{server.port}/metrics")
            assert lag["listener_consumer_lag_messages{group=match,stage=match,topic=documents}"] == 0
        finally:
            server.stop()


@pytest.mark.kafka
@pytest.mark.slow
def test_a_kafka_stage_exposes_its_counters_lag_and_health(tmp_path: Path, kafka_bootstrap: str) -> None:
    from pipelines.bus_kafka import KafkaBus

    bus = KafkaBus(
        kafka_bootstrap,
        topic_prefix=f"m{uuid.uuid4().hex[:8]}.",
        partitions=1,
        max_poll_interval_ms=6000,
        session_timeout_ms=6000,
    )
    try:
        metrics_story(bus, tmp_path)
        assert sum(bus.group_lag("documents", "match").values()) == 0, "the group committed everything"
    finally:
        bus.close()


def test_unknown_paths_are_404_and_a_taken_port_is_a_clear_error() -> None:
    with _tmp_bus() as bus:
        server = MetricsServer(list, bus, port=0).start()
        try:
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(f"http://127.0.0.1:{server.port}/admin", timeout=5)
            assert err.value.code == 404
            with pytest.raises(Exception, match=f"cannot serve metrics on 127.0.0.1:{server.port}"):
                MetricsServer(list, bus, port=server.port)
        finally:
            server.stop()


def _tmp_bus() -> EmbeddedBus:
    import tempfile

    return EmbeddedBus(Path(tempfile.mkdtemp()) / "bus.db")


# -- structured logs -------------------------------------------------------------------------


class Picky:
    """A classify-like stage that cannot handle one mention: it is dead-lettered and logged."""

    name = "classify"
    input_topic = "mentions"
    idle_tick = None

    def after_commit(self) -> None:
        """Nothing to confirm."""

    def __init__(self, bad_id: str) -> None:
        self.bad_id = bad_id

    def handle(self, records: Sequence[Record]) -> list[Output]:
        if any(getattr(r, "id", None) == self.bad_id for r in records):
            raise RuntimeError("\x1b[2Jmodel exploded\nFAKE LOG LINE")
        return []


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    yield stream
    logging.getLogger().removeHandler(handler)


def test_a_dead_lettered_mention_is_logged_as_json_with_its_stage_and_id(
    tmp_path: Path, json_log: io.StringIO
) -> None:
    mentions = []
    for i in range(3):
        doc = decode(documents(3)[i][1])
        assert isinstance(doc, Document)
        mentions.append(Mention.from_document(doc, "acme", ("acme",)))
    with EmbeddedBus(tmp_path / "bus.db") as bus:
        bus.publish_many("mentions", [("acme", encode(m)) for m in mentions])
        runner = StageRunner(bus, Picky(mentions[1].id), max_attempts=1, sleep=lambda _s: None)
        runner.run_until_idle(idle_timeout=1.0)
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert all(set(line) >= {"ts", "level", "logger", "msg"} for line in lines)
    dead = [line for line in lines if line.get("mention_id") == mentions[1].id]
    assert dead and dead[0]["stage"] == "classify" and dead[0]["level"] == "error"
    assert "\n" not in json_log.getvalue().strip().split("\n")[0]
    assert "\x1b" not in json_log.getvalue() and "FAKE LOG LINE" in dead[0]["msg"], "escaped, not dropped"


LISTENER = (sys.executable, "-m", "listener.cli")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_a_stage_process_serves_metrics_and_logs_json(tmp_path: Path) -> None:
    config = brands_config(tmp_path)
    (tmp_path / "data").mkdir()
    with EmbeddedBus(tmp_path / "data" / "bus.db") as bus:
        bus.publish_many("documents", [*documents(5), ("news", b"\xff poison")])
    port = _free_port()
    args = [*LISTENER, "--log-format", "json", "run", "--stage", "match"]
    args += ["-c", str(config), "--metrics-port", str(port)]
    proc = subprocess.Popen(
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline, samples = time.monotonic() + 60, {}
        while time.monotonic() < deadline:
            try:
                samples = scrape(f"http://127.0.0.1:{port}/metrics")
            except OSError:
                samples = {}
            if samples.get("listener_stage_messages_in_total{stage=match}") == 6:
                break
            time.sleep(0.2)
        assert samples["listener_stage_dead_letters_total{stage=match}"] == 1
        assert healthz(f"http://127.0.0.1:{port}/healthz")[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    lines = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    assert any("dead-lettering" in line["msg"] and line["stage"] == "match" for line in lines)
    assert all(line.get("stage") in ("match", None) for line in lines)
