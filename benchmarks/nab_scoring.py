"""NAB scoring, written from the specification in the dataset's SCORING.md.

Windows, the scaled sigmoid, the three profiles, one global threshold chosen
by an exhaustive sweep (ties go to the highest threshold), and normalisation
between the null detector (never fires) and the perfect one. Kept apart from
the runner so the scoring can be checked against the worked numbers alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "FileRows",
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
