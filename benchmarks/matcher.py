"""How many documents per second the watch-term matcher handles with thousands of queries.

    .venv/bin/python benchmarks/matcher.py [--queries 5000] [--docs N] [--baseline-docs 300]

Queries are generated (seeded) to look like brand teams' watch terms; documents
are tweets from ../shared/datasets/tweeteval-sentiment when present (else
generated), with brand names injected into about 5% of them. The anchored
Aho-Corasick matcher is compared with the naive approach (one big regex
alternation of every query word, then evaluating the queries whose words hit),
and both are checked against evaluating every query directly on a subset.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from listener.query.ast import And, Near, Node, Not, Or, Phrase, Term
from listener.query.matcher import Matcher, evaluate, prepare, word_anchors
from listener.query.parser import parse

REPO = Path(__file__).resolve().parent.parent
TWEETS = REPO.parent / "shared" / "datasets" / "tweeteval-sentiment" / "test_text.txt"

WORDS = {
    "syllables": "zen tri ko va lux ora max nex vio quan tel ro sa mi bel cor dyn fle gra hal jet kai mor",
    "endings": "ix a on ia us io ex ly co ra",
    "products": "air pay cloud one pro go home bank labs mobile max drive",
    "issues": "outage down broken refund scam slow crash delay support hack bug price",
    "feelings": "love hate awful great worst best angry happy",
    "exclude": "job jobs hiring giveaway contest",
    "filler": "the a is was my our new today just got really this that with for on and you",
}
SYLLABLES, ENDINGS, PRODUCTS, ISSUES, FEELINGS, EXCLUDE, FILLER = (v.split() for v in WORDS.values())
SITES = ["twitter.com", "news.example.com", "blog.example.org", "reddit.com", "www.bbc.co.uk"]


def brand_names(rng: random.Random, n: int) -> list[str]:
    names: set[str] = set()
    while len(names) < n:
        parts = rng.sample(SYLLABLES, rng.choice((2, 2, 3)))
        names.add("".join(parts) + rng.choice(ENDINGS))
    return sorted(names)


def make_query(rng: random.Random, brand: str) -> str:
    product = rng.choice(PRODUCTS)
    issues = " OR ".join(rng.sample(ISSUES, rng.randint(2, 4)))
    templates = [
        f"{brand}",
        f'{brand} OR "{brand} {product}" OR #{brand}',
        f"{brand} AND ({issues})",
        f"{brand} NEAR/{rng.randint(1, 6)} {rng.choice(ISSUES)}*",
        f"({brand} OR {brand[:5]}*) NOT ({' OR '.join(rng.sample(EXCLUDE, 2))})",
        f"{brand} site:{brand}.com",
        f'"{brand} {product}" NEAR/3 {rng.choice(ISSUES)}',
        f"author:{brand}support OR @{brand}",
        f"{brand} ({rng.choice(FEELINGS)} OR {rng.choice(FEELINGS)}) NOT source:{brand}-news",
        f"({brand} OR {brand}{product}) lang:en",
        f"{brand}-{product} OR {brand}.com",
    ]
    return rng.choice(templates)


def generate_queries(n: int, seed: int = 7) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    brands = brand_names(rng, max(1, n // 2))
    queries: dict[str, None] = {}
    while len(queries) < n:
        queries[make_query(rng, rng.choice(brands))] = None
    return list(queries), brands


def load_texts(n: int | None, rng: random.Random) -> list[str]:
    if TWEETS.exists():
        texts = [line.strip() for line in TWEETS.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        texts = [" ".join(rng.choice(FILLER) for _ in range(rng.randint(8, 30))) for _ in range(12_000)]
    if n is not None:
        texts = (texts * (n // len(texts) + 1))[:n]
    return texts


def inject(
    texts: list[str], brands: list[str], rng: random.Random, rate: float = 0.05
) -> list[tuple[str, bool]]:
    """Puts a brand name (sometimes with a product or an issue word) into about `rate` of the texts."""
    out = []
    for text in texts:
        injected = rng.random() < rate
        if injected:
            words = text.split()
            phrase = [rng.choice(brands)]
            if rng.random() < 0.5:
                phrase.append(rng.choice(PRODUCTS + ISSUES + FEELINGS))
            if rng.random() < 0.3:
                phrase[0] = rng.choice(("#", "@", "")) + phrase[0].capitalize()
            words.insert(rng.randint(0, len(words)), " ".join(phrase))
            text = " ".join(words)
        out.append((text, injected))
    return out


def make_docs(opts: argparse.Namespace, brands: list[str]) -> tuple[list[Doc], list[Doc]]:
    """All documents, and the subset for the baseline: half with injected brands, half without."""
    rng = random.Random(11)
    authors = [f"user{i}" for i in range(2000)] + [f"{b}support" for b in brands[:200]]
    sites = SITES + [f"{b}.com" for b in brands[:200]]
    docs: list[Doc] = []
    with_brand: list[Doc] = []
    without: list[Doc] = []
    for text, injected in inject(load_texts(opts.docs, rng), brands, rng):
        doc = Doc(
            text,
            rng.choice(sites),
            rng.choice(authors),
            rng.choice(("en", "en-GB", "es")),
            rng.choice(("twitter", "reddit", f"{rng.choice(brands)}-news")),
        )
        docs.append(doc)
        (with_brand if injected else without).append(doc)
    half = opts.baseline_docs // 2
    return docs, with_brand[:half] + without[: opts.baseline_docs - half]


class Doc(NamedTuple):
    text: str
    site: str
    author: str
    lang: str
    source: str


class NaiveMatcher:
    """The baseline: one regex alternation of all query words, then evaluate the queries hit."""

    def __init__(self, entries: list[tuple[str, Node]]) -> None:
        self.entries = entries
        self.by_word: dict[str, set[int]] = {}
        self.by_prefix: dict[str, set[int]] = {}
        self.always = [i for i, (_, node) in enumerate(entries) if word_anchors(node) is None]
        for i, (_, node) in enumerate(entries):
            for word, prefix in leaf_words(node):
                (self.by_prefix if prefix else self.by_word).setdefault(word, set()).add(i)
        alternatives = sorted(self.by_word, key=len, reverse=True)
        alternatives += [re.escape(p) + r"[^\W_]*" for p in sorted(self.by_prefix, key=len, reverse=True)]
        self.regex = re.compile(r"(?<![^\W_])(?:" + "|".join(alternatives) + r")(?![^\W_])")

    def match_text(self, text: str, **fields: str) -> list[str]:
        candidates = set(self.always)
        for hit in self.regex.findall(prepare_text(text)):
            candidates |= self.by_word.get(hit, set())
            for prefix, ids in self.by_prefix.items():
                if hit.startswith(prefix):
                    candidates |= ids
        if not candidates:
            return []
        view = prepare(text, **fields)
        return [self.entries[i][0] for i in sorted(candidates) if evaluate(self.entries[i][1], view)]


def prepare_text(text: str) -> str:
    from listener.query.tokens import normalise

    return normalise(text)


def leaf_words(node: Node) -> list[tuple[str, bool]]:
    if isinstance(node, Term):
        return [(node.word, node.prefix)]
    if isinstance(node, Phrase):
        return [(w, node.prefix and i == len(node.words) - 1) for i, w in enumerate(node.words)]
    if isinstance(node, Near):
        return leaf_words(node.left) + leaf_words(node.right)
    if isinstance(node, And | Or):
        return [w for child in node.children for w in leaf_words(child)]
    if isinstance(node, Not):
        return leaf_words(node.child)
    return []


def docs_per_second(run: Callable[..., list[str]], docs: list[Doc], repeat: int) -> list[float]:
    rates = []
    for _ in range(repeat):
        start = time.perf_counter()
        for d in docs:
            run(d.text, site=d.site, author=d.author, lang=d.lang, source=d.source)
        rates.append(len(docs) / (time.perf_counter() - start))
    return rates


def check_agreement(matcher: Matcher[str], naive: NaiveMatcher, subset: list[Doc]) -> tuple[int, int, int]:
    """Counts documents where the matcher equals the baseline, and equals evaluating every query."""
    agree_naive = agree_reference = matched = 0
    for d in subset:
        fields = {"site": d.site, "author": d.author, "lang": d.lang, "source": d.source}
        got = matcher.match_text(d.text, **fields)
        view = prepare(d.text, **fields)
        reference = [key for key, node in naive.entries if evaluate(node, view)]
        agree_naive += got == naive.match_text(d.text, **fields)
        agree_reference += got == reference
        matched += bool(got)
    return agree_naive, agree_reference, matched


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--queries", type=int, default=5000)
    args.add_argument("--docs", type=int, default=None, help="documents to match (default: all tweets)")
    args.add_argument("--baseline-docs", type=int, default=300)
    args.add_argument("--repeat", type=int, default=3)
    opts = args.parse_args(argv)
    try:
        os.sched_setaffinity(0, {0})
        pinned = "pinned to CPU 0"
    except (AttributeError, OSError):
        pinned = "not pinned"

    texts, brands = generate_queries(opts.queries)
    entries = [(q, parse(q)) for q in texts]
    docs, subset = make_docs(opts, brands)

    start = time.perf_counter()
    matcher = Matcher(entries)
    build = time.perf_counter() - start
    start = time.perf_counter()
    naive = NaiveMatcher(entries)
    naive_build = time.perf_counter() - start

    fast = docs_per_second(matcher.match_text, docs, opts.repeat)
    slow = docs_per_second(naive.match_text, subset, 1)
    agree_naive, agree_reference, matched = check_agreement(matcher, naive, subset)
    hits = sum(
        bool(matcher.match_text(d.text, site=d.site, author=d.author, lang=d.lang, source=d.source))
        for d in docs
    )

    best, median = max(fast), statistics.median(fast)
    print(f"queries            {len(entries)} ({matcher.always_evaluated} evaluated on every document)")
    print(
        f"documents          {len(docs)} from {'tweeteval' if TWEETS.exists() else 'generated text'}, "
        f"{hits} ({hits / len(docs):.1%}) match at least one query; {pinned}"
    )
    print(f"build              matcher {build:.2f} s, naive regex {naive_build:.2f} s")
    print(f"matcher            {best:,.0f} docs/s best, {median:,.0f} median of {opts.repeat} passes")
    print(f"naive baseline     {slow[0]:,.0f} docs/s over {len(subset)} documents")
    print(f"speed-up           {best / slow[0]:,.0f}x")
    print(
        f"agreement          matcher = naive on {agree_naive}/{len(subset)}, "
        f"matcher = evaluating every query on {agree_reference}/{len(subset)} "
        f"({matched} of them with matches)"
    )
    ok = agree_naive == agree_reference == len(subset)
    print("result             " + ("OK" if ok else "MISMATCH"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
