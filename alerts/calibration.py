"""A per-series tail calibration in constant space: a decayed log-binned histogram and a Pareto tail.

`AnomalyEstimator` turns each value into a raw surprise (a short mean of
residual z against its own Gaussian fit). How often a raw surprise of a given
size happens depends on the series: a heavy-tailed one reaches "four sigma"
every day, a smooth one never. `TailHistogram` learns each series' own
distribution of that surprise and answers with the probability of one at
least as large, so the score means the same on every series and one
threshold serves them all.

Why this shape, and not a window of past scores:

* Constant, small state. The estimator's state is persisted per brand after
  every bucket; a trailing window of 2,000 scores would be 2,000 floats per
  series and a sort per step. Here it is `BINS` floats plus two scalars.
* Log-spaced bins over the surprisal (-ln of the Gaussian tail, in nats):
  the region that matters, from ordinary noise (about 0.7 nats) to rare
  surprises (10 to 40 nats), gets bins of equal relative width (about 15 %),
  so quantiles in the tail are as precise as in the bulk.
* Exponential decay (a half-life in steps) instead of a window, so the
  histogram forgets an old regime at a steady rate with no stored history.
  Decay is applied lazily: each new value is added with a growing weight,
  and the whole histogram is rescaled only when that weight gets large.
* Above the `TAIL` quantile the probability is a generalised Pareto fit (the
  peaks-over-threshold view of extreme values), its shape and scale from the
  first two moments of the excess read off the histogram. A new extreme,
  beyond anything in the bins, still ranks above a smaller one instead of
  saturating at "rarer than everything seen". An exponential tail (shape 0)
  was tried first: on Laplace noise it let p < 1e-4 happen several times as
  often as it should, so a heavy-tailed series paged on noise; the fitted
  shape (kept in [0, 0.45]) follows how heavy each series' tail really is.
* Below it the tail is counted, as a conformal p-value ((mass above + 1) /
  (mass + 1)): on a stationary series it is close to uniform, which is what
  makes `fire = 0.9999` mean "once in 10,000 steps" everywhere.
"""

from __future__ import annotations

import bisect
import math
import operator
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

__all__ = ["BINS", "TailHistogram"]

BINS = 96
LOW, HIGH = 1e-3, 1e3  # nats: bin 0 is [0, LOW), bin BINS - 1 is [HIGH, inf), log-spaced between
TAIL = 0.9  # above this quantile the tail is a generalised Pareto fit
SHAPE = 0.45  # the largest tail shape fitted (a Pareto index of about 2)
MIN_SCALE = 0.1  # nats: floor of the tail scale, for flat series whose surprise never varies
RESCALE = 1e12  # the lazy decay's weight is folded back into the counts beyond this

_RATIO: float = (HIGH / LOW) ** (1.0 / (BINS - 2))
EDGES: list[float] = [0.0] + [LOW * _RATIO**i for i in range(BINS - 1)]  # lower edge of every bin
UPPER: list[float] = [*EDGES[1:], HIGH * _RATIO]  # upper edge; the open last bin is treated as one bin wide
MIDS: list[float] = [0.5 * LOW] + [math.sqrt(lo * hi) for lo, hi in zip(EDGES[1:], UPPER[1:], strict=True)]


def _bin(x: float) -> int:
    return max(0, min(BINS - 1, bisect.bisect_right(EDGES, x) - 1))


def _fraction_above(b: int, x: float) -> float:
    """The share of bin b's mass above x, assuming a uniform spread in log x (linear in bin 0)."""
    lo, hi = EDGES[b], UPPER[b]
    if x <= lo:
        return 1.0
    if x >= hi:
        return 0.0
    if b == 0:
        return (hi - x) / hi
    return float(math.log(hi / x) / math.log(hi / lo))


