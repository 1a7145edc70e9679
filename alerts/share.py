"""The negative share against the brand's usual share: the tests that keep good news quiet.

Counting negatives alone pages on-call for a loved launch: ten times the
volume brings ten times the complaints (and a model that reads "is sick" as
negative adds more), while the share of negatives stays where it always was.
So a burst must also be a rise in the *share*, judged conditionally on the
volume, and a slow crisis is a share that stays raised for hours.

* `usual_share` is the brand's share learnt slowly (decayed sums with a
  half-life of a quarter of `share_baseline`), plus a weak prior so a new
  brand is not judged against an empty history.
* `beta_binomial_z` asks how surprising k negatives among n mentions are if
  each mention were negative with the usual share. Mentions are not
  independent coin flips (one thread brings ten angry replies; a launch
  changes who posts), so the share itself is drawn from a beta distribution
  of `concentration` pseudo-mentions around the usual share: the evidence of
  a big window saturates instead of growing without bound.
* `climb_evidence` is one step of a CUSUM (log-likelihood ratio) for "the
  share's odds are `ratio` times usual" against "usual", clipped per bucket
  so that one busy thread cannot make a climb on its own.

Pure functions: the spike detector owns the state and decides when to learn.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from alerts.state import ShareBaseline

__all__ = [
    "beta_binomial_z",
    "bucket_weight",
    "climb_evidence",
    "climbed_share",
    "forget_climb",
    "learn_share",
    "scan_z",
    "share_learnt",
    "usual_share",
]

_NORMAL = NormalDist()
# Above this many mentions the exact tail sum costs more than it adds over the normal approximation.
EXACT_UP_TO = 400


def usual_share(base: ShareBaseline, prior_share: float, prior_mentions: float) -> float:
    """The brand's usual negative share, pulled towards `prior_share` while history is thin."""
    share = (base.negatives + prior_share * prior_mentions) / (base.mentions + prior_mentions)
    return min(max(share, 1e-4), 1 - 1e-4)


def learn_share(
    base: ShareBaseline, negatives: int, mentions: int, halflife_buckets: float, gap: int
) -> None:
    """Decay the sums by `gap` buckets of time, then learn one bucket's counts, by time.

    The usual share is a share over hours, not over mentions: a bucket counts for at
    most the brand's usual volume, and one far above it (a launch, a viral post) is not
    learnt at all. Otherwise a launch's ten-times volume at a low share would teach that
    share as the usual for a day, and the ordinary share after it would look like a climb.
    """
    decay = 0.5 ** (max(gap, 1) / max(halflife_buckets, 1e-9))
    usual = usual_volume(base)
    far_above = max(3 * usual, usual + 3 * math.sqrt(usual) + 3) if base.buckets >= 10 else math.inf
    # The usual volume moves towards a busier level, but no faster than a busy hour allows.
    base.volume = base.volume * decay + min(mentions, far_above)
    base.buckets = base.buckets * decay + 1
    base.negatives *= decay
    base.mentions *= decay
    if mentions > far_above:
        return
    weight = bucket_weight(base, mentions)
    base.negatives += negatives * weight
    base.mentions += mentions * weight


def usual_volume(base: ShareBaseline) -> float:
    """The brand's usual mentions a bucket, as learnt with the share."""
    return base.volume / base.buckets if base.buckets > 0 else 0.0


def bucket_weight(base: ShareBaseline, mentions: int) -> float:
    """How much of a bucket counts: all of an ordinary one, one busier than an ordinary
    bucket's Poisson spread only as much as an ordinary one holds.

    Not capped at the usual volume itself: a brand with a mention every other minute
    would then learn each post at half weight, and the prior outweighed half a day of
    its own history. Capped at all, because a launch's ten-times volume is not ten
    times the evidence about the share, for learning or for a climb.
    """
    if base.buckets < 10 or mentions <= 0:
        return 1.0
    usual = usual_volume(base)
    return min(1.0, (usual + 2 * math.sqrt(usual) + 1) / mentions)


def share_learnt(base: ShareBaseline, halflife_buckets: float, prior_mentions: float) -> bool:
    """Whether the usual share has learnt for at least one half-life of buckets, from more
    mentions than the prior stands for.

    Before that the usual share is mostly the prior, and a brand whose everyday share
    is above the prior looks like a climb from its first hour; the climb test then froze
    the learning that would have corrected it and paged a day later on nothing.
    """
    decay = 0.5 ** (1 / max(halflife_buckets, 1e-9))
    return bool(base.buckets >= (1 - 0.5) / (1 - decay) - 1e-6 and base.mentions >= prior_mentions)


def beta_binomial_z(negatives: int, mentions: int, share: float, concentration: float) -> float:
    """How surprising `negatives` among `mentions` is at the usual `share`, as a normal z.

    The upper tail P(K >= k) of a beta-binomial with mean `share` and
    `concentration` (alpha + beta): exact for small windows, a normal
    approximation with the beta-binomial's variance above `EXACT_UP_TO`.
    """
    n, k = mentions, negatives
    if n <= 0:
        return 0.0
    mean = n * share
    variance = n * share * (1 - share) * (n + concentration) / (1 + concentration)
    if k <= mean or n > EXACT_UP_TO:
        return (k - 0.5 * (k > mean) - mean) / math.sqrt(max(variance, 1e-12))
    a, b = share * concentration, (1 - share) * concentration
    log_first = (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + _log_beta(k + a, n - k + b)
        - _log_beta(a, b)
    )
    term, tail = 1.0, 0.0
    for j in range(k, n + 1):  # P(j+1)/P(j) = (n-j)/(j+1) * (j+a)/(n-j-1+b)
        tail += term
        if j < n:
            term *= (n - j) / (j + 1) * (j + a) / (n - j - 1 + b)
            if term < 1e-17 * tail:
                break
    log_tail = log_first + math.log(tail)
    return _z_of_tail(log_tail)


def forget_climb(base: ShareBaseline) -> None:
    """No climb is gathering: its evidence and its counts since it began are dropped."""
    base.cusum, base.rising_since, base.rising_negatives, base.rising_mentions = 0.0, None, 0, 0


def scan_z(sensitivity: float, fraction: float) -> float:
    """The z a span must reach when it is `fraction` of a window judged at `sensitivity`."""
    if fraction >= 1.0:
        return sensitivity
    return -_NORMAL.inv_cdf(_NORMAL.cdf(-sensitivity) * max(fraction, 1e-6))


def climbed_share(share: float, ratio: float) -> float:
    """The share whose odds are `ratio` times those of `share`: a multiple that never passes 1."""
    return ratio * share / (1 - share + ratio * share)


def climb_evidence(negatives: int, mentions: int, share: float, ratio: float, clip: float) -> float:
    """One bucket's log-likelihood ratio for "climbed by `ratio` in odds" over "usual", clipped.

    Negative when the bucket looks usual, so the sum drains back to zero in
    ordinary times; positive only while the share runs well above usual.
    """
    raised = climbed_share(share, ratio)
    llr = negatives * math.log(raised / share) + (mentions - negatives) * math.log((1 - raised) / (1 - share))
    return max(-clip, min(clip, llr))


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _z_of_tail(log_tail: float) -> float:
    if log_tail >= 0:
        return 0.0
    if log_tail < -700:  # beyond what a float probability holds: the asymptotic z
        return math.sqrt(-2 * log_tail)
    return -_NORMAL.inv_cdf(math.exp(log_tail))
