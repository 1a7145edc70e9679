"""Leave-one-category-out NAB scores, with and without a calibrated likelihood.

A score reported on the files its parameters were chosen on says little about
a series nobody has seen. Here every NAB category is held out in turn: the
parameters (the estimator grid, the alert hysteresis and NAB's one threshold
per profile) are chosen on the other categories only, then the held-out
category is scored at that choice. The held-out raw scores are summed and
normalised the way NAB aggregates a corpus, next to the same figures with
everything chosen on all files (in-sample).

The estimator's likelihood compares a short mean of surprise against a
Gaussian fit of its own history; series whose surprise is heavy-tailed reach
0.9999 every day, others never pass 0.97, so one threshold cannot serve both.
`calibrate` re-expresses each score as the probability of a score at least
as extreme under the series' own trailing scores (an empirical tail, with an
exponential tail fitted above a high quantile so that new extremes still
rank), which puts every series on the same scale.

The estimator's scores do not depend on its hysteresis (`fire`, `resolve`,
`hold` only decide when an anomaly is open), so `hold` replays it on stored
scores and the grid over it costs no estimator runs.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from nab_scoring import Curve, Layout, Profile, normalise

__all__ = [
    "Calibration",
    "Choice",
    "Setting",
    "TailCalibrator",
    "calibrate",
    "hold",
    "loco",
    "loco_splits",
]


def hold(scores: Iterable[float], fire: float, resolve: float, rows: int) -> list[float]:
    """The detector's hysteresis on stored scores: an open anomaly scores 0 until it resolves."""
    out: list[float] = []
    is_open, quiet = False, 0
    for s in scores:
        if not is_open:
            is_open, quiet = s >= fire, 0
            out.append(s)
            continue
        quiet = quiet + 1 if s < resolve else 0
        is_open = quiet < rows
        out.append(0.0 if is_open else s)
    return out


@dataclass(frozen=True)
class Calibration:
    window: int = 2000  # trailing scores the tail is judged against
    tail: float = 0.9  # above this quantile the tail is an exponential fit
    min_history: int = 200  # before this many scores, the calibrated score is 0
    min_scale: float = 0.1  # nats: floor of the tail's mean excess (flat series)


def surprisal(score: float) -> float:
    """-ln(1 - score): spreads the scores that crowd below 1, capped where floats saturate."""
    return -math.log(max(1.0 - score, 1e-17))


class TailCalibrator:
    """The probability of a surprisal at least as large, under the trailing window of surprisals."""

    def __init__(self, cal: Calibration) -> None:
        self.cal = cal
        self.sorted: list[float] = []
        self.fifo: deque[float] = deque()

    def probability(self, x: float) -> float:
        h, n = self.sorted, len(self.sorted)
        if n < self.cal.min_history:
            return 1.0
        u = h[min(int(self.cal.tail * n), n - 1)]
        if x <= u:  # the empirical tail, counted as a conformal p-value: uniform on exchangeable data
            return (n - bisect.bisect_left(h, x) + 1) / (n + 1)
        j = bisect.bisect_right(h, u)
        excess = (sum(h[j:]) / (n - j) - u) if n > j else 0.0
        return (n - j + 1) / (n + 1) * math.exp(-(x - u) / max(excess, self.cal.min_scale))

    def observe(self, x: float) -> None:
        bisect.insort(self.sorted, x)
        self.fifo.append(x)
        if len(self.fifo) > self.cal.window:
            old = self.fifo.popleft()
            del self.sorted[bisect.bisect_left(self.sorted, old)]


def calibrate(scores: Iterable[float], cal: Calibration | None = None) -> list[float]:
    """1 - tail probability of each score under the scores before it; no look-ahead."""
    tail = TailCalibrator(cal or Calibration())
    out = []
    for score in scores:
        x = surprisal(score)
        out.append(1.0 - tail.probability(x))
        tail.observe(x)
    return out


