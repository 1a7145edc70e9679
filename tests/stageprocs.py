"""The distributed deployment as real processes: one `listener run --stage X` per stage.

A `Deployment` is one watch.yaml on the suite's Kafka-protocol broker and
PostgreSQL server (topics and schema of its own), the stage processes started
from it (each logging to its own file, so a process that fails says why), the
`listener` commands an operator types, and a KafkaBus client for the test to
publish and read with. `Timeline` builds already-scored mentions around the
wall clock, since the stage processes judge windows by publication time and
their own clock.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import yaml
from alertstory import scored
from postgres_server import fresh_schema_url

from listener.records import Alert, ScoredMention, SentimentLabel, decode, encode
from pipelines.bus_kafka import KafkaBus

__all__ = ["Deployment", "StageProcess", "Timeline", "answers_ok", "free_port", "partition_of", "small_rule"]

T = TypeVar("T")

# Ten-second buckets and a half-minute window: a crisis shows within a minute of wall time.
SMALL_RULE = {
    "bucket": "10s",
    "window": "30s",
    "baseline": "10m",
    "min_count": 5,
    "min_ratio": 3.0,
    "sensitivity": 3.0,
    "resolve_ratio": 1.5,
    "hold": "10s",  # one bucket of calm after the window, so the end is seen within a minute too
}


def small_rule() -> dict[str, Any]:
    return dict(SMALL_RULE)


def partition_of(brand: str, partitions: int = 2) -> int:
    """Where the Kafka producer puts a brand's messages (its default partitioner)."""
    from kafka.partitioner.default import murmur2

    return int(murmur2(brand.encode()) & 0x7FFFFFFF) % partitions


def answers_ok(url: str) -> bool:
    """A GET of `url` answers 200 (nothing listening, or an error status: False)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def consumed(port: int, stage: str) -> float:
    """What a stage process says it consumed, from its own /metrics endpoint."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "listener_stage_messages_in_total" and sample.labels == {"stage": stage}:
                return float(sample.value)
    return 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class StageProcess:
    """One running `listener run --stage NAME`, with its log file and metrics port."""

    stage: str
    popen: subprocess.Popen[bytes]
    log: Path
    metrics_port: int

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def partitions(self) -> list[int]:
        """The partitions its consumer group gave it last, as its log says."""
        found = re.findall(r"assigned partitions \[([0-9, ]*)\]", self.log.read_text(errors="replace"))
        return [int(p) for p in found[-1].split(",") if p.strip()] if found else []

    def healthy(self) -> bool:
        """/healthz says ok: a bus stage has polled its topic; a service is up."""
        return answers_ok(f"http://127.0.0.1:{self.metrics_port}/healthz")

    def consumed(self) -> float:
        """Messages this process says it consumed, from its own /metrics."""
        return consumed(self.metrics_port, self.stage)


