"""The alerting scenario suite is labelled consistently and scored by the stated rules.

These check the yardstick, not the detector's quality today: the smoke test
only asks that a scenario runs end to end through the detect stage and comes
back as a report row.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from alert_latency import HEADER, row, run_scenario, seed_list, simulated, true_labels
from scenarios import (
    DAY,
    HOUR,
    RANGES,
    SCENARIOS,
    TUNING_SEED,
    Firing,
    Incident,
    Item,
    Scenario,
    Score,
    World,
    arrival,
    build_suite,
    describe,
    launch_mix,
    model_label,
    outage,
    score,
    world,
)

HELD_OUT = (101, 102, 103, 104)


@pytest.fixture(scope="module", params=(TUNING_SEED, *HELD_OUT))
def seed(request: pytest.FixtureRequest) -> int:
    """The tuning seed and held-out ones: each suite must be labelled as honestly."""
    value: int = request.param
    return value


@pytest.fixture(scope="module")
def suite(seed: int) -> list[Scenario]:
    return build_suite(seed=seed)


def named(suite: list[Scenario], name: str) -> Scenario:
    return next(s for s in suite if s.name == name)


def with_world(suite: list[Scenario], seed: int, name: str) -> tuple[Scenario, World, Incident]:
    """A scenario with one incident, the shape it was drawn with, and the incident."""
    scenario = named(suite, name)
    (incident,) = scenario.incidents
    return scenario, world(seed, name), incident


def toy(*incidents: Incident) -> Scenario:
    return Scenario("toy", "Acme", "", start=0.0, end=DAY, scored_from=HOUR, items=(), incidents=incidents)


def page(created: float, alert_id: str | None = None) -> Firing:
    return Firing(alert_id or f"a{created}", created, created - 300, created)


OUTAGE = Incident("outage", onset=10 * HOUR, due=10 * HOUR + 600, end=12 * HOUR)
CLIMB = Incident("climb", onset=15 * HOUR, due=20 * HOUR, end=23 * HOUR)


def test_every_kind_of_stream_the_issue_names_is_in_the_suite(suite: list[Scenario]) -> None:
    names = {s.name for s in suite}
    assert names == {"daily-cycles", "outage", "launch", "slow-crisis", "backfill", "quiet-brand", "weekend"}
    assert {s.name for s in suite if s.must_alert} == {"outage", "slow-crisis"}


def test_labels_are_consistent_with_the_stream(suite: list[Scenario]) -> None:
    for scenario in suite:
        ids = [i.id for i in scenario.items]
        assert len(ids) == len(set(ids)), scenario.name
        assert all(scenario.start <= i.published < scenario.end for i in scenario.items), scenario.name
        assert scenario.start < scenario.scored_from < scenario.end
        for incident in scenario.incidents:
            assert scenario.scored_from <= incident.onset < incident.due <= incident.end <= scenario.end
            members = [i for i in scenario.items if i.incident == incident.id]
            assert members and all(incident.onset <= i.published <= incident.end for i in members)
            assert Counter(i.label for i in members).most_common(1)[0][0] == "negative"
        tagged = {i.incident for i in scenario.items} - {None}
        assert tagged == {i.id for i in scenario.incidents}, scenario.name


def test_texts_vary_and_carry_enthusiastic_slang(suite: list[Scenario]) -> None:
    items = [i for s in suite for i in s.items]
    assert len({i.text for i in items}) > 0.25 * len(items)
    assert len({i.author for i in items}) > 1000 and len({i.site for i in items}) >= 6
    slang = " ".join(i.text for i in items if i.slang)
    for phrase in ("is sick", "killing it", "stupid good"):
        assert phrase in slang
    assert all(i.label == "positive" for i in items if i.slang)


def test_the_launch_raises_volume_manyfold_without_raising_the_negative_share(
    suite: list[Scenario], seed: int
) -> None:
    launch = named(suite, "launch")
    w = world(seed, "launch")
    go = launch.start + DAY + w.launch_hour * HOUR
    hours = w.launch_hours - 1 / 3

    def span(start: float) -> list[Item]:
        return [i for i in launch.items if start <= i.published < start + hours * HOUR]

    before, during = span(go - DAY + HOUR / 3), span(go + HOUR / 3)  # same hours of the day before
    assert len(during) > 0.8 * w.launch_size * len(before)
    share = [sum(i.label == "negative" for i in s) / len(s) for s in (before, during)]
    assert share[1] <= share[0] + 2 * (share[0] / len(before)) ** 0.5  # within noise of the day before
    # and through the launch it falls or holds: the first full hour against the last
    first = [i for i in launch.items if go + HOUR / 3 <= i.published < go + 4 * HOUR / 3 and not i.slang]
    last = [i for i in launch.items if go + hours * HOUR - HOUR <= i.published < go + hours * HOUR]
    rates = [sum(i.label == "negative" for i in s) / len(s) for s in (first, last)]
    assert rates[1] <= rates[0] + 2 * (rates[0] / len(last)) ** 0.5


def test_the_slow_crisis_reaches_its_multiple_and_is_due_once_it_is_a_crisis(
    suite: list[Scenario], seed: int
) -> None:
    crisis, w, incident = with_world(suite, seed, "slow-crisis")
    top = incident.onset + w.climb_hours * HOUR
    extra = [i.published for i in crisis.items if i.incident == incident.id]
    held = sum(top <= t < top + 2 * HOUR for t in extra) / 120  # complaints a minute while held
    assert 0.8 < held / (w.usual_negatives * (w.climb_multiple - 1)) < 1.2
    before_due = sum(incident.due - HOUR <= t < incident.due for t in extra) / 60
    assert before_due > 2 * w.usual_negatives  # at least three times the usual negatives in all
    assert incident.end == top + 4 * HOUR and incident.due < incident.end


def test_the_outage_peaks_at_its_rate_and_is_due_just_after_the_peak(
    suite: list[Scenario], seed: int
) -> None:
    scenario, w, incident = with_world(suite, seed, "outage")
    peak = incident.onset + w.outage_ramp * 60
    assert incident.due == peak + 360
    at_peak = sum(peak <= i.published < peak + w.outage_hold * 60 for i in scenario.items if i.incident)
    assert 0.8 < at_peak / (w.outage_peak * w.outage_hold) < 1.2


def test_backfill_and_quiet_brand_are_what_they_claim(suite: list[Scenario], seed: int) -> None:
    backfill = named(suite, "backfill")
    late = [i for i in backfill.items if i.delivered is not None]
    assert len(late) > 200 and all(i.delivered is not None and i.delivered - i.published > HOUR for i in late)
    assert len({i.delivered for i in late}) == 1 and sum(i.label == "negative" for i in late) > 15
    quiet = named(suite, "quiet-brand")
    per_day = world(seed, "quiet-brand").quiet_per_day
    assert len(quiet.items) <= 2 * per_day * (quiet.end - quiet.start) / DAY + 4


def test_the_tuning_seed_keeps_the_fixed_shapes_and_other_seeds_draw_within_the_ranges() -> None:
    assert all(world(TUNING_SEED, name) == World() for name in SCENARIOS)
    worlds = [world(seed, name) for seed in range(101, 141) for name in SCENARIOS]
    assert len(set(worlds)) == len(worlds)
    for key, (lo, hi) in RANGES.items():
        values = [
            getattr(w, key) for w in worlds if hasattr(w, key) and not isinstance(getattr(w, key), tuple)
        ]
        assert all(lo <= v <= hi for v in values), key
        assert not values or max(values) - min(values) > (hi - lo) / 2, key  # they do spread
    for w in worlds:
        shares = dict(w.background)
        assert abs(sum(shares.values()) - 1) < 1e-9 and all(v > 0 for v in shares.values())
        assert RANGES["negative"][0] <= shares["negative"] <= RANGES["negative"][1]
        assert RANGES["slang"][0] <= shares["slang"] <= RANGES["slang"][1]
        start, end = w.launch_negative
        assert RANGES["launch_negative"][0] <= start <= min(0.10, shares["negative"]) and end <= start
        launch = [dict(launch_mix(w, at / 10))["launch_neg"] for at in range(11)]
        assert launch == sorted(launch, reverse=True)  # falls or holds, never rises
        assert w.launch_hour >= 8 and w.launch_hour + w.launch_hours + 2 <= 24
        assert w.climb_hour >= 4 and w.climb_hour + w.climb_hours + 4 <= 24


def test_short_variants_cut_each_scenario_to_its_point_with_a_little_history() -> None:
    full, cut = build_suite(101), build_suite(101, history=2 * HOUR)
    for long, short in zip(full, cut, strict=True):
        assert short.end - short.start <= 13 * HOUR and short.scored_from == short.start + HOUR
        assert 0 < len(short.items) < len(long.items) or long.name == "quiet-brand"
        assert all(short.start <= arrival(i) < short.end for i in short.items)
        assert short.incidents == long.incidents
    assert any(i.delivered for i in named(cut, "backfill").items)  # the old posts arrive inside it
    assert sum(i.label == "negative" for i in named(cut, "quiet-brand").items) >= 2


def test_seed_lists_read_ranges_and_lists() -> None:
    assert seed_list("101-103,7") == [101, 102, 103, 7]


def test_a_seed_gives_the_same_suite_and_another_seed_another() -> None:
    assert build_suite(3, ["outage"]) == build_suite(3, ["outage"])
    assert build_suite(3, ["outage"])[0].items != build_suite(4, ["outage"])[0].items
    assert world(101, "outage") == world(101, "outage") != world(102, "outage") != world(101, "launch")


def test_the_simulated_model_mislabels_slang_at_the_share_asked(suite: list[Scenario]) -> None:
    items = [i for s in suite for i in s.items]
    slang = [i for i in items if i.slang]
    other = [i for i in items if not i.slang]
    slang_wrong = sum(model_label(i) == "negative" for i in slang) / len(slang)
    other_wrong = sum(model_label(i) != i.label for i in other) / len(other)
    assert 0.17 < slang_wrong < 0.23
    assert 0.01 < other_wrong < 0.05
    assert 0.44 < sum(model_label(i, slang_flip=0.47) == "negative" for i in slang) / len(slang) < 0.50


def test_one_on_time_page_per_incident_scores_perfectly() -> None:
    result = score(toy(OUTAGE, CLIMB), [page(OUTAGE.onset + 60), page(CLIMB.onset + 3 * HOUR)])
    assert (result.precision, result.recall, result.duplicates) == (1.0, 1.0, 0)
    assert result.onset_latency == [60, 3 * HOUR]


def test_a_second_page_inside_one_incident_is_a_duplicate() -> None:
    result = score(toy(OUTAGE), [page(OUTAGE.onset + 60), page(OUTAGE.onset + HOUR)])
    assert (result.precision, result.recall, result.duplicates) == (1.0, 1.0, 1)


def test_a_late_page_is_a_miss_and_a_page_outside_incidents_a_false_alarm() -> None:
    result = score(toy(OUTAGE), [page(OUTAGE.due + 1), page(OUTAGE.end + 1)])
    assert (result.detected, result.late, result.false_alarms) == (0, 1, 1)
    assert result.recall == 0.0 and result.precision == 0.5


def test_quiet_scenarios_score_pages_as_false_alarms_and_ignore_the_warm_up() -> None:
    assert score(toy(), []).precision is None and score(toy(), []).recall is None
    result = score(toy(), [page(HOUR - 1), page(5 * HOUR)])
    assert (result.warmup, result.false_alarms, result.precision) == (1, 1, 0.0)
    assert "warm-up" in describe(toy(), page(HOUR - 1))
    assert "false alarm" in describe(toy(), page(5 * HOUR))


def test_scores_add_up_over_the_suite() -> None:
    total = Score()
    total.add(score(toy(OUTAGE), [page(OUTAGE.onset + 60)]))
    total.add(score(toy(), [page(5 * HOUR)]))
    assert (total.incidents, total.detected, total.false_alarms, total.precision) == (1, 1, 1, 0.5)


@pytest.mark.parametrize("name", ["slow-crisis", "backfill"])
def test_a_short_held_out_scenario_runs_through_the_detect_stage(name: str) -> None:
    (scenario,) = build_suite(101, [name], history=2 * HOUR)
    firings = run_scenario(scenario, simulated(101, 0.47), delay=30.0)
    assert all(scenario.start <= f.created <= scenario.end + 60 for f in firings)
    assert row(name, "sim", "no", score(scenario, firings)).split()[0] == name


def test_a_short_outage_runs_through_the_detect_stage_into_a_report_row() -> None:
    scenario = outage(seed=7, history=2 * HOUR)
    for labeller in (true_labels, simulated(7)):
        firings = run_scenario(scenario, labeller, delay=30.0)
        assert all(scenario.start <= f.created <= scenario.end + 60 for f in firings)
        assert all(f.window_start < f.window_end <= f.created for f in firings)
        line = row(scenario.name, "true", "yes", score(scenario, firings))
        assert line.split()[0] == "outage" and len(line.split()) == len(HEADER.split()) - 6
