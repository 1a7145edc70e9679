"""Metrics, health and structured logs for stage processes.

Metrics are read from each runner's `RunnerStats` when Prometheus scrapes, not
pushed from the hot path: a batch costs the runner a few integer updates and
nothing else. Consumer lag is the standard one (end of the topic minus the
group's committed offset), read through the bus without touching the stage's
own consumer, and cached briefly so a fast scraper does not hammer the broker.

The HTTP server (one per process, off unless a port is given) answers
`/metrics` in the Prometheus text format and `/healthz` with JSON: 200 while
every stage has polled recently, 503 while a stage is still starting (loading
its model) or has stopped polling.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from listener.errors import ListenerError
from pipelines.bus import Bus
from pipelines.runtime import LATENCY_BUCKETS, RunnerStats, StageRunner

__all__ = [
    "JsonFormatter",
    "LagProbe",
    "MetricsServer",
    "StageCollector",
    "configure_logging",
    "consumer_lag",
    "set_process_stage",
]

log = logging.getLogger(__name__)

MODEL_STAGES = frozenset({"classify"})


def consumer_lag(bus: Bus, topic: str, group: str) -> int:
    """Messages on `topic` that `group` has not committed yet, over every partition."""
    return sum(bus.group_lag(topic, group).values())


class LagProbe:
    """`consumer_lag` per runner, cached for `max_age` seconds; None when it cannot be read."""

    def __init__(self, bus: Bus, max_age: float = 10.0) -> None:
        self.bus = bus
        self.max_age = max_age
        self._cache: dict[tuple[str, str], tuple[float, int | None]] = {}
        self._lock = threading.Lock()

    def __call__(self, runner: StageRunner) -> int | None:
        key = (runner.stage.input_topic, runner.group)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and time.monotonic() - cached[0] < self.max_age:
                return cached[1]
            try:
                lag: int | None = consumer_lag(self.bus, *key)
            except Exception as exc:  # a scrape must not fail because the broker is away
                log.warning("consumer lag of %s on %s unavailable: %s", key[1], key[0], exc)
                lag = None
            self._cache[key] = (time.monotonic(), lag)
            return lag


def _histogram(stats: RunnerStats) -> list[tuple[str, float]]:
    buckets, running = [], 0
    for bound, count in zip((*LATENCY_BUCKETS, float("inf")), stats.latency_counts, strict=True):
        running += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
    return buckets


class StageCollector(Collector):
    """Prometheus metrics for a set of runners, computed at scrape time from their stats."""

    def __init__(
        self, runners: Callable[[], Sequence[StageRunner]], lag: Callable[[StageRunner], int | None]
    ):
        self.runners = runners
        self.lag = lag

    def collect(self) -> Iterator[Metric]:
        runners = list(self.runners())
        snapshots = [(r, r.stats.snapshot()) for r in runners]
        counters = {
            "messages_in": "Messages consumed from the stage's input topic",
            "messages_out": "Messages the stage published downstream",
            "errors": "Failed attempts (handle raised, bus errors, failed idle ticks)",
            "dead_letters": "Messages sent to the dead-letter topic",
            "batches": "Batches processed",
        }
        for name, doc in counters.items():
            family = CounterMetricFamily(f"listener_stage_{name}", doc, labels=["stage"])
            for _, s in snapshots:
                family.add_metric([s.stage], float(getattr(s, name)))
            yield family
        latency = HistogramMetricFamily(
            "listener_stage_batch_latency_seconds", "Time to process one batch", labels=["stage"]
        )
        for _, s in snapshots:
            latency.add_metric([s.stage], _histogram(s), sum_value=s.busy_seconds)
        yield latency
        yield from self._lag_and_model(snapshots)

    def _lag_and_model(self, snapshots: list[tuple[StageRunner, RunnerStats]]) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "listener_consumer_lag_messages",
            "Messages on the input topic not yet committed by the stage's group",
            labels=["stage", "topic", "group"],
        )
        for runner, s in snapshots:
            value = self.lag(runner)
            if value is not None:
                lag.add_metric([s.stage, runner.stage.input_topic, runner.group], float(value))
        yield lag
        throughput = GaugeMetricFamily(
            "listener_model_throughput_mentions_per_second",
            "Mentions scored per second of batch time since start (model stages only)",
            labels=["stage"],
        )
        for _, s in snapshots:
            if s.stage in MODEL_STAGES and s.busy_seconds > 0:
                throughput.add_metric([s.stage], s.messages_in / s.busy_seconds)
        yield throughput


def health(
    runners: Sequence[StageRunner], stale_after: float, *, expect_runners: bool = True
) -> tuple[int, dict[str, Any]]:
    """200 when every stage polled within `stale_after` seconds, 503 otherwise, with why.

    No runner yet means a stage still being built (its model loading), unless the
    process runs none (`crawl`), which is healthy while it serves at all.
    """
    now = time.monotonic()
    stages: dict[str, Any] = {}
    ok = bool(runners) or not expect_runners
    for runner in runners:
        last = runner.stats.last_poll
        state = "starting" if last is None else ("ok" if now - last <= stale_after else "stalled")
        ok = ok and state == "ok"
        stages[runner.stage.name] = {
            "state": state,
            "seconds_since_poll": None if last is None else round(now - last, 3),
            "messages_in": runner.stats.messages_in,
        }
    return (200 if ok else 503), {"status": "ok" if ok else "unavailable", "stages": stages}


class MetricsServer:
    """`/metrics` and `/healthz` on `host:port` (port 0 picks a free one; see `.port`)."""

    def __init__(
        self,
        runners: Callable[[], Sequence[StageRunner]],
        bus: Bus,
        host: str = "127.0.0.1",
        port: int = 9100,
        *,
        stale_after: float = 300.0,
        expect_runners: bool = True,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StageCollector(runners, LagProbe(bus)))
        registry, list_runners = self.registry, runners

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(registry), "text/plain; version=0.0.4; charset=utf-8")
                elif path in ("/healthz", "/health"):
                    code, body = health(list_runners(), stale_after, expect_runners=expect_runners)
                    self._send(code, json.dumps(body).encode(), "application/json")
                else:
                    self._send(404, b'{"error": "not found"}', "application/json")

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # scrapes every few seconds would drown the stage's own log

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise ListenerError(f"cannot serve metrics on {host}:{port}: {exc}") from exc
        self._server.daemon_threads = True
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics, health on /healthz", self.host, self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# -- structured logs -------------------------------------------------------------------------

_process_stage: str | None = None


def set_process_stage(stage: str | None) -> None:
    """The stage a `listener run --stage X` process runs, for log lines from any thread."""
    global _process_stage
    _process_stage = stage


def _stage_of(record: logging.LogRecord) -> str | None:
    explicit = getattr(record, "stage", None)
    if isinstance(explicit, str):
        return explicit
    thread = record.threadName or ""
    if thread.startswith("stage-"):  # the monitor's runner threads
        return thread[len("stage-") :]
    return _process_stage


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ASCII-escaped, so hostile text cannot forge lines or colours."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        stage = _stage_of(record)
        if stage is not None:
            body["stage"] = stage
        mention_id = getattr(record, "mention_id", None)
        if mention_id is not None:
            body["mention_id"] = mention_id
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=True, default=str)


JsonFormatter.converter = time.gmtime


def configure_logging(level: int, fmt: str) -> None:
    """`text` (the default, for people) or `json` (for log shippers), on stderr."""
    if fmt != "json":
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
