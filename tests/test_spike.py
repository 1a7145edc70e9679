"""Spike on/off stories: quiet, burst, persisting, calming down, backfill, restart."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from alertstory import RULE, T0, Clock, Story, scored

from alerts.spike import DetectorSettings, SpikeDetector
from alerts.state import BrandState
from listener.records import SentimentLabel


def burst(story: Story, minutes: int, negatives: int = 4) -> None:
    for _ in range(minutes):
        story.minute(negatives=negatives)


def test_a_quiet_hour_raises_no_alert(tmp_path: Path) -> None:
    story = Story(tmp_path)
    story.quiet_hour()
    assert story.alerts == []
    assert 0.5 < story.newest_window().expected < 1.5


def test_a_burst_after_a_quiet_baseline_fires_exactly_once(tmp_path: Path) -> None:
    story = Story(tmp_path)
    story.quiet_hour()
    burst(story, 5)
    [alert] = story.firing()
    assert alert.brand == "Acme"
    assert alert.channel == "#acme-alerts"
    assert alert.observed >= RULE.min_count
    assert alert.observed >= RULE.min_ratio * alert.expected
    assert alert.total > alert.observed
    assert 0 < alert.negative_share < 1
    # Judged as the posts arrive: the span that fired is at most a window, and ends at the newest post.
    assert timedelta(0) < alert.window_end - alert.window_start <= timedelta(seconds=RULE.window)
    assert alert.usual_share is not None and alert.negative_share > 2 * alert.usual_share
    assert alert.id == alert.make_id("Acme", RULE.name, alert.window_start)


def test_a_persisting_spike_does_not_fire_again_every_bucket(tmp_path: Path) -> None:
    story = Story(tmp_path)
    story.quiet_hour()
    burst(story, 30)
    assert len(story.firing()) == 1
    assert story.resolved() == []


def test_a_spike_is_not_learnt_as_the_new_baseline(tmp_path: Path) -> None:
    story = Story(tmp_path)
    story.quiet_hour()
    before = story.baseline()
    burst(story, 40)
    during = story.baseline()
    assert during <= before * 1.2


def calm_down(story: Story, minutes: int = 20) -> float | None:
    """Minutes without a complaint; the end of the first window the detector found calm."""
    calm_from = None
    for _ in range(minutes):
        story.minute(negatives=0)
        window = story.newest_window()
        if calm_from is None and story.detector.has_calmed(window):
            calm_from = window.end
    return calm_from


def test_the_spike_ends_once_after_a_hold_of_calm_windows(tmp_path: Path) -> None:
    story = Story(tmp_path)
    story.quiet_hour()
    burst(story, 10)
    calm_from = calm_down(story)
    [fired] = story.firing()
    [resolved] = story.resolved()
    assert resolved.id == fired.id
    assert calm_from is not None and resolved.window_end.timestamp() == calm_from + RULE.hold
    assert resolved.window_start > fired.window_start
    assert resolved.observed < RULE.min_count
    assert resolved.samples == ()


def test_volume_between_the_fire_and_resolve_levels_keeps_the_spike_open(tmp_path: Path) -> None:
    rule = RULE.model_copy(update={"min_count": 3})
    story = Story(tmp_path, rule)
    story.quiet_hour()
    burst(story, 5)
    assert len(story.firing()) == 1
    detector = story.detector
    for m in range(20):  # three negatives in every five minutes: elevated, but not a fresh spike
        story.minute(negatives=1 if m % 5 < 3 else 0)
        stats = story.newest_window()
        if m >= 6:
            assert stats.observed == 3
            assert not detector.is_spike(stats)
            assert not detector.has_calmed(stats)
    assert story.resolved() == []
    calm_down(story)
    assert len(story.resolved()) == 1
    assert len(story.firing()) == 1


def test_a_burst_below_min_count_never_fires(tmp_path: Path) -> None:
    for min_count, fires in ((10, False), (9, True)):
        story = Story(tmp_path / str(min_count), RULE.model_copy(update={"min_count": min_count}))
        story.quiet_hour()
        story.minute(negatives=9)
        for _ in range(6):
            story.minute(negatives=0)
        assert bool(story.firing()) is fires, f"min_count={min_count}"


def test_a_burst_of_positive_and_neutral_mentions_does_not_fire(tmp_path: Path) -> None:
    story = Story(tmp_path)
    story.quiet_hour()
    for _ in range(10):
        story.minute(negatives=0, neutral=40, positive=40)
    assert story.alerts == []


def test_a_backfill_of_old_negative_items_does_not_fire_but_is_counted(tmp_path: Path) -> None:
    story = Story(tmp_path)
    story.quiet_hour()
    before = story.baseline()
    # Forty complaints from 30-40 minutes ago arrive at once (a feed catching up).
    old = [scored(story.clock.now - timedelta(minutes=40, seconds=-i * 15)) for i in range(40)]
    story.feed(old)
    # ...and a hundred from yesterday.
    story.feed([scored(story.clock.now - timedelta(days=1, seconds=-i * 5)) for i in range(100)])
    for _ in range(10):
        story.minute(negatives=0)
    assert story.alerts == []
    assert story.baseline() > before


def test_a_first_start_on_a_backfill_does_not_fire(tmp_path: Path) -> None:
    story = Story(tmp_path)
    story.feed([scored(T0 - timedelta(hours=2, seconds=-i * 3)) for i in range(200)])
    story.minute()
    assert story.alerts == []


def test_future_dated_items_do_not_move_time_forward(tmp_path: Path) -> None:
    story = Story(tmp_path)
    story.quiet_hour()
    tomorrow = story.clock.now + timedelta(days=1)
    story.feed([scored(tomorrow, SentimentLabel.NEUTRAL)])
    watermark = story.detector.state.watermark
    assert watermark is not None
    assert watermark <= story.clock.now.timestamp()


def test_the_alert_carries_the_three_most_negative_mentions_with_links(tmp_path: Path) -> None:
    story = Story(tmp_path)
    story.quiet_hour()
    start = story.clock.now
    scores = [0.61, 0.99, 0.75, 0.97, 0.70, 0.98, 0.66, 0.80]
    story.feed([scored(start + timedelta(seconds=5 * i), negative=s) for i, s in enumerate(scores)])
    story.clock.now = start + timedelta(minutes=1)
    for _ in range(4):
        story.minute(negatives=0)
    [alert] = story.firing()
    assert [m.sentiment.negative for m in alert.samples] == sorted(scores, reverse=True)[:3]
    assert all(m.url and m.url.startswith("https://") for m in alert.samples)


def test_a_restart_keeps_the_baseline_and_does_not_refire_an_open_spike(tmp_path: Path) -> None:
    story = Story(tmp_path)
    story.quiet_hour()
    burst(story, 6)
    [fired] = story.firing()
    detector = story.detector
    baseline = story.baseline()
    story.restart()
    assert story.detector is not detector
    assert story.baseline() == baseline
    burst(story, 10)
    assert story.firing() == [fired]
    calm_down(story)
    [resolved] = story.resolved()
    assert resolved.id == fired.id


def test_a_redelivered_batch_is_counted_once(tmp_path: Path) -> None:
    story = Story(tmp_path)
    story.quiet_hour()
    batch = [scored(story.clock.now + timedelta(seconds=i)) for i in range(3)]
    story.clock.now += timedelta(minutes=1)
    story.feed(batch)
    story.feed(batch)
    story.restart()
    story.feed(batch)
    bucket = story.detector.bucket_of(batch[0])
    assert story.detector.state.negative[bucket] == 3


def test_a_spike_resolves_when_the_brand_falls_silent(tmp_path: Path) -> None:
    story = Story(tmp_path)
    story.quiet_hour()
    burst(story, 5)
    assert len(story.firing()) == 1
    story.clock.now += timedelta(minutes=30)
    story.feed([])
    assert len(story.resolved()) == 1


def test_the_detector_alone_follows_update_then_evaluate(tmp_path: Path) -> None:
    clock = Clock()
    detector = SpikeDetector("Acme", RULE, BrandState(), clock=clock, settings=DetectorSettings())
    for minute in range(30):
        for i in range(6 if minute >= 25 else 0):
            detector.update(scored(clock.now + timedelta(seconds=i)))
        clock.now += timedelta(minutes=1)
        alerts = detector.evaluate()
        if alerts:
            break
    assert [a.status for a in alerts] == ["firing"]
    assert detector.state.open_spike is not None


def test_complaints_that_stay_high_become_the_new_normal_after_one_baseline_span(tmp_path: Path) -> None:
    story = Story(tmp_path)
    burst(story, 30, negatives=8)  # a brand that starts with steady complaints and no history
    assert len(story.firing()) == 1
    burst(story, 60, negatives=8)
    assert len(story.resolved()) == 1, "a level shift resolves once it has lasted the baseline span"
    burst(story, 60, negatives=8)
    assert len(story.firing()) == 1, "and the same level does not fire again"
    burst(story, 10, negatives=40)
    assert len(story.firing()) == 2, "a real spike above the new level still fires"
