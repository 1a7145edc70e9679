"""One threshold for every kind of series: the estimator's score is a calibrated tail probability.

A Gaussian fit of the surprise reads a heavy-tailed series' ordinary outliers
as one-in-a-million events; calibrated against the series' own history, a
score of 0.9999 means "rarer than once in 10,000 steps here" on a smooth
series and a heavy-tailed one alike.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Callable

import pytest

from alerts.anomaly import AnomalyEstimator, EstimatorParams
from alerts.calibration import BINS, TailHistogram

STEPS, AT, LENGTH, SHIFT = 3000, 2500, 12, 60.0
PAGE = EstimatorParams(fire=0.9999)  # rarer than once in 10,000 steps, on whatever series


def noise(kind: str, rng: random.Random) -> float:
    """Unit-scale noise: Gaussian, or Laplace (heavy-tailed: a 5-sigma step is 200 times likelier)."""
    if kind == "gaussian":
        return rng.gauss(0.0, 1.0)
    return rng.choice((-1.0, 1.0)) * rng.expovariate(1.0)


def series(kind: str, seed: int) -> list[tuple[float, float]]:
    """Five-minute values around 100 with one real anomaly: a shift for an hour at row AT."""
    rng = random.Random(seed)
    return [
        (i * 300.0, 100.0 + 5.0 * noise(kind, rng) + (SHIFT if AT <= i < AT + LENGTH else 0.0))
        for i in range(STEPS)
    ]


def onsets(est: AnomalyEstimator, values: list[tuple[float, float]]) -> list[int]:
    return [i for i, (ts, v) in enumerate(values) if est.update(ts, v).onset]


@pytest.mark.parametrize("kind", ["gaussian", "laplace"])
def test_the_same_threshold_fires_at_the_anomaly_and_about_as_rarely_as_promised_on_noise(kind: str) -> None:
    caught, false_alarms = 0, 0
    for seed in range(1, 9):
        found = onsets(AnomalyEstimator(PAGE), series(kind, seed))
        caught += sum(1 for i in found if AT <= i < AT + LENGTH)
        false_alarms += sum(1 for i in found if not AT <= i < AT + LENGTH)
    assert caught == 8  # every seed, within the hour the anomaly lasts
    # 8 series x ~2,800 scored rows at fire = 1 - 1e-4 allow about two alarms on noise; a Gaussian
    # fit of the Laplace series' surprise would raise dozens.
    assert false_alarms <= 3


def test_a_score_of_0_99_is_as_common_on_a_smooth_series_as_on_a_heavy_tailed_one() -> None:
    for kind in ("gaussian", "laplace"):
        est = AnomalyEstimator(PAGE)
        scores = [est.update(ts, v).score for ts, v in series(kind, 3)[:AT]]
        noise_rows = scores[1000:]  # past warm-up and the calibration's first fill
        share = sum(s >= 0.99 for s in noise_rows) / len(noise_rows)
        assert 0.004 <= share <= 0.025, (kind, share)  # 1 % by construction


def test_a_restart_from_the_saved_state_scores_every_later_row_identically() -> None:
    values = series("laplace", 5)
    whole, first = AnomalyEstimator(PAGE), AnomalyEstimator(PAGE)
    for ts, v in values[:1500]:
        whole.update(ts, v)
        first.update(ts, v)
    saved = json.loads(json.dumps(first.to_dict()))
    assert len(saved["tail"]["counts"]) == BINS  # constant size, however long the series
    restored = AnomalyEstimator(PAGE, saved)
    later = [(restored.update(ts, v), whole.update(ts, v)) for ts, v in values[1500:]]
    assert all(a == b for a, b in later)
    assert any(a.onset for a, _ in later)  # the anomaly at row AT is among them


def test_a_state_saved_before_calibration_existed_loads_and_relearns_its_tail() -> None:
    values = series("gaussian", 6)
    original = AnomalyEstimator(PAGE)
    for ts, v in values[:1500]:
        original.update(ts, v)
    old = original.to_dict()
    del old["tail"]  # what the previous version wrote
    loaded = AnomalyEstimator(PAGE, json.loads(json.dumps(old)))
    assert loaded.forecast(values[1500][0]) == original.forecast(values[1500][0])
    assert loaded.warmed
    steps = [loaded.update(ts, v) for ts, v in values[1500:]]
    warmup = EstimatorParams().warmup
    assert all(s.score == 0.0 for s in steps[:warmup])  # no tail to judge against yet: never fires
    assert [i + 1500 for i, s in enumerate(steps) if s.onset] == [AT]


# The histogram alone.


def _alpha(halflife: float) -> float:
    return float(1.0 - 0.5 ** (1.0 / halflife))


@pytest.mark.parametrize("draw", ["exponential", "lognormal", "squared gaussian"])
def test_stationary_surprise_calibrates_to_uniform_scores(draw: str) -> None:
    rng = random.Random(9)
    draws: dict[str, Callable[[], float]] = {
        "exponential": lambda: rng.expovariate(1.0),
        "lognormal": lambda: math.exp(rng.gauss(0.0, 2.0)),
        "squared gaussian": lambda: rng.gauss(0.0, 1.0) ** 2 / 2,
    }
    pick = draws[draw]
    tail = TailHistogram()
    scores = [1.0 - tail.update(pick(), _alpha(700.0), 100.0) for _ in range(12000)]
    late = sorted(scores[2000:])
    n = len(late)
    assert max(abs(s - (i + 0.5) / n) for i, s in enumerate(late)) < 0.03  # Kolmogorov-Smirnov
    assert sum(s >= 0.99 for s in late) / n == pytest.approx(0.01, abs=0.004)


def test_the_tail_probability_falls_with_the_surprise_and_new_extremes_still_rank() -> None:
    rng = random.Random(8)
    tail = TailHistogram()
    for _ in range(3000):
        tail.update(rng.expovariate(0.5), _alpha(700.0), 100.0)
    grid = [k / 10 for k in range(0, 2000)]  # up to 200 nats, far past every value learnt
    probabilities = [tail.survival(x) for x in grid]
    assert all(0.0 < p <= 1.0 for p in probabilities)
    assert all(b <= a for a, b in itertools.pairwise(probabilities))
    assert tail.survival(60.0) < tail.survival(40.0) < 1e-4  # new extremes still rank


def test_the_lazy_decay_keeps_the_memory_it_promises_across_rescaling() -> None:
    tail = TailHistogram()
    for i in range(20000):  # the weight passes its rescaling point several times
        tail.update(float(i % 7), 0.01, 10.0)
    assert tail.effective() == pytest.approx(0.99 / 0.01, rel=1e-9)  # (1 - alpha) / alpha, as unscaled
    assert tail.weight < 1e12


def test_a_missing_or_foreign_histogram_starts_fresh() -> None:
    assert TailHistogram.from_dict(None) == TailHistogram()
    assert TailHistogram.from_dict({"counts": [1.0] * 3, "mass": 3.0, "weight": 1.0}) == TailHistogram()