@dataclass
class Deployment:
    """A watch.yaml on Kafka + PostgreSQL, and the processes started from it."""

    root: Path
    kafka_bootstrap: str
    postgres_url: str
    brands: list[dict[str, Any]]
    slack: dict[str, Any] | None = None
    prefix: str = field(default_factory=lambda: f"d{uuid.uuid4().hex[:8]}.")
    state_url: str = ""
    processes: list[StageProcess] = field(default_factory=list)
    killed: list[StageProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state_url = fresh_schema_url(self.postgres_url)
        self.config = self.root / "watch.yaml"
        data: dict[str, Any] = {
            "data_dir": str(self.root / "data"),
            "brands": self.brands,
            "bus": {
                "engine": "kafka",
                "kafka": {
                    "bootstrap_servers": [self.kafka_bootstrap],
                    "topic_prefix": self.prefix,
                    "partitions": 2,
                    "max_poll_interval": "6s",
                },
            },
            "state": {"engine": "postgres", "postgres": {"url": self.state_url}},
        }
        if self.slack is not None:
            data["slack"] = self.slack
        self.config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        self.bus = KafkaBus(
            self.kafka_bootstrap,
            topic_prefix=self.prefix,
            partitions=2,
            max_poll_interval_ms=6000,
            session_timeout_ms=6000,
        )

    # --- what an operator types ------------------------------------------------------------

    def cli(self, *args: str, stdin: str = "") -> str:
        """`listener ARGS -c watch.yaml`; its standard output, failing the test on a non-zero exit."""
        done = subprocess.run(
            [sys.executable, "-m", "listener.cli", *args, "-c", str(self.config)],
            input=stdin.encode(),
            capture_output=True,
            timeout=120,
            check=False,
        )
        out, err = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
        assert done.returncode == 0, f"listener {' '.join(args)} exited {done.returncode}:\n{out}\n{err}"
        return out

    def start(self, stage: str, *options: str) -> StageProcess:
        """`listener run --stage STAGE`, serving /metrics and /healthz on a port of its own."""
        port = free_port()
        log = self.root / f"{stage}-{len(self.processes) + len(self.killed)}.log"
        command = ["run", "--stage", stage, "-c", str(self.config), "--metrics-port", str(port)]
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "listener.cli", *command, *options],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started = StageProcess(stage, popen, log, port)
        self.processes.append(started)
        return started

    def kill(self, process: StageProcess) -> None:
        """`kill -9`: no shutdown hook runs, nothing is committed on the way out."""
        process.popen.send_signal(signal.SIGKILL)
        process.popen.wait(timeout=30)
        self.processes.remove(process)
        self.killed.append(process)

    def stop(self) -> list[str]:
        """SIGTERM every process; the log tails of those that did not exit cleanly."""
        for process in self.processes:
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        failures = []
        for process in self.processes:
            try:
                code = process.popen.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                code = process.popen.wait(timeout=30)
            if code != 0:
                failures.append(f"{process.stage} exited {code}:\n{process.log_tail()}")
        self.bus.close()
        return failures

    # --- waiting -----------------------------------------------------------------------------

    def wait_for(self, what: str, check: Callable[[], T | None], timeout: float = 60.0) -> T:
        """Poll `check` until it gives something truthy; fail early if a process died."""
        deadline = time.monotonic() + timeout
        while True:
            found = check()
            if found:
                return found
            dead = [p for p in self.processes if p.popen.poll() is not None]
            if dead:
                raise AssertionError(f"waiting for {what}: {dead[0].stage} exited:\n{dead[0].log_tail()}")
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {p.stage}\n{p.log_tail(1500)}" for p in self.processes)
                raise AssertionError(f"no {what} within {timeout:.0f}s\n{logs}")
            time.sleep(0.5)

    def wait_healthy(self, processes: Iterable[StageProcess], timeout: float = 90.0) -> None:
        waiting = list(processes)
        self.wait_for("healthy stage processes", lambda: all(p.healthy() for p in waiting), timeout)

    # --- the bus -----------------------------------------------------------------------------

    def publish(self, mentions: Iterable[ScoredMention]) -> int:
        """Scored mentions onto `mentions.scored`, keyed by brand as classify publishes them."""
        items = [(m.brand, encode(m)) for m in mentions]
        self.bus.publish_many("mentions.scored", items)
        return len(items)

    def alerts(self) -> list[Alert]:
        """Every alert on the `alerts` topic so far, read without joining a group."""
        found = [decode(m.value) for m in self.bus.read("alerts", limit=10_000)]
        return [a for a in found if isinstance(a, Alert)]


class Timeline:
    """Publication times that only move forward and never pass the wall clock.

    `quiet` lays down a baseline behind the clock; `burst` and `chatter` go on
    from where the last one stopped up to a moment ago, so windows the
    detectors closed stay closed and a spike's windows follow one another.
    """

    def __init__(self, lead: float = 2.0) -> None:
        self.lead = lead  # seconds kept between the newest publication and the wall clock
        self.cursor: datetime | None = None

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    def quiet(self, brands: Iterable[str], span: float = 600.0, until: float = 40.0) -> list[ScoredMention]:
        """One negative a minute among neutral chatter, from `span` to `until` seconds ago."""
        start, end = self.now() - timedelta(seconds=span), self.now() - timedelta(seconds=until)
        found = []
        for brand in brands:
            at = start
            while at < end:
                second = int((at - start).total_seconds())
                label = SentimentLabel.NEGATIVE if second % 60 == 0 else SentimentLabel.NEUTRAL
                found.append(scored(at, label, brand=brand, text=f"{brand} update, nothing unusual"))
                at += timedelta(seconds=15)
        self.cursor = end
        return found

    def burst(self, brand: str, per_bucket: int, others: Iterable[str] = ()) -> list[ScoredMention]:
        """`per_bucket` complaints about `brand` every ten seconds up to now; chatter for the others."""
        return self._until_now(brand, per_bucket, SentimentLabel.NEGATIVE, others)

    def chatter(self, brands: Iterable[str]) -> list[ScoredMention]:
        """Neutral chatter for every brand up to now: time moves on, and nobody complains."""
        listed = list(brands)
        return self._until_now(listed[0], 2, SentimentLabel.NEUTRAL, listed[1:])

    def _until_now(
        self, brand: str, per_bucket: int, label: SentimentLabel, others: Iterable[str]
    ) -> list[ScoredMention]:
        assert self.cursor is not None, "lay down a quiet baseline first"
        start, end = self.cursor, self.now() - timedelta(seconds=self.lead)
        step = timedelta(seconds=10 / per_bucket)
        found, at = [], start
        while at < end:
            text = (
                f"{brand} is down again and support is not answering"
                if label is SentimentLabel.NEGATIVE
                else None
            )
            found.append(scored(at, label, brand=brand, text=text))
            at += step
        for other in others:
            at = start
            while at < end:
                found.append(scored(at, SentimentLabel.NEUTRAL, brand=other))
                at += timedelta(seconds=5)
        self.cursor = end
        return found
