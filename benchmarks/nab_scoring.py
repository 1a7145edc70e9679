"""NAB scoring, written from the specification in the dataset's SCORING.md.

Windows, the scaled sigmoid, the three profiles, one global threshold chosen
by an exhaustive sweep (ties go to the highest threshold), and normalisation
between the null detector (never fires) and the perfect one. Kept apart from
the runner so the scoring can be checked against the worked numbers alone.

`sweep` is the reference, written as the specification reads. `Curve` gives
the same answer with arrays, and can score any subset of categories at any
threshold without re-sorting: the leave-one-category-out report sweeps
hundreds of parameter sets, which the reference is too slow for.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Curve",
    "FileRows",
    "Layout",
    "Profile",
    "Sweep",
    "load_profiles",
    "normalise",
    "probation",
    "row_weights",
    "sweep",
]

TP_SCALE = math.tanh(2.5)  # g(-1) = 2σ(5) - 1: the first window row is worth exactly tpW


@dataclass(frozen=True)
class Profile:
    name: str
    tp: float
    fp: float
    fn: float


def load_profiles(path: Path) -> list[Profile]:
    data = json.loads(path.read_text())
    return [
        Profile(name, m["CostMatrix"]["tpWeight"], m["CostMatrix"]["fpWeight"], m["CostMatrix"]["fnWeight"])
        for name, m in data.items()
    ]


def probation(rows: int) -> int:
    """min(floor(0.15 N), 750): the rows NAB neither rewards nor penalises."""
    return min(math.floor(0.15 * rows), 750)


def _g(y: float) -> float:
    if y > 3:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


@dataclass
class FileRows:
    """One scored file: its anomaly scores and its windows as inclusive row-index pairs."""

    name: str
    scores: Sequence[float]
    windows: Sequence[tuple[int, int]]
    category: str = ""
    window_of: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.window_of = [-1] * len(self.scores)
        for k, (s, e) in enumerate(self.windows):
            for i in range(s, e + 1):
                self.window_of[i] = k


def row_weights(rows: FileRows, profile: Profile) -> list[float]:
    """A(i) for every row i >= P; rows in the probationary period get NaN (never counted)."""
    n = len(rows.scores)
    p = probation(n)
    out = [math.nan] * n
    last_end: tuple[int, int] | None = None
    for i in range(p, n):
        k = rows.window_of[i]
        if k >= 0:
            s, e = rows.windows[k]
            out[i] = profile.tp * _g(-(e - i + 1) / (e - s + 1)) / TP_SCALE
            last_end = (s, e)
        elif last_end is None:
            out[i] = -profile.fp
        else:
            s, e = last_end
            out[i] = profile.fp * _g((i - e) / (e - s))
    return out


@dataclass(frozen=True)
class Sweep:
    threshold: float
    raw: float
    per_file: dict[str, float]


def sweep(files: Sequence[FileRows], profile: Profile) -> Sweep:
    """The threshold that maximises the summed raw score, found over every distinct score."""
    events: list[tuple[float, int, int, float]] = []  # (score, file, window or -1, A)
    windows: list[int] = []
    for f, rows in enumerate(files):
        weights = row_weights(rows, profile)
        windows.append(sum(1 for s, e in rows.windows if e >= probation(len(rows.scores))))
        for i, a in enumerate(weights):
            if not math.isnan(a):
                events.append((rows.scores[i], f, rows.window_of[i], a))
    events.sort(key=lambda ev: -ev[0])
    best: dict[tuple[int, int], float] = {}
    outside = [0.0] * len(files)
    total = -profile.fn * sum(windows)
    best_total, best_threshold, best_state = total, 1.1, (dict(best), list(outside))
    i = 0
    while i < len(events):
        score = events[i][0]
        while i < len(events) and events[i][0] == score:
            _, f, k, a = events[i]
            if k < 0:
                outside[f] += a
                total += a
            else:
                old = best.get((f, k), -profile.fn)
                if a > old:
                    best[(f, k)] = a
                    total += a - old
            i += 1
        if total > best_total + 1e-12:
            best_total, best_threshold, best_state = total, score, (dict(best), list(outside))
    per_file = _per_file(files, profile, windows, *best_state)
    return Sweep(best_threshold, best_total, per_file)


def _per_file(
    files: Sequence[FileRows],
    profile: Profile,
    windows: Sequence[int],
    best: Mapping[tuple[int, int], float],
    outside: Sequence[float],
) -> dict[str, float]:
    out: dict[str, float] = {}
    for f, rows in enumerate(files):
        hits = [v for (ff, _), v in best.items() if ff == f]
        misses = windows[f] - len(hits)
        out[rows.name] = sum(hits) - profile.fn * misses + outside[f]
    return out


def normalise(raw: float, windows: int, profile: Profile) -> float:
    """100 for the perfect detector (tpW per window), 0 for the null one (-fnW per window)."""
    null, perfect = -profile.fn * windows, profile.tp * windows
    if perfect == null:
        return 0.0
    return 100.0 * (raw - null) / (perfect - null)


Floats = NDArray[np.float64]


@dataclass(frozen=True)
class Layout:
    """What scoring needs of one file apart from its scores: which rows count, and for how much."""

    name: str
    category: str
    weights: Floats  # A(i), NaN in the probationary period
    outside: NDArray[np.intp]  # scored rows outside every window
    windows: tuple[NDArray[np.intp], ...]  # scored rows of each window that ends after probation

    @classmethod
    def of(cls, rows: FileRows, profile: Profile) -> Layout:
        weights = np.array(row_weights(rows, profile), dtype=np.float64)
        window_of = np.array(rows.window_of, dtype=np.intp)
        scored = ~np.isnan(weights)
        inside = [np.nonzero(scored & (window_of == k))[0] for k in range(len(rows.windows))]
        return cls(
            rows.name,
            rows.category,
            weights,
            np.nonzero(scored & (window_of < 0))[0],
            tuple(idx for idx in inside if len(idx)),
        )

    def events(self, scores: Floats, fn: float) -> tuple[Floats, Floats]:
        """(score, gain) pairs: lowering the threshold past a score adds its gain to the raw total.

        A window's value is the weight of its earliest detected row, so only rows that beat
        every earlier score in the window change it. As the threshold falls the highest (and
        latest) such record is met first; each earlier one then gains the difference.
        """
        parts_s, parts_g = [scores[self.outside]], [self.weights[self.outside]]
        for idx in self.windows:
            s = scores[idx]
            before = np.concatenate(([-np.inf], np.maximum.accumulate(s)[:-1]))
            record = s > before
            worth = self.weights[idx][record][::-1]  # in the order a falling threshold meets them
            parts_s.append(s[record][::-1])
            parts_g.append(np.diff(np.concatenate(([-fn], worth))))
        return np.concatenate(parts_s), np.concatenate(parts_g)


class Curve:
    """Raw score against threshold for a corpus split into groups (NAB categories).

    `best(include)` is `sweep` restricted to the included groups; `at` scores
    the included groups at a fixed threshold, as NAB scores a tuned detector.
    """

    def __init__(self, parts: Sequence[tuple[Floats, Floats, int]], bases: Sequence[float]) -> None:
        scores = np.concatenate([p[0] for p in parts])
        gains = np.concatenate([p[1] for p in parts])
        groups = np.concatenate([np.full(len(p[0]), p[2], dtype=np.intp) for p in parts])
        order = np.argsort(-scores, kind="stable")
        self.scores, self.gains, self.groups = scores[order], gains[order], groups[order]
        self.bases = np.asarray(bases, dtype=np.float64)
        self.ends = np.nonzero(np.append(self.scores[1:] != self.scores[:-1], True))[0]

    def _totals(self, include: Sequence[int]) -> tuple[float, Floats]:
        mask = np.isin(self.groups, np.asarray(include, dtype=np.intp))
        base = float(self.bases[list(include)].sum())
        return base, base + np.cumsum(np.where(mask, self.gains, 0.0))

    def best(self, include: Sequence[int]) -> tuple[float, float]:
        """(threshold, raw): the highest threshold reaching the best total; 1.1 fires never."""
        base, totals = self._totals(include)
        at_ends = totals[self.ends]
        if not len(at_ends) or at_ends.max() <= base + 1e-12:
            return 1.1, base
        first = int(np.argmax(at_ends >= at_ends.max() - 1e-12))
        return float(self.scores[self.ends[first]]), float(at_ends[first])

    def at(self, threshold: float, include: Sequence[int]) -> float:
        base, totals = self._totals(include)
        fired = int(np.searchsorted(-self.scores, -threshold, side="right"))
        return base if fired == 0 else float(totals[fired - 1])