def loco_splits(categories: Sequence[str]) -> list[tuple[str, list[str]]]:
    """(held-out category, the categories its parameters are chosen on), each category once."""
    present = sorted(set(categories))
    return [(held, [c for c in present if c != held]) for held in present]


@dataclass(frozen=True)
class Setting:
    """One point of the grid: estimator variant, hysteresis, and whether scores are calibrated."""

    estimator: str
    fire: float
    resolve: float
    hold: int
    calibrated: bool

    def label(self) -> str:
        fire = f"tail p {1 - self.fire:.0e}" if self.calibrated else f"{self.fire:g}"
        return f"{self.estimator}, fire {fire}, hold {self.hold}"


@dataclass
class Choice:
    """The best setting and threshold found on some categories, and what it scores on others."""

    setting: Setting | None = None
    threshold: float = 1.1
    tuned_raw: float = -math.inf
    scored_raw: dict[str, float] | None = None


def curve_for(
    layouts: Sequence[Layout], scores: Sequence[Sequence[float]], profile: Profile, cats: Sequence[str]
) -> Curve:
    parts, bases = [], [0.0] * len(cats)
    for layout, s in zip(layouts, scores, strict=True):
        g = cats.index(layout.category)
        ev_s, ev_g = layout.events(np.asarray(s, dtype=np.float64), profile.fn)
        parts.append((ev_s, ev_g, g))
        bases[g] -= profile.fn * len(layout.windows)
    return Curve(parts, bases)


def loco(
    layouts: Mapping[str, Sequence[Layout]],
    grid: Iterable[tuple[Setting, Sequence[Sequence[float]]]],
    profiles: Sequence[Profile],
) -> dict[str, dict[str, Choice]]:
    """Per profile, for each held-out category (and "all", in-sample), the setting chosen without it.

    `layouts` holds each profile's files; `grid` yields each setting with its
    per-file emitted scores, consumed once. The first setting wins ties, so
    list the product's defaults first.
    """
    cats = sorted({layout.category for layout in next(iter(layouts.values()))})
    splits = [*loco_splits(cats), ("all", cats)]
    best = {p.name: {held: Choice() for held, _ in splits} for p in profiles}
    for setting, scores in grid:
        for profile in profiles:
            curve = curve_for(layouts[profile.name], scores, profile, cats)
            chosen = best[profile.name]
            for held, tune in splits:
                threshold, raw = curve.best([cats.index(c) for c in tune])
                if raw > chosen[held].tuned_raw + 1e-12:
                    scored = {c: curve.at(threshold, [i]) for i, c in enumerate(cats)}
                    chosen[held] = Choice(setting, threshold, raw, scored)
    return best


def summary(best: dict[str, Choice], windows: dict[str, int], profile: Profile) -> dict[str, object]:
    """Normalised in-sample and held-out scores per category, and both summed over the corpus."""
    rows: dict[str, object] = {}
    inside = best["all"]
    held_total, in_total = 0.0, 0.0
    for cat, k in windows.items():
        held_raw = (best[cat].scored_raw or {})[cat]
        in_raw = (inside.scored_raw or {})[cat]
        held_total, in_total = held_total + held_raw, in_total + in_raw
        chosen = best[cat].setting
        rows[cat] = {
            "windows": k,
            "in_sample": round(normalise(in_raw, k, profile), 2) if k else None,
            "held_out": round(normalise(held_raw, k, profile), 2) if k else None,
            "in_sample_raw": round(in_raw, 4),
            "held_out_raw": round(held_raw, 4),
            "threshold": best[cat].threshold,
            "setting": chosen.label() if chosen else "never fire",
        }
    k_all = sum(windows.values())
    rows["overall"] = {
        "windows": k_all,
        "in_sample": round(normalise(in_total, k_all, profile), 2),
        "held_out": round(normalise(held_total, k_all, profile), 2),
        "threshold": inside.threshold,
        "setting": inside.setting.label() if inside.setting else "never fire",
    }
    return rows
