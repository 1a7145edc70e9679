"""Story grouping: precision and recall on labelled pairs, and the cost per mention.

    python benchmarks/stories.py [--pairs tests/fixtures/stories/pairs.jsonl] [--mentions 3000]

Quality: each labelled pair (same story or not: syndicated copies, reposts,
quote posts, crossposts; different posts and articles about the same outage,
templated complaints) is scored with the estimated Jaccard similarity of the
MinHash signatures, at several thresholds; the shipped threshold is marked.

Teasers: labelled pairs built from the fixtures' articles (the demo's wire
story in every outlet and area, its crisis news, the airline article): a
teaser (first two sentences, optionally with a "Read more" link) against its
article, in the same and in another outlet, are the same story; a teaser
against another article, the demo's short posts against the articles, and
templated complaints with another problem or opener, are not. The
containment threshold is chosen on a tuning split (the wire story in three
outlets, the first crisis article, half the templated complaints, odd fixture
pairs) and reported on the held-out split (the wire story in the other three
outlets: same article, other datelines and footers, so not independent; the
other articles, templates and fixture pairs), for the rule the index applies:
same when Jaccard >= 0.5 or containment of the shorter text >= the threshold.
The held-out pairs are also fed through a `StoryIndex` (each pair under its
own brand) to show that LSH retrieval finds them, not only the measure.

Speed: `StoryIndex.add` (signature, LSH query, SQLite write) per mention of the
demo world, against the baseline of exact-duplicate grouping (a SHA-256 of the
normalised text into a dict) measured in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from listener.demo import texts
from listener.demo.world import build_world
from listener.records import Mention, document_id
from listener.stories import StoryIndex, containment, signature

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
SHIPPED = 0.5
CONTAIN = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
# The wire story in three outlets, the first crisis article, half the templates; the rest is held out.
TUNING = ("wire-0", "wire-1", "wire-2", "crisis-news-0", "templates-0")
AIRLINE = (  # the airline article of the fixture pairs
    "Velmora Air grounds flights. Velmora Air cancelled forty flights out of Harbor Point after a"
    " software fault grounded its check-in systems. Passengers queued for hours and the airline said"
    " rebooking would take until Friday."
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
Pair = dict[str, object]


def quality(pairs_path: Path) -> None:
    pairs = [json.loads(line) for line in pairs_path.read_text().splitlines() if line.strip()]
    scores = [(signature(p["a"]).jaccard(signature(p["b"])), bool(p["same"]), p["kind"]) for p in pairs]
    positives = sum(same for _, same, _ in scores)
    print(f"pairs: {len(pairs)} ({positives} same story, {len(pairs) - positives} different)")
    print(f"{'threshold':>9} {'precision':>9} {'recall':>7} {'f1':>6}")
    for threshold in THRESHOLDS:
        precision, recall, f1 = _rates([(s >= threshold, same) for s, same, _ in scores])
        mark = "  <- shipped" if threshold == SHIPPED else ""
        print(f"{threshold:>9.1f} {precision:>9.3f} {recall:>7.3f} {f1:>6.3f}{mark}")
    wrong = [(round(s, 2), same, kind) for s, same, kind in scores if (s >= SHIPPED) != same]
    print(f"misjudged at {SHIPPED}: {wrong}")


def _rates(called: list[tuple[bool, bool]]) -> tuple[float, float, float]:
    tp = sum(1 for c, same in called if c and same)
    fp = sum(1 for c, same in called if c and not same)
    fn = sum(1 for c, same in called if not c and same)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, (2 * precision * recall / (precision + recall) if precision + recall else 0.0)


def _articles() -> list[tuple[str, list[str]]]:
    """(article name, its full texts): every outlet and area for the wire story, every area for the news."""
    title, body = texts.SYNDICATED_STORY
    wire = [
        f"{title}. ({outlet}) {body.format(a=area)} More local news from {outlet}."
        for area in texts.AREAS
        for outlet in texts.SYNDICATION_OUTLETS
    ]
    found = [("wire", wire)]
    for n, (head, text) in enumerate(texts.CRISIS_NEWS):
        found.append((f"crisis-news-{n}", [f"{head.format(a=area)}. {text}" for area in texts.AREAS]))
    return [*found, ("airline", [AIRLINE])]


def _short_posts() -> list[str]:
    """The demo's own short posts about the brand: they share its name and the outage's words."""
    fill = {"b": "Zephyro Fiber", "a": "Eastgate", "h": 3}
    posts = [t.format(**fill) for t in (*texts.ZEPHYRO["negative"], *texts.CRISIS_OPENERS)]
    return posts + list(texts.CRISIS_REVIEWS) + [t.format(**fill) for _, t in texts.RECOVERY]


def _teaser(full: str, *, link: bool = False) -> str:
    lead = " ".join(_SENTENCE.split(full)[:2])
    return f"{lead} Read more: https://wire.example/story" if link else lead


def _pair(a: str, b: str, same: bool, kind: str, group: str) -> Pair:
    return {"a": a, "b": b, "same": same, "kind": kind, "group": group}


def teaser_pairs() -> list[Pair]:
    """Labelled teaser/full-text pairs from the fixtures' articles, each tagged with its split group."""
    articles = _articles()
    pairs: list[Pair] = []
    for name, fulls in articles:
        outlets = len(texts.SYNDICATION_OUTLETS) if name == "wire" else 1
        for n, full in enumerate(fulls):
            group = f"wire-{n % outlets}" if outlets > 1 else name  # the wire story: split by outlet
            # Another outlet's copy in the same area (for the news, the same article in another area).
            other = fulls[n - n % outlets + (n + 1) % outlets] if outlets > 1 else fulls[(n + 1) % len(fulls)]
            pairs.append(_pair(_teaser(full), full, True, "teaser", group))
            pairs.append(_pair(_teaser(full, link=True), other, True, "teaser-other-copy", group))
            for other_name, other_fulls in articles:
                if other_name != name:
                    unrelated = other_fulls[n % len(other_fulls)]
                    pairs.append(_pair(_teaser(full), unrelated, False, "teaser-other-article", group))
        pairs += [_pair(post, fulls[0], False, "short-post-vs-article", name) for post in _short_posts()]
    return pairs + _template_pairs()


