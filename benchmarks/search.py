"""Search latency on the embedded store at 1,000,000 mentions: p50/p95 per typical analyst query.

    .venv/bin/python benchmarks/search.py [--mentions 1000000] [--baseline 100000] [--shapes "A;B"]

Mentions are generated (seeded): five brands over 90 days, a few thousand
authors, twenty sites, texts of 12-40 words from a 5,000-word vocabulary with
topic words (outage, refund, ...) at realistic rates. The stores are built
once in DIR and reused by later runs. Each query shape runs with 20 different
words, three times each, asking for the first page of 20 hits plus the total,
the way the search page does; the same shapes run on a store of `--baseline`
mentions in the same run, and the ratio says how latency grows with history.
The last column measures the same request through the web API in-process
(`/api/search` via TestClient), which adds parsing, JSON and snippets.
Totals are counted to 10,000 as the search page counts them ("10,000+" past it).
A store written by an older version is migrated when it is opened (about
16 s at a million mentions for schema version 2), not rebuilt.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from listener.query.parser import parse  # noqa: E402
from listener.records import ScoredMention, Sentiment, SentimentLabel, document_id, mention_id  # noqa: E402
from pipelines.store import SHOWN_COUNT_LIMIT, SearchRequest  # noqa: E402
from pipelines.store_sqlite import EmbeddedStore  # noqa: E402

BRANDS = ["Acme", "Globex", "Initech", "Umbrella", "Zephyro"]
TOPICS = ["outage", "refund", "support", "price", "battery", "update", "crash", "login", "delivery", "app"]
NOW = datetime(2026, 11, 1, tzinfo=UTC)
SPAN = 90 * 86400


def _vocabulary(rng: random.Random) -> list[str]:
    letters = "abcdefghiklmnoprstuvz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(5000)]


def mentions(count: int, seed: int = 11) -> Iterator[ScoredMention]:
    rng = random.Random(seed)
    vocab = _vocabulary(rng)
    labels = [
        SentimentLabel.NEGATIVE,
        SentimentLabel.NEUTRAL,
        SentimentLabel.NEUTRAL,
        SentimentLabel.POSITIVE,
    ]
    for i in range(count):
        brand = BRANDS[i % 5]
        words = [rng.choice(vocab) for _ in range(rng.randint(12, 40))]
        words.insert(rng.randrange(len(words)), brand.lower())
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), rng.choice(TOPICS))
        published = NOW - timedelta(seconds=rng.randrange(SPAN))
        doc = document_id("feed", f"item-{i}")
        yield ScoredMention(
            id=mention_id(doc, brand),
            document_id=doc,
            brand=brand,
            source=f"feed-{i % 12}",
            source_type="feed",
            url=f"https://site{i % 20}.example.com/{i}",
            site=f"site{i % 20}.example.com",
            author=f"user{rng.randrange(3000)}",
            title=None,
            text=" ".join(words),
            published=published,
            fetched=published,
            language="en",
            matched_queries=(brand.lower(),),
            sentiment=Sentiment(label=rng.choice(labels), model_id="bench", model_version="1"),
        )


def build(path: Path, count: int) -> EmbeddedStore:
    store = EmbeddedStore(path)
    have = store.search(SearchRequest(limit=0)).total
    if have == count:
        return store
    if have:
        raise SystemExit(f"{path} holds {have} mentions, not {count}; delete it or pick another --dir")
    started, batch = time.perf_counter(), []
    for n, mention in enumerate(mentions(count), 1):
        batch.append(mention)
        if len(batch) == 5000:
            store.upsert(batch)
            batch = []
            if n % 100_000 == 0:
                print(f"  built {n:,} ({n / (time.perf_counter() - started):,.0f}/s)", file=sys.stderr)
    store.upsert(batch)
    print(f"built {count:,} mentions in {time.perf_counter() - started:.0f}s -> {path}", file=sys.stderr)
    return store


Shape = Callable[[str, str], dict[str, object]]
SHAPES: dict[str, Shape] = {
    "one word": lambda w, b: {"q": w},
    "word AND topic": lambda w, b: {"q": f"{b.lower()} AND {w}"},
    "phrase": lambda w, b: {"q": f'"{b.lower()} {w}"'},
    "OR group, brand, 7d": lambda w, b: {"q": f"{w} OR refund OR outage", "brand": b, "days": 7},
    "negative, brand, 24h": lambda w, b: {"q": "", "brand": b, "sentiment": "negative", "days": 1},
    "prefix + NOT": lambda w, b: {"q": f"{w[:3]}* NOT {b.lower()}"},
    "NEAR/5": lambda w, b: {"q": f"{b.lower()} NEAR/5 {w}"},
    "relevance, 30d": lambda w, b: {"q": f"{w} {b.lower()}", "days": 30, "order": "relevance"},
    "word, page 10": lambda w, b: {"q": w, "page": 10},
    "word AND site:": lambda w, b: {"q": f"{w} AND site:site{len(w)}.example.com"},
    "word, negative, 30d": lambda w, b: {"q": w, "sentiment": "negative", "days": 30},
    "word, one per story": lambda w, b: {"q": w, "stories": True},
    "brand name, 30d": lambda w, b: {"q": b.lower(), "days": 30},
}


def request(params: dict[str, object]) -> SearchRequest:
    q = str(params.get("q", ""))
    days = params.get("days")
    order: Literal["newest", "relevance"] = "relevance" if params.get("order") == "relevance" else "newest"
    return SearchRequest(
        query=parse(q) if q else None,
        brand=params.get("brand"),  # type: ignore[arg-type]
        sentiment=params.get("sentiment"),  # type: ignore[arg-type]
        since=NOW - timedelta(days=float(days)) if isinstance(days, int) else None,
        order=order,
        limit=20,
        offset=20 * (int(params.get("page", 1)) - 1),  # type: ignore[call-overload]
        collapse_story=bool(params.get("stories")),
        count_limit=SHOWN_COUNT_LIMIT,  # as the search page and the API count
    )


def timings(run: Callable[[dict[str, object]], object], shape: Shape, words: list[str]) -> list[float]:
    out = []
    for rep in range(3):
        for i, word in enumerate(words):
            params = shape(word, BRANDS[i % 5])
            started = time.perf_counter()
            run(params)
            if rep:  # the first pass warms the page cache
                out.append((time.perf_counter() - started) * 1000)
    return out


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


_API_PARAMS = ("q", "brand", "sentiment", "order", "page", "stories")


def api_runner(store: EmbeddedStore, tmp: Path) -> Callable[[dict[str, object]], object]:
    from fastapi.testclient import TestClient

    from listener.config import Config
    from listener.web import create_app
    from listener.web.accounts import AccountStore

    config = Config.model_validate(
        {"data_dir": str(tmp), "brands": [{"name": b, "queries": [b.lower()]} for b in BRANDS]}
    )
    accounts = AccountStore(tmp / "web.db")
    if accounts.user("bench") is None:
        accounts.add_user("bench", "viewer", "benchmark-password")
    token = accounts.issue_token("bench")
    client = TestClient(
        create_app(config, store, accounts=accounts), headers={"Authorization": f"Bearer {token}"}
    )

    def run(params: dict[str, object]) -> object:
        query = {k: str(v) for k, v in params.items() if k in _API_PARAMS}
        if "days" in params:
            query["since"] = (NOW - timedelta(days=float(params["days"]))).isoformat()  # type: ignore[arg-type]
        answer = client.get("/api/search", params=query)
        assert answer.status_code == 200, answer.text
        return answer.json()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentions", type=int, default=1_000_000)
    parser.add_argument("--baseline", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/listener-bench-search"))
    parser.add_argument("--shapes", default="", help="shape names separated by semicolons (default: all)")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    small = build(args.dir / f"store-{args.baseline}.db", args.baseline)
    big = build(args.dir / f"store-{args.mentions}.db", args.mentions)
    words = random.Random(5).sample(TOPICS * 2, 20)
    api = api_runner(big, args.dir)
    print(
        f"{'query':<22} {'p50 ms':>8} {'p95 ms':>8} {'hits':>9}   {'p95 @' + format(args.baseline, ','):>12}"
        f" {'ratio':>6}   {'API p95':>8}"
    )
    all_big: list[float] = []
    wanted = {s.strip() for s in args.shapes.split(";") if s.strip()}
    for name, shape in SHAPES.items():
        if wanted and name not in wanted:
            continue
        big_t = timings(lambda p: big.search(request(p)), shape, words)
        small_t = timings(lambda p: small.search(request(p)), shape, words)
        api_t = timings(api, shape, words)
        first = big.search(request(shape(words[0], BRANDS[0])))
        hits = f"{first.total:,}{'+' if first.total_at_least else ''}"
        all_big += big_t
        print(
            f"{name:<22} {statistics.median(big_t):8.1f} {p95(big_t):8.1f} {hits:>9}   {p95(small_t):12.1f}"
            f" {p95(big_t) / max(p95(small_t), 1e-6):6.1f}   {p95(api_t):8.1f}"
        )
    print(
        f"\nall shapes at {args.mentions:,} mentions: p50 {statistics.median(all_big):.1f} ms,"
        f" p95 {p95(all_big):.1f} ms over {len(all_big)} searches"
    )


if __name__ == "__main__":
    main()
