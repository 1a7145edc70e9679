"""On-call is paged for an outage and a slow crisis, once each, and never for good news.

Each story is a short cut of a scenario from the labelled suite
(`benchmarks/scenarios.py`): a few hours of history, then the span the
scenario is about, fed through the product's detect stage with the default
alert rule, 30 s after publication, as the runner calls it every 15 s. The
labels are the true ones, then a simulated model's that read a fifth of the
enthusiastic slang ("is sick", "killing it") as negative. The full suite,
its held-out seeds and its latencies are `benchmarks/alert_latency.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from alert_latency import Labeller, run_scenario, simulated, true_labels
from scenarios import HOUR, SCENARIOS, TUNING_SEED, Scenario, Score, score, short

LABELS: dict[str, Labeller] = {"true labels": true_labels, "model labels": simulated(TUNING_SEED)}


def paged(name: str, labels: str, history: float = 6 * HOUR) -> tuple[Scenario, Score]:
    scenario = short(SCENARIOS[name](TUNING_SEED), history=history)
    return scenario, score(scenario, run_scenario(scenario, LABELS[labels]))


@pytest.mark.parametrize("labels", LABELS)
def test_an_outage_pages_once_within_minutes_and_its_wavering_tail_pages_no_one_again(labels: str) -> None:
    scenario, result = paged("outage", labels)
    (incident,) = scenario.incidents
    assert result.detected == 1 and result.late == 0
    assert result.false_alarms == 0 and result.duplicates == 0
    (latency,) = result.onset_latency
    assert latency <= incident.due - incident.onset
    # Judged as the posts arrive: the page follows the newest post it counted within the
    # delivery delay (30 s) plus a few of the runner's 15-second ticks.
    (evidence,) = result.evidence_latency
    assert evidence <= 30 + 4 * 15


@pytest.mark.parametrize("labels", LABELS)
def test_a_loved_launch_with_ten_times_the_posts_pages_no_one(labels: str) -> None:
    _, result = paged("launch", labels)
    assert result.false_alarms == 0


@pytest.mark.parametrize("labels", LABELS)
def test_a_billing_crisis_that_climbs_for_hours_pages_once_before_it_is_due(labels: str) -> None:
    _, result = paged("slow-crisis", labels, history=12 * HOUR)
    assert result.incidents == 1
    assert result.detected == 1 and result.late == 0
    assert result.false_alarms == 0 and result.duplicates == 0


@pytest.mark.parametrize("name", ["daily-cycles", "backfill", "quiet-brand"])
def test_ordinary_days_old_posts_and_a_quiet_brand_page_no_one(name: str) -> None:
    _, result = paged(name, "model labels")
    assert result.false_alarms == 0 and result.duplicates == 0
