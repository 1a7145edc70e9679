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

from alert_latency import HEADER, row, run_scenario, simulated, true_labels
from scenarios import (
    DAY,
    HOUR,
    Firing,
    Incident,
    Item,
    Scenario,
    Score,
    build_suite,
    describe,
    model_label,
    outage,
    score,
)


@pytest.fixture(scope="module")
def suite() -> list[Scenario]:
    return build_suite(seed=7)


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


def test_the_launch_raises_volume_tenfold_without_raising_the_negative_share(suite: list[Scenario]) -> None:
    launch = next(s for s in suite if s.name == "launch")
    go = launch.start + DAY + 10 * HOUR

    def span(start: float, hours: float) -> list[Item]:
        return [i for i in launch.items if start <= i.published < start + hours * HOUR]

    before, during = span(go - DAY + HOUR, 4), span(go + HOUR, 4)  # same hours of the day before
    assert len(during) > 8 * len(before)
    share = [sum(i.label == "negative" for i in s) / len(s) for s in (before, during)]
    assert share[1] <= share[0]


def test_backfill_and_quiet_brand_are_what_they_claim(suite: list[Scenario]) -> None:
    backfill = next(s for s in suite if s.name == "backfill")
    late = [i for i in backfill.items if i.delivered is not None]
    assert len(late) > 500 and all(i.delivered is not None and i.delivered - i.published > HOUR for i in late)
    quiet = next(s for s in suite if s.name == "quiet-brand")
    assert len(quiet.items) <= 12 * (quiet.end - quiet.start) / DAY


def test_a_seed_gives_the_same_suite_and_another_seed_another() -> None:
    assert build_suite(3, ["outage"]) == build_suite(3, ["outage"])
    assert build_suite(3, ["outage"])[0].items != build_suite(4, ["outage"])[0].items


def test_the_simulated_model_mislabels_slang_about_a_fifth_of_the_time(suite: list[Scenario]) -> None:
    items = [i for s in suite for i in s.items]
    slang = [i for i in items if i.slang]
    other = [i for i in items if not i.slang]
    slang_wrong = sum(model_label(i) == "negative" for i in slang) / len(slang)
    other_wrong = sum(model_label(i) != i.label for i in other) / len(other)
    assert 0.17 < slang_wrong < 0.23
    assert 0.01 < other_wrong < 0.05


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


def test_a_short_outage_runs_through_the_detect_stage_into_a_report_row() -> None:
    scenario = outage(seed=7, history=2 * HOUR)
    for labeller in (true_labels, simulated(7)):
        firings = run_scenario(scenario, labeller, delay=30.0)
        assert all(scenario.start <= f.created <= scenario.end + 60 for f in firings)
        assert all(f.window_start < f.window_end <= f.created for f in firings)
        line = row(scenario.name, "true", "yes", score(scenario, firings))
        assert line.split()[0] == "outage" and len(line.split()) == len(HEADER.split()) - 6
