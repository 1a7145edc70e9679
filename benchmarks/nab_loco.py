"""Leave-one-category-out NAB scores.

A score reported on the files its parameters were chosen on says little about
a series nobody has seen. Here every NAB category is held out in turn: the
parameters (the estimator grid, the alert hysteresis and NAB's one threshold
per profile) are chosen on the other categories only, then the held-out
category is scored at that choice. The held-out raw scores are summed and
normalised the way NAB aggregates a corpus, next to the same figures with
everything chosen on all files (in-sample).

The estimator's scores do not depend on its hysteresis (`fire`, `resolve`,
`hold` only decide when an anomaly is open), so `hold` replays it on stored
scores and the grid over it costs no estimator runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from nab_scoring import Curve, Layout, Profile, normalise

__all__ = [
    "Choice",
    "Setting",
    "combine",
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


def loco_splits(categories: Sequence[str]) -> list[tuple[str, list[str]]]:
    """(held-out category, the categories its parameters are chosen on), each category once."""
    present = sorted(set(categories))
    return [(held, [c for c in present if c != held]) for held in present]


@dataclass(frozen=True)
class Setting:
    """One point of the grid: estimator variant and hysteresis (`fire` on the calibrated score)."""

    estimator: str
    fire: float
    resolve: float
    hold: int

    def label(self) -> str:
        return f"{self.estimator}, fire tail p {1 - self.fire:.0e}, hold {self.hold}"


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


Best = dict[str, dict[str, Choice]]


def combine(parts: Sequence[Best]) -> Best:
    """`loco` over several grids at once, from each grid's own result; the earlier grid wins ties.

    Lets the report show each estimator variant on its own (is its choice of
    hysteresis and threshold stable across held-out categories?) and the
    choice over all variants, from one pass over the grid.
    """
    out: Best = {}
    for part in parts:
        for profile, splits in part.items():
            chosen = out.setdefault(profile, {})
            for held, choice in splits.items():
                if held not in chosen or choice.tuned_raw > chosen[held].tuned_raw + 1e-12:
                    chosen[held] = choice
    return out
