"""The NAB scorer reproduces the worked numbers of the dataset's SCORING.md, and the held-out report
never tunes on what it scores."""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from nab import stream
from nab_loco import Choice, Setting, combine, curve_for, hold, loco, loco_splits
from nab_scoring import FileRows, Layout, Profile, normalise, probation, sweep

from alerts.anomaly import EstimatorParams

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


# The fast curve and the leave-one-category-out report (benchmarks/nab_loco.py).


def _random_files(seed: int) -> list[FileRows]:
    rng = random.Random(seed)
    files = []
    for f in range(6):
        n = rng.randint(300, 900)
        scores = [round(rng.random(), 2) for _ in range(n)]  # rounding makes ties, as real scores have
        start = rng.randint(probation(n), n - 60)
        windows = [(start, start + 40)]
        scores[start + rng.randint(0, 30)] = 1.0  # a detection to find, early or late in the window
        if f % 3 == 0:
            windows.insert(0, (10, 50))  # a window inside the probationary period is never counted
        files.append(FileRows(f"f{f}", scores, windows, f"cat{f % 3}"))
    return files


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("profile", [STANDARD, LOW_FP, LOW_FN])
def test_the_array_curve_agrees_with_the_reference_sweep(seed: int, profile: Profile) -> None:
    files = _random_files(seed)
    cats = sorted({f.category for f in files})
    curve = curve_for([Layout.of(f, profile) for f in files], [f.scores for f in files], profile, cats)
    reference = sweep(files, profile)
    threshold, raw = curve.best(range(len(cats)))
    assert (threshold, raw) == pytest.approx((reference.threshold, reference.raw), abs=1e-9)
    assert curve.at(threshold, range(len(cats))) == pytest.approx(reference.raw, abs=1e-9)
    some = [f for f in files if f.category != "cat1"]
    assert curve.best([0, 2])[1] == pytest.approx(sweep(some, profile).raw, abs=1e-9)


def test_every_category_is_held_out_once_and_never_tuned_on() -> None:
    files = _random_files(4)
    splits = loco_splits([f.category for f in files])
    assert sorted(held for held, _ in splits) == ["cat0", "cat1", "cat2"]
    for held, tune in splits:
        held_files = {f.name for f in files if f.category == held}
        tune_files = {f.name for f in files if f.category in tune}
        assert held_files and not held_files & tune_files
        assert held_files | tune_files == {f.name for f in files}


def _choose(files: list[FileRows], variants: list[list[list[float]]]) -> dict[str, Choice]:
    layouts = {STANDARD.name: [Layout.of(f, STANDARD) for f in files]}
    settings = [Setting(f"s{k}", 0.9, 0.5, 10) for k in range(len(variants))]
    return loco(layouts, list(zip(settings, variants, strict=True)), [STANDARD])[STANDARD.name]


def test_a_held_out_category_is_scored_at_the_best_choice_made_without_it() -> None:
    files = _random_files(5)
    variants = [[list(f.scores) for f in files], [[1.0 - s for s in f.scores] for f in files]]
    best = _choose(files, variants)
    for held in ("cat0", "cat1", "cat2"):
        choice = best[held]
        assert choice.setting is not None and choice.scored_raw is not None
        refs = [
            sweep(
                [FileRows(f.name, s, f.windows) for f, s in zip(files, v, strict=True) if f.category != held],
                STANDARD,
            )
            for v in variants
        ]
        k = int(choice.setting.estimator[1:])
        assert choice.tuned_raw == pytest.approx(max(r.raw for r in refs), abs=1e-9)
        assert choice.threshold == refs[k].threshold
    in_sample = [
        sweep([FileRows(f.name, s, f.windows) for f, s in zip(files, v, strict=True)], STANDARD)
        for v in variants
    ]
    assert best["all"].tuned_raw == pytest.approx(max(r.raw for r in in_sample), abs=1e-9)


@pytest.mark.parametrize("held", ["cat0", "cat1", "cat2"])
def test_the_held_out_scores_cannot_move_their_own_choice(held: str) -> None:
    files = _random_files(6)
    variants = [[list(f.scores) for f in files], [[1.0 - s for s in f.scores] for f in files]]
    before = _choose(files, variants)[held]
    rng = random.Random(11)
    for v in variants:  # rewrite every held-out score, in both settings
        for f, scores in zip(files, v, strict=True):
            if f.category == held:
                scores[:] = [rng.random() for _ in scores]
    after = _choose(files, variants)[held]
    assert (after.setting, after.threshold, after.tuned_raw) == (
        before.setting,
        before.threshold,
        before.tuned_raw,
    )
    assert after.scored_raw != before.scored_raw  # ...while the held-out score itself does change


def test_replayed_hysteresis_matches_the_estimator_alerting_once_per_anomaly() -> None:
    rng = random.Random(7)
    # The later burst is the longer one, and `fire` is 0.999: the calibration learns that this
    # series bursts, so on a 1,000-row series a second burst no longer reads as a 1e-4 event.
    values = [10 + rng.gauss(0, 1) + (25 if 400 <= i < 405 or 700 <= i < 720 else 0) for i in range(1000)]
    stamps = [f"2024-01-{1 + i // 288:02d} {i % 288 // 12:02d}:{i % 12 * 5:02d}:00" for i in range(1000)]
    params = EstimatorParams(hold=30, fire=0.999)
    emitted, likelihood = stream(stamps, values, params)
    assert emitted == hold(likelihood, params.fire, params.resolve, params.hold)
    assert sum(1 for s in emitted if s >= params.fire) >= 2  # both bursts alert, each once


def test_choosing_per_variant_then_combining_is_choosing_over_the_whole_grid() -> None:
    files = _random_files(12)
    rng = random.Random(13)
    variants = [[list(f.scores) for f in files]]
    variants += [
        [[min(1.0, max(0.0, s + rng.gauss(0, 0.2))) for s in f.scores] for f in files] for _ in range(3)
    ]
    variants.append(variants[0])  # an exact tie: the earlier variant must keep it
    layouts = {STANDARD.name: [Layout.of(f, STANDARD) for f in files]}
    settings = [Setting(f"s{k}", 0.9, 0.5, 10) for k in range(len(variants))]
    whole = loco(layouts, list(zip(settings, variants, strict=True)), [STANDARD])
    parts = [loco(layouts, [(s, v)], [STANDARD]) for s, v in zip(settings, variants, strict=True)]
    combined = combine(parts)
    for held, choice in whole[STANDARD.name].items():
        other = combined[STANDARD.name][held]
        assert (other.setting, other.threshold, other.tuned_raw) == (
            choice.setting,
            choice.threshold,
            choice.tuned_raw,
        )
    assert all(c.setting != settings[-1] for c in combined[STANDARD.name].values())  # ties: earlier wins