def _template_pairs() -> list[Pair]:
    """Complaints from one template with another problem or opener: different people, not one story."""
    pairs: list[Pair] = []
    openers = [o.format(b="Zephyro Fiber", a="Eastgate", h=3) for o in texts.CRISIS_OPENERS]
    problems = texts.CRISIS_PROBLEMS
    for n, opener in enumerate(openers):
        closer = texts.CRISIS_CLOSERS[n % len(texts.CRISIS_CLOSERS)]
        for k, problem in enumerate(problems):
            a = f"{opener} {problem}. {closer}"
            b = f"{opener} {problems[(k + 1) % len(problems)]}. {closer} #ZephyroDown"
            c = f"{openers[(n + 1) % len(openers)]} {problem}. {closer}"
            pairs.append(_pair(a, b, False, "template-other-problem", f"templates-{n % 2}"))
            pairs.append(_pair(a, c, False, "template-other-opener", f"templates-{n % 2}"))
    return pairs


def _split(pairs_path: Path) -> tuple[list[Pair], list[Pair]]:
    """Tuning: `TUNING` groups and odd fixture pairs; held out: the other articles, outlets and pairs."""
    fixture = [json.loads(line) for line in pairs_path.read_text().splitlines() if line.strip()]
    tuning: list[Pair] = []
    held_out: list[Pair] = []
    for pair in teaser_pairs():
        (tuning if pair["group"] in TUNING else held_out).append(pair)
    for n, pair in enumerate(fixture):
        (tuning if n % 2 else held_out).append(pair)
    return tuning, held_out


def _measures(pair: Pair) -> tuple[float, float]:
    a, b = str(pair["a"]), str(pair["b"])
    return float(signature(a).jaccard(signature(b))), containment(a, b)


def containment_quality(pairs_path: Path) -> float:
    """Choose the containment threshold on the tuning split and report it on the held-out one."""
    tuning, held_out = _split(pairs_path)
    scored = {id(p): _measures(p) for p in tuning + held_out}

    def judged(pairs: list[Pair], limit: float) -> list[tuple[bool, bool]]:
        return [(scored[id(p)][0] >= SHIPPED or scored[id(p)][1] >= limit, bool(p["same"])) for p in pairs]

    for name, pairs in (("tuning", tuning), ("held-out", held_out)):
        print(f"{name} pairs: {len(pairs)} ({sum(bool(p['same']) for p in pairs)} same story)")
    print(f"{'containment':>11} {'tune P':>7} {'tune R':>7} {'tune F1':>7}")
    for limit in CONTAIN:
        precision, recall, f1 = _rates(judged(tuning, limit))
        print(f"{limit:>11.2f} {precision:>7.3f} {recall:>7.3f} {f1:>7.3f}")
    best = max(CONTAIN, key=lambda limit: (round(_rates(judged(tuning, limit))[2], 6), limit))
    for name, pairs in (("tuning", tuning), ("held-out", held_out)):
        jp, jr, _ = _rates(judged(pairs, 2.0))
        cp, cr, _ = _rates(judged(pairs, best))
        print(f"{name:>8}: jaccard>={SHIPPED} alone P {jp:.3f} R {jr:.3f};", end=" ")
        print(f"or containment>={best} P {cp:.3f} R {cr:.3f}")
    calls = zip(held_out, judged(held_out, best), strict=True)
    wrong = [(*(round(x, 2) for x in scored[id(p)]), p["same"], p["kind"]) for p, (c, s) in calls if c != s]
    print(f"held-out misjudged (jaccard, containment, same, kind): {wrong}")
    through_index(held_out, best)
    return best


def through_index(pairs: list[Pair], limit: float) -> None:
    """Each pair under its own brand in one index: does b join a's story (retrieval included)?"""
    when = datetime.now(UTC)
    called = []
    with tempfile.TemporaryDirectory() as tmp:
        index = StoryIndex(Path(tmp) / "stories.db", contain_threshold=limit)
        for n, pair in enumerate(pairs):
            first, second = (_pair_mention(str(pair[side]), f"brand-{n}", side, when) for side in ("a", "b"))
            called.append((index.add(first) == index.add(second), bool(pair["same"])))
        index.close()
    precision, recall, _ = _rates(called)
    missed = [(p["kind"], p.get("group")) for p, (c, s) in zip(pairs, called, strict=True) if c != s]
    print(f"held-out through StoryIndex: precision {precision:.3f} recall {recall:.3f} ({len(pairs)} pairs)")
    print(f"  misjudged there: {missed}")


def _pair_mention(text: str, brand: str, side: str, when: datetime) -> Mention:
    doc = document_id("news", f"{brand}|{side}")
    return Mention(id=doc, document_id=doc, brand=brand, source="news", source_type="feed", text=text,
                   published=when, fetched=when)  # fmt: skip


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
    containment_quality(args.pairs)
    speed(args.mentions)


if __name__ == "__main__":
    main()
