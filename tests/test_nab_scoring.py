"""The NAB scorer reproduces the worked numbers of the dataset's SCORING.md."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from nab_scoring import FileRows, Profile, normalise, probation, sweep

STANDARD = Profile("standard", 1.0, 0.11, 1.0)
LOW_FP = Profile("reward_low_FP_rate", 1.0, 0.22, 1.0)
LOW_FN = Profile("reward_low_FN_rate", 1.0, 0.11, 2.0)


def toy(detections: list[int]) -> FileRows:
    scores = [0.0] * 1000
    for row in detections:
        scores[row] = 1.0
    return FileRows("toy", scores, [(500, 599)])


def test_the_worked_toy_file_scores_as_the_specification_says() -> None:
    rows = toy([200, 525, 560, 610, 900])
    assert sweep([rows], STANDARD).raw == pytest.approx(0.71720, abs=1e-5)
    assert sweep([rows], LOW_FP).raw == pytest.approx(0.46740, abs=1e-5)
    assert sweep([rows], LOW_FN).raw == pytest.approx(0.71720, abs=1e-5)


def test_a_detector_that_only_finds_nothing_is_the_null_baseline() -> None:
    result = sweep([toy([200, 900])], STANDARD)
    assert result.threshold == 1.1  # "never fire" beats two false alarms
    assert normalise(result.raw, 1, STANDARD) == 0.0


def test_first_row_is_perfect_and_the_last_row_barely_beats_a_miss() -> None:
    assert normalise(sweep([toy([500])], STANDARD).raw, 1, STANDARD) == pytest.approx(100.0)
    last_row_worth = (2 / (1 + math.exp(-5 / 100)) - 1) / math.tanh(2.5)  # y = -1/W, W = 100
    last = normalise(sweep([toy([599])], STANDARD).raw, 1, STANDARD)
    assert last == pytest.approx(100 * (1 + last_row_worth) / 2)
    assert 50.0 < last < 52.0


def test_the_probationary_period_is_capped_at_750_rows() -> None:
    assert probation(1000) == 150
    assert probation(4032) == 604
    assert probation(15902) == 750
