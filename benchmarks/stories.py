"""Story grouping: precision and recall on a labelled pair set, and the cost per mention.

    python benchmarks/stories.py [--pairs tests/fixtures/stories/pairs.jsonl] [--mentions 3000]

Quality: each labelled pair (same story or not: syndicated copies, reposts,
quote posts, crossposts; different posts and articles about the same outage,
templated complaints) is scored with the estimated Jaccard similarity of the
MinHash signatures, at several thresholds; the shipped threshold is marked.

Speed: `StoryIndex.add` (signature, LSH query, SQLite write) per mention of the
demo world, against the baseline of exact-duplicate grouping (a SHA-256 of the
normalised text into a dict) measured in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

from listener.demo.world import build_world
from listener.records import Mention, document_id
from listener.stories import StoryIndex, signature

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
SHIPPED = 0.5


def quality(pairs_path: Path) -> None:
    pairs = [json.loads(line) for line in pairs_path.read_text().splitlines() if line.strip()]
    scores = [(signature(p["a"]).jaccard(signature(p["b"])), bool(p["same"]), p["kind"]) for p in pairs]
    positives = sum(same for _, same, _ in scores)
    print(f"pairs: {len(pairs)} ({positives} same story, {len(pairs) - positives} different)")
    print(f"{'threshold':>9} {'precision':>9} {'recall':>7} {'f1':>6}")
    for threshold in THRESHOLDS:
        tp = sum(1 for s, same, _ in scores if s >= threshold and same)
        fp = sum(1 for s, same, _ in scores if s >= threshold and not same)
        fn = sum(1 for s, same, _ in scores if s < threshold and same)
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        mark = "  <- shipped" if threshold == SHIPPED else ""
        print(f"{threshold:>9.1f} {precision:>9.3f} {recall:>7.3f} {f1:>6.3f}{mark}")
    wrong = [(round(s, 2), same, kind) for s, same, kind in scores if (s >= SHIPPED) != same]
    print(f"misjudged at {SHIPPED}: {wrong}")


def mentions(limit: int) -> list[Mention]:
    world = build_world(seed=7, t0=1_763_600_000)
    out = []
    for item in world.items[:limit]:
        doc_id = document_id(item.channel, item.guid)
        out.append(
            Mention(
                id=doc_id, document_id=doc_id, brand="Zephyro Fiber", source=item.channel,
                source_type="feed", text=item.text, title=item.title or None,
                published=item.published_at, fetched=item.published_at,
            )
        )  # fmt: skip
    return out


def speed(count: int) -> None:
    batch = mentions(count)
    with tempfile.TemporaryDirectory() as tmp:
        index = StoryIndex(Path(tmp) / "stories.db")
        started = time.perf_counter()
        stories = set()
        for start in range(0, len(batch), 100):  # the index stage's batches
            stories.update(index.add_many(batch[start : start + 100]))
        minhash = time.perf_counter() - started
        index.close()
    started = time.perf_counter()
    exact: dict[str, str] = {}
    for m in batch:
        key = hashlib.sha256(" ".join(m.text.casefold().split()).encode()).hexdigest()
        exact.setdefault(key, m.id)
    baseline = time.perf_counter() - started
    print(f"mentions: {len(batch)}  stories: {len(stories)}  exact-duplicate groups: {len(exact)}")
    each = minhash / len(batch) * 1e3
    print(f"StoryIndex.add: {len(batch) / minhash:,.0f} mentions/s ({each:.3f} ms each)")
    ratio = minhash / baseline
    print(f"exact-hash baseline: {len(batch) / baseline:,.0f} mentions/s; StoryIndex is {ratio:,.0f}x slower")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=Path("tests/fixtures/stories/pairs.jsonl"))
    parser.add_argument("--mentions", type=int, default=3000)
    args = parser.parse_args()
    quality(args.pairs)
    speed(args.mentions)


if __name__ == "__main__":
    main()