@dataclass
class TailHistogram:
    """Decayed counts of one series' surprisals; `survival` is P(surprisal >= x) under them."""

    counts: list[float] = field(default_factory=lambda: [0.0] * BINS)
    mass: float = 0.0  # sum of counts, in the same lazy scale
    weight: float = 1.0  # what the next observation adds; grows by 1 / (1 - alpha) per step

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TailHistogram:
        """A saved histogram, or a fresh one for a state saved before calibration existed."""
        if not data or len(data.get("counts", [])) != BINS:
            return cls()
        return cls([float(c) for c in data["counts"]], float(data["mass"]), float(data["weight"]))

    def effective(self) -> float:
        """The decayed number of observations (mass in the scale of one new observation)."""
        return self.mass / self.weight

    def update(self, x: float, alpha: float, min_mass: float) -> float:
        """P(X >= x) under the history so far (1 until it holds `min_mass`), then learn x.

        Every value is learnt, extremes included. Learning them capped (as the
        baselines learn clipped residuals) was tried: a long anomaly then kept
        scoring as new all along, and the held-out NAB scores fell by a fifth.
        """
        p = self.survival(x) if self.effective() >= min_mass else 1.0
        self._observe(x, alpha)
        return p

    def survival(self, x: float) -> float:
        """P(X >= x): counted below the `TAIL` quantile, a generalised Pareto fit above it."""
        cum = list(accumulate(self.counts))  # cum[b]: mass in bins 0..b
        total, w = self.mass, self.weight
        u = self._quantile(cum, TAIL * total)
        if x <= u:
            return (self._mass_above(cum, x) + w) / (total + w)
        tail_mass = self._mass_above(cum, u)
        shape, scale = self._tail_fit(cum, u, tail_mass)
        y = (x - u) / scale
        decay = math.exp(-y) if shape < 1e-6 else (1.0 + shape * y) ** (-1.0 / shape)
        return (tail_mass + w) / (total + w) * decay

    def _observe(self, x: float, alpha: float) -> None:
        self.counts[_bin(x)] += self.weight
        self.mass += self.weight
        self.weight /= 1.0 - alpha
        if self.weight > RESCALE:
            self.counts = [c / self.weight for c in self.counts]
            self.mass /= self.weight
            self.weight = 1.0

    def _mass_above(self, cum: list[float], x: float) -> float:
        b = _bin(x)
        return (self.mass - cum[b]) + self.counts[b] * _fraction_above(b, x)

    def _quantile(self, cum: list[float], below: float) -> float:
        """The x with `below` mass under it, interpolated within its bin like `_fraction_above`."""
        b = min(bisect.bisect_left(cum, below), BINS - 1)
        c = self.counts[b]
        share = (below - (cum[b] - c)) / c if c > 0 else 0.0
        lo, hi = EDGES[b], UPPER[b]
        return float(lo + share * (hi - lo) if b == 0 else lo * (hi / lo) ** share)

    def _tail_fit(self, cum: list[float], u: float, tail_mass: float) -> tuple[float, float]:
        """(shape, scale) of a generalised Pareto tail above u, by the method of moments.

        Each bin's mass sits at its log-midpoint. The shape is kept in [0, SHAPE]:
        a bounded tail (below 0) would give new extremes probability 0, and the
        moments stop existing from 0.5 on.
        """
        if tail_mass <= 0:
            return 0.0, MIN_SCALE
        b = _bin(u)
        part = self.counts[b] * _fraction_above(b, u)
        y0 = max(0.5 * (max(u, EDGES[b]) + UPPER[b]) - u, 0.0)
        ys = [m - u for m in MIDS[b + 1 :]]
        cs = self.counts[b + 1 :]
        m1 = (part * y0 + sum(map(operator.mul, cs, ys))) / tail_mass
        m2 = (part * y0 * y0 + sum(c * y * y for c, y in zip(cs, ys, strict=True))) / tail_mass
        var = max(m2 - m1 * m1, 1e-12)
        shape = min(max(0.5 * (1.0 - m1 * m1 / var), 0.0), SHAPE)
        return shape, max(m1 * (1.0 - shape), MIN_SCALE)
