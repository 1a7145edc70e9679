"""Detect stage cost as the brands grow: 1 brand against 100 busy ones, and memory over a long run.

    python benchmarks/detect_scale.py [--mentions 100000] [--brands 100] [--batch 500] [--per-minute 1000]

One stream of scored mentions, `--per-minute` of them per minute of publication
time (a quarter negative; posts of 12 to 40 words and articles of 80 to 300 from a
2,000-word vocabulary, some
negatives syndicated copies of a recent one), goes through the real
`DetectStage` with a fresh SQLite state file, in batches of `--batch` as the
runner hands them over. The stage's clock follows the stream: each batch is
handled a few seconds after its newest mention was published, so buckets
close, windows are evaluated and old buckets pruned as they would live.

The same stream is run twice, each in a fresh process so their memory does
not mix: spread over one brand, then over `--brands` brands (the default rule:
1-minute buckets, 5-minute windows, a 1-hour baseline). Only `handle` is
timed; building the mentions is not. Every tenth of the run prints the
mentions fed, the stream minutes covered and the process's resident set size
(RSS), so it shows whether memory levels off once the baseline span is full
(100,000 mentions at 1,000 a minute is 100 minutes, past the 65 minutes the
detector keeps). At the end: the throughput over the whole run and over its
second half (the state at full size), and the size of a brand's state written
as one JSON document (how every batch used to save it).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alerts.stages import DetectStage
from alerts.state import BrandState
from listener.config import AlertRule
from listener.records import ScoredMention, Sentiment, SentimentLabel

T0 = datetime(2024, 5, 1, tzinfo=UTC)
SITES = tuple(f"site{i}.example" for i in range(40))
LAG = timedelta(seconds=5)  # how long after publication a mention reaches detect


def rss_mib() -> float:
    """Resident set size now (not the peak `resource` reports), in MiB."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class Stream:
    """Scored mentions in publication order, `per_minute` a minute, brands taking turns."""

    def __init__(self, brands: list[str], per_minute: int, seed: int = 7) -> None:
        self.brands = brands
        self.step = 60.0 / per_minute
        self.rng = random.Random(seed)
        self.words = [f"w{self.rng.randrange(10**6):06d}" for _ in range(2000)]
        self.recent: list[str] = []
        self.n = 0

    def batch(self, size: int) -> list[ScoredMention]:
        return [self._mention() for _ in range(size)]

    def _mention(self) -> ScoredMention:
        n, rng = self.n, self.rng
        self.n += 1
        brand = self.brands[n % len(self.brands)]
        published = T0 + timedelta(seconds=n * self.step)
        negative = rng.random() < 0.25
        text = self._text(negative)
        score = 0.9 if negative else 0.1
        return ScoredMention(
            id=f"m{n}",
            source="bench",
            source_type="feed",
            url=f"https://{SITES[n % len(SITES)]}/{n}",
            site=SITES[rng.randrange(len(SITES))],
            text=f"{brand} {text}",
            published=published,
            fetched=published,
            engagement={"likes": rng.randrange(50)},
            document_id=f"d{n}",
            brand=brand,
            sentiment=Sentiment(
                label=SentimentLabel.NEGATIVE if negative else SentimentLabel.NEUTRAL,
                negative=score,
                neutral=1 - score,
                model_id="bench",
                model_version="1",
            ),
        )

    def _text(self, negative: bool) -> str:
        if negative and self.recent and self.rng.random() < 0.2:
            return self.rng.choice(self.recent)  # a syndicated copy: one story, many sites
        long = self.rng.random() < 0.3  # an article or a blog post, else a social post
        words = self.rng.randint(80, 300) if long else self.rng.randint(12, 40)
        text = " ".join(self.rng.choices(self.words, k=words))
        if negative:
            self.recent = [*self.recent[-19:], text]
        return text


def batches(stream: Stream, mentions: int, size: int) -> Iterator[list[ScoredMention]]:
    fed = 0
    while fed < mentions:
        batch = stream.batch(min(size, mentions - fed))
        fed += len(batch)
        yield batch


def run(brands: int, mentions: int, size: int, per_minute: int) -> None:
    """One scenario in this process: prints progress lines, then the throughput."""
    names = [f"Brand{i:03d}" for i in range(brands)]
    stream = Stream(names, per_minute)
    now = [T0]
    with tempfile.TemporaryDirectory() as tmp:
        rules = {name: AlertRule() for name in names}
        stage = DetectStage(rules, dict.fromkeys(names), Path(tmp) / "detector.db", clock=lambda: now[0])
        fed, spent, alerts, report = 0, 0.0, 0, max(1, mentions // 10)
        halfway = (0, 0.0)
        for batch in batches(stream, mentions, size):
            now[0] = batch[-1].published + LAG
            started = time.perf_counter()
            alerts += len(stage.handle(batch))
            stage.after_commit()
            spent += time.perf_counter() - started
            fed += len(batch)
            halfway = (fed, spent) if fed <= mentions // 2 else halfway
            if fed // report != (fed - len(batch)) // report:
                minutes = (now[0] - T0).total_seconds() / 60
                line = f"{brands:>6} {fed:>9,} {minutes:>8.0f} {rss_mib():>8.1f} {fed / spent:>10,.0f}"
                print(line, flush=True)
        kept = [len(_state(stage, name).to_json().encode()) for name in names]
        stage.close()
    late = (mentions - halfway[0]) / (spent - halfway[1])
    print(
        f"{brands} brand(s): {mentions / spent:,.0f} mentions/s through handle, {late:,.0f} over the"
        f" second half; {alerts} alerts; state per brand {sum(kept) / len(kept) / 1024:.0f} KiB as one"
        f" document (largest {max(kept) / 1024:.0f} KiB)",
        flush=True,
    )


def _state(stage: DetectStage, brand: str) -> BrandState:
    detector = stage.detector(brand)
    assert detector is not None
    return detector.state


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mentions", type=int, default=100_000)
    parser.add_argument("--brands", type=int, default=100)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--per-minute", type=int, default=1000)
    parser.add_argument("--only", type=int, help="run one scenario with this many brands, in this process")
    args = parser.parse_args()
    if args.only is not None:
        run(args.only, args.mentions, args.batch, args.per_minute)
        return
    print(f"{'brands':>6} {'mentions':>9} {'minutes':>8} {'RSS MiB':>8} {'so far/s':>10}", flush=True)
    for brands in (1, args.brands):
        extra = ["--mentions", str(args.mentions), "--batch", str(args.batch)]
        extra += ["--per-minute", str(args.per_minute), "--only", str(brands)]
        subprocess.run([sys.executable, __file__, *extra], check=True)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
