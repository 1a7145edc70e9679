"""Story index memory over a long run: flat once the horizon is reached, against the unbounded index.

    python benchmarks/stories_memory.py [--mentions 100000] [--days 10] [--horizon-days 3]

Feeds generated mentions (several brands; new posts and articles of 12 to 60
words drawn from a 3,000-word vocabulary, and copies of recent ones: reposts,
datelined syndications, teasers) spread evenly over `--days` ending now, in
batches of 100 as the index stage sends them. Each run is a fresh process, so
their resident sizes do not mix: once with the shipped horizon (stories not
seen for `--horizon-days` are evicted while running) and once with an infinite
horizon (nothing is ever evicted, the way the index behaved before it swept).
Every tenth of the run it prints the mentions fed, the stories held in memory
and the process's resident set size (RSS); at the end, the memory per held
story and the throughput.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from listener.records import Mention, document_id
from listener.stories import StoryIndex

BRANDS = ("Zephyro Fiber", "Velmora Air", "Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne")
COPY_SHARE = 0.6  # share of mentions that copy a recent story rather than start one


def rss_mb() -> float:
    """The process's current resident set size (VmRSS), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def generate(count: int, days: float, seed: int = 5) -> list[Mention]:
    """`count` mentions over `days` ending a minute ago, in publication order."""
    rng = np.random.default_rng(seed)
    vocabulary = [f"w{n}" for n in range(3000)]
    end = time.time() - 60
    times = np.sort(rng.uniform(end - days * 86400, end, count))
    recent: dict[str, list[str]] = {brand: [] for brand in BRANDS}
    out = []
    for n, when in enumerate(times):
        brand = BRANDS[int(rng.integers(len(BRANDS)))]
        pool = recent[brand]
        if pool and rng.random() < COPY_SHARE:
            text = _copy(rng, pool[-int(rng.integers(1, min(len(pool), 50) + 1))])
        else:
            words = rng.choice(vocabulary, size=int(rng.integers(12, 61)))
            text = f"{brand} {' '.join(words)}."
            pool.append(text)
            del pool[:-200]
        doc = document_id("gen", f"{n}")
        published = datetime.fromtimestamp(float(when), UTC)
        out.append(Mention(id=doc, document_id=doc, brand=brand, source="gen", source_type="feed", text=text,
                           published=published, fetched=published))  # fmt: skip
    return out


def _copy(rng: np.random.Generator, text: str) -> str:
    kind = int(rng.integers(3))
    if kind == 0:
        return f"RT @user{int(rng.integers(999))}: {text}"
    if kind == 1:
        return f"(Outlet {int(rng.integers(40))}) {text} More news from us."
    return " ".join(text.split()[:20])  # a teaser: the lead only


def run(mode: str, count: int, days: float, horizon_days: float) -> None:
    """One run in this process; prints a line every tenth of the mentions."""
    batch = generate(count, days)
    horizon = math.inf if mode == "unbounded" else horizon_days * 86400
    base = rss_mb()
    print(f"{mode:>9} {0:>8,} {0.0:>6.1f} {0:>8,} {base:>8.1f}  (with the generated mentions)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        index = StoryIndex(Path(tmp) / "stories.db", horizon=horizon)
        started = time.perf_counter()
        step = max(count // 10, 100)
        for start in range(0, count, 100):
            index.add_many(batch[start : start + 100])
            fed = min(start + 100, count)
            if fed % step == 0 or fed == count:
                day = (batch[fed - 1].published.timestamp() - batch[0].published.timestamp()) / 86400
                print(f"{mode:>9} {fed:>8,} {day:>6.1f} {index.held():>8,} {rss_mb():>8.1f}", flush=True)
        elapsed = time.perf_counter() - started
        held = index.held()
        index.close()
    grown = (rss_mb() - base) * 1024 * 1024
    print(f"{mode:>9}: {count / elapsed:,.0f} mentions/s; RSS grew {grown / 2**20:.1f} MB over the run,"
          f" {grown / max(held, 1) / 1024:.1f} KB per story held at the end ({held:,})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentions", type=int, default=100_000)
    parser.add_argument("--days", type=float, default=10.0)
    parser.add_argument("--horizon-days", type=float, default=3.0)
    parser.add_argument("--mode", choices=("bounded", "unbounded"), help="one run in this process")
    args = parser.parse_args()
    if args.mode:
        run(args.mode, args.mentions, args.days, args.horizon_days)
        return
    print(f"{args.mentions:,} mentions over {args.days:g} days, horizon {args.horizon_days:g} days")
    print(f"{'mode':>9} {'mentions':>8} {'day':>6} {'held':>8} {'RSS MB':>8}")
    for mode in ("bounded", "unbounded"):
        subprocess.run(
            [sys.executable, __file__, "--mode", mode, "--mentions", str(args.mentions),
             "--days", str(args.days), "--horizon-days", str(args.horizon_days)],
            check=True,
        )  # fmt: skip


if __name__ == "__main__":
    main()
