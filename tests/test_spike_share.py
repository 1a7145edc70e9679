"""Negativity judged against volume: a launch is not a crisis, a climb is, and an outage pages at once.

A brand whose mentions are one in ten negative, ten a minute, is watched by
the default alert rule.
"""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import pytest
from alertstory import Story

from alerts.share import (
    beta_binomial_z,
    climb_evidence,
    climbed_share,
    learn_share,
    scan_z,
    usual_share,
)
from alerts.state import ShareBaseline
from listener.config import AlertRule

RULE = AlertRule()


def usual_hours(story: Story, hours: int) -> None:
    """Ten mentions a minute, one of them negative."""
    for _ in range(hours * 60):
        story.minute(negatives=1, neutral=9)


def test_a_launch_with_ten_times_the_posts_and_complaints_at_the_usual_share_pages_no_one(
    tmp_path: Path,
) -> None:
    story = Story(tmp_path, RULE)
    usual_hours(story, 3)
    for _ in range(120):  # a hundred posts a minute, eight of them negative: more complaints, lower share
        story.minute(negatives=8, neutral=60, positive=32)
    assert story.alerts == []


def test_an_outage_pages_in_its_first_minutes_as_the_posts_arrive(tmp_path: Path) -> None:
    story = Story(tmp_path, RULE)
    usual_hours(story, 3)
    start = story.clock.now
    story.minute(negatives=4, neutral=9)
    story.minute(negatives=12, neutral=9)
    [alert] = story.firing()
    # The second minute's posts paged before that minute's bucket closed.
    assert (alert.created - start).total_seconds() <= 120
    assert alert.trigger == "spike" and alert.usual_share == pytest.approx(0.1, abs=0.03)


def test_a_share_that_climbs_for_hours_pages_once_as_a_climb_and_ends_when_it_is_back(
    tmp_path: Path,
) -> None:
    story = Story(tmp_path, RULE)
    usual_hours(story, 12)  # half a day, so the usual share is the brand's own and not the prior
    for minute in range(4 * 60):  # complaints climb from 1 to 5 a minute over four hours
        negatives = 1 + round(4 * minute / 240)
        story.minute(negatives=negatives, neutral=10 - min(negatives, 5))
    [alert] = story.firing()
    assert alert.trigger == "climb"
    assert alert.usual_share is not None
    assert alert.negative_share >= climbed_share(alert.usual_share, RULE.share_ratio)
    assert alert.window_end - alert.window_start > timedelta(seconds=3 * RULE.window), "a climb spans long"
    for _ in range(3 * 60):
        story.minute(negatives=1, neutral=9)
    [ended] = story.resolved()
    assert ended.id == alert.id
    assert len(story.firing()) == 1


def test_an_outage_that_outlasts_the_baseline_with_the_share_still_raised_stays_one_alert(
    tmp_path: Path,
) -> None:
    story = Story(tmp_path, RULE)
    usual_hours(story, 12)
    for _ in range(90):  # an hour and a half of eight complaints a minute among the usual ten
        story.minute(negatives=9, neutral=9)
    [alert] = story.firing()
    for _ in range(3 * 60):
        story.minute(negatives=1, neutral=9)
    assert story.firing() == [alert], "the count became the new level, but the share never did"
    [ended] = story.resolved()
    assert ended.id == alert.id and ended.trigger == "climb"


def test_a_new_brand_whose_usual_share_is_above_the_prior_is_not_a_climb_on_its_second_day(
    tmp_path: Path,
) -> None:
    # A mention a minute, three in ten negative, from the first minute: nothing changes, so
    # nothing pages, although the rule starts out expecting 15 % until it has learnt 30 %.
    story = Story(tmp_path, RULE)
    for minute in range(30 * 60):
        negatives = 1 if minute % 10 < 3 else 0
        story.minute(negatives=negatives, neutral=1 - negatives)
    assert story.alerts == []


def test_a_brand_with_a_mention_every_other_minute_learns_its_own_share_in_half_a_day() -> None:
    base = ShareBaseline()
    for minute in range(720):  # one mention every other minute, one in four of them negative
        mentions = minute % 2
        negatives = 1 if minute % 8 == 1 else 0
        learn_share(base, negatives, mentions, halflife_buckets=720, gap=1)
    assert base.mentions > 100, "each post counts in full, so its history outweighs the prior"
    assert usual_share(base, prior_share=0.15, prior_mentions=100) > 0.21


def test_the_beta_binomial_tail_matches_a_direct_sum() -> None:
    n, k, p, conc = 30, 12, 0.1, 50.0
    a, b = p * conc, (1 - p) * conc

    def log_pmf(j: int) -> float:
        def log_beta(x: float, y: float) -> float:
            return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)

        choose = math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1)
        return choose + log_beta(j + a, n - j + b) - log_beta(a, b)

    tail = sum(math.exp(log_pmf(j)) for j in range(k, n + 1))
    z = beta_binomial_z(k, n, p, conc)
    assert 0.5 * math.erfc(z / math.sqrt(2)) == pytest.approx(tail, rel=1e-6)


def test_overdispersion_makes_a_big_window_less_surprising_than_coin_flips() -> None:
    # 30 % negative among 400 mentions, usually 20 %: far less surprising than a binomial says.
    binomial_z = (120 - 80) / math.sqrt(400 * 0.2 * 0.8)
    assert beta_binomial_z(120, 400, 0.2, 50.0) < binomial_z / 2


def test_a_short_span_needs_a_rarer_count_than_a_whole_window() -> None:
    assert scan_z(4.0, 1.0) == 4.0
    assert scan_z(4.0, 0.2) > scan_z(4.0, 0.4) > 4.0


def test_climb_evidence_drains_in_ordinary_buckets_and_gathers_when_the_share_climbs() -> None:
    assert climbed_share(0.1, 2.5) == pytest.approx(0.2174, abs=1e-3)
    assert climb_evidence(1, 10, 0.1, 2.5, clip=2.0) < 0
    assert climb_evidence(4, 10, 0.1, 2.5, clip=2.0) > 0
    assert climb_evidence(40, 40, 0.1, 2.5, clip=2.0) == 2.0, "one busy bucket cannot make a climb alone"


def test_the_usual_share_is_learnt_by_time_and_not_from_far_busier_buckets() -> None:
    base = ShareBaseline()
    for _ in range(600):
        learn_share(base, 1, 10, halflife_buckets=720, gap=1)
    before = base.negatives / base.mentions
    for _ in range(120):  # a launch: ten times the volume at a third of the share
        learn_share(base, 3, 100, halflife_buckets=720, gap=1)
    assert base.negatives / base.mentions == pytest.approx(before, abs=0.005)
