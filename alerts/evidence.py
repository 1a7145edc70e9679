"""What an alert shows a responder besides its count: words, sources, mix, samples, the band.

A spike is only actionable when a responder can see *what* people are angry
about. The detector keeps, per bucket, the document frequency of the words of
negative mentions and the count per site (or source when a mention has no
site). An alert's top terms are the words over-represented in the window's
negative mentions compared with the negative mentions of the baseline span
before it, so the brand's everyday vocabulary ("acme", "order") cancels out
and the new word ("outage", "refund") rises. Words go through the shared
tokeniser (`listener.query.tokens`), so what a responder reads is what a search
for it finds.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

from alerts.anomaly import negbin_z
from listener.config import AlertRule
from listener.query.tokens import tokenize
from listener.records import ScoredMention

__all__ = [
    "STOP_WORDS",
    "TERMS_PER_BUCKET",
    "engagement",
    "fire_threshold",
    "mention_terms",
    "merge",
    "over_represented",
    "source_of",
    "top_counts",
    "trim",
]

# Closed buckets keep only their most frequent words, so state stays small under load.
TERMS_PER_BUCKET = 100
_TERMS_PER_MENTION = 64

_STOP_TEXT = """
    a about after again all also am an and any are as at be because been before being but by can
    could did do does doing don for from had has have having he her here him his how i if in into is
    it its just me more most my no not now of on once only or other our out over own same she should
    so some such than that the their them then there these they this those through to too under until
    up very was we were what when where which while who why will with would you your yours im ive
    dont cant wont didnt isnt doesnt get got still even really one via amp http https www com rt
"""
STOP_WORDS = frozenset(_STOP_TEXT.split())


def mention_terms(mention: ScoredMention, exclude: frozenset[str] = frozenset()) -> set[str]:
    """The distinct words of a mention worth showing: no stop words, numbers, 1-2 letter bits."""
    text = " ".join(part for part in (mention.title, mention.text) if part)
    terms: set[str] = set()
    for token in tokenize(text):
        if len(token) < 3 or token.isdigit() or token in STOP_WORDS or token in exclude:
            continue
        terms.add(token)
        if len(terms) >= _TERMS_PER_MENTION:
            break
    return terms


def source_of(mention: ScoredMention) -> str:
    """Where a mention came from, as a responder would look for it: the site, else the source."""
    return mention.site or mention.source


def engagement(mention: ScoredMention) -> int:
    """Likes, shares, comments... summed; negative or odd values count as nothing."""
    return sum(max(0, int(v)) for v in mention.engagement.values())


def top_counts(counts: Mapping[str, int], limit: int) -> tuple[tuple[str, int], ...]:
    """Most frequent first; ties alphabetically, so the same data shows the same list."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return tuple((key, count) for key, count in ranked[:limit] if count > 0)


def over_represented(
    window: Mapping[str, int],
    window_docs: int,
    baseline: Mapping[str, int],
    baseline_docs: int,
    *,
    limit: int = 5,
    min_docs: int = 2,
) -> tuple[tuple[str, int], ...]:
    """Words whose share of the window's negatives most exceeds their share in the baseline.

    The score is the smoothed log ratio of the two shares weighted by the
    window count, so a word in 30 complaints beats a word in 2 with a bigger
    ratio; a word the baseline used as often scores nothing.
    """
    if window_docs <= 0:
        return ()
    scored: list[tuple[float, str, int]] = []
    for term, count in window.items():
        if count < min(min_docs, window_docs):
            continue
        share = (count + 0.5) / (window_docs + 1.0)
        usual = (baseline.get(term, 0) + 0.5) / (baseline_docs + 1.0)
        score = count * math.log(share / usual)
        if score > 0:
            scored.append((score, term, count))
    scored.sort(key=lambda s: (-s[0], s[1]))
    return tuple((term, count) for _, term, count in scored[:limit])


def merge(counters: Iterable[Mapping[str, int]]) -> Counter[str]:
    total: Counter[str] = Counter()
    for counts in counters:
        total.update(counts)
    return total


def trim(counts: dict[str, int], keep: int = TERMS_PER_BUCKET) -> dict[str, int]:
    """The `keep` most frequent entries (ties alphabetically)."""
    if len(counts) <= keep:
        return counts
    return dict(top_counts(counts, keep))


def fire_threshold(expected: float, rule: AlertRule, shape: float = math.inf, cap: int = 100_000) -> float:
    """The smallest window count that this rule's count test would call a spike, for the
    chart's band (`shape`: the negatives the expectation rests on, as in the test)."""
    count = max(rule.min_count, math.ceil(rule.min_ratio * expected))
    while count < cap and negbin_z(count, expected, shape) < rule.sensitivity:
        count += 1
    return float(count)
