"""The streaming estimator: rhythm is normal, a burst is news once, and a restart forgets nothing."""

from __future__ import annotations

import json
import math
import random

import pytest

from alerts.anomaly import AnomalyEstimator, EstimatorParams, negbin_z, poisson_z

HOUR = 3600.0


def daily(hours: int, seed: int = 7) -> list[tuple[float, float]]:
    """Five-minute counts with a strong daily rhythm (busy afternoons), Poisson noise."""
    rng = random.Random(seed)
    out = []
    for i in range(hours * 12):
        ts = i * 300.0
        mean = 20 + 60 * max(0.0, math.sin(2 * math.pi * (ts % 86400) / 86400))
        # Poisson by inversion keeps this dependency-free.
        k, p, u = 0, math.exp(-mean), rng.random()
        cdf = p
        while u > cdf:
            k += 1
            p *= mean / k
            cdf += p
        out.append((ts, float(k)))
    return out


def run(est: AnomalyEstimator, series: list[tuple[float, float]]) -> list[int]:
    return [i for i, (ts, v) in enumerate(series) if est.update(ts, v).onset]


def test_a_daily_rhythm_is_learnt_and_a_burst_opens_exactly_one_anomaly() -> None:
    series = daily(24 * 10)
    # fire = 1 - 1e-4: rarer than once in 10,000 steps on this series, a paging threshold.
    est = AnomalyEstimator(EstimatorParams(counts=True, direction="up", fire=0.9999))
    late_onsets = [i for i in run(est, series) if i > 12 * 24 * 4]
    assert late_onsets == []  # after four days, afternoons are expected
    burst_at = series[-1][0] + 300
    burst = [(burst_at + 300 * j, 400.0) for j in range(12)]
    assert len(run(est, burst)) == 1


def test_small_counts_use_an_exact_poisson_tail() -> None:
    assert poisson_z(6, 1.0) > 3.0  # P(X >= 6 | 1) is about 6e-4
    assert poisson_z(60, 40.0) < 3.5
    assert poisson_z(2, 1.0) < 1.5


def test_an_expectation_resting_on_a_few_negatives_is_trusted_only_that_far() -> None:
    # Five complaints against "0.2 expected" from an hour that held two: a rough guess, not 4.6 sigma.
    assert poisson_z(5, 0.2) > 4.5
    assert negbin_z(5, 0.2, shape=2.6) < 4.2
    # A long, busy baseline is as good as knowing the rate.
    assert negbin_z(5, 0.2, shape=1e7) == pytest.approx(poisson_z(5, 0.2), abs=1e-3)


def test_the_negative_binomial_tail_matches_a_direct_sum() -> None:
    k, mean, shape = 7, 0.7, 9.0
    q = mean / (shape + mean)

    def pmf(j: int) -> float:
        log = math.lgamma(j + shape) - math.lgamma(shape) - math.lgamma(j + 1)
        return math.exp(log + shape * math.log1p(-q) + j * math.log(q))

    tail = sum(pmf(j) for j in range(k, 200))
    z = negbin_z(k, mean, shape)
    assert 0.5 * math.erfc(z / math.sqrt(2)) == pytest.approx(tail, rel=1e-4)


def test_a_restored_estimator_continues_exactly_where_it_stopped() -> None:
    series = daily(24 * 3)
    whole = AnomalyEstimator(EstimatorParams(counts=True))
    first = AnomalyEstimator(EstimatorParams(counts=True))
    half = len(series) // 2
    for ts, v in series[:half]:
        whole.update(ts, v)
        first.update(ts, v)
    restored = AnomalyEstimator(EstimatorParams(counts=True), json.loads(json.dumps(first.to_dict())))
    for ts, v in series[half:]:
        assert restored.update(ts, v) == whole.update(ts, v)


def test_a_drop_is_news_only_when_drops_are_asked_for() -> None:
    series = [(i * 300.0, 100.0 + (i % 7)) for i in range(600)]
    drop = [(series[-1][0] + 300 * (j + 1), 0.0) for j in range(6)]
    for direction, fires in (("up", False), ("both", True)):
        est = AnomalyEstimator(EstimatorParams(direction=direction))  # type: ignore[arg-type]
        run(est, series)
        assert bool(run(est, drop)) is fires
