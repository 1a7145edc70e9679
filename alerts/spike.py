"""Negative-spike detection for one brand: a small online estimator.

Negative mentions are counted in buckets by *publication* time, so a burst is
seen when it happened, not when a feed happened to be polled. Time moves with a
watermark (the newest publication time seen, never beyond the wall clock); a
bucket closes once the watermark is `lateness` buckets past its end, or once
the wall clock is `idle_close` seconds past it, so a stream that falls silent
can still end its spike.

For each closed window end the detector compares the window's negatives with
the baseline: the mean per bucket over the closed buckets of the preceding
`rule.baseline` seconds, plus a small prior (one negative per window) so an
empty history does not make the first few complaints a spike. Buckets that
belonged to a firing spike are left out of the baseline, so a long spike is
not learnt as the new normal (River's `protect_anomaly_detector`).

A spike ends only once its windows have stayed under `resolve_ratio` x
expected for `rule.hold` seconds, and one that comes back within
`rule.cooldown` of its end continues under the same alert id (an update in its
thread and incident), so an outage whose tail wavers is one spike, not a string
of end-and-fire pairs. Its end is the spike's, never the incident's: a person
resolves that.

The shape is `update(mention)` then `evaluate()`; a later detector can keep it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from alerts import evidence, story_evidence
from alerts.anomaly import AnomalyEstimator, EstimatorParams, poisson_z
from alerts.state import BrandState, OpenSpike
from listener.config import AlertRule
from listener.query.tokens import tokenize
from listener.records import Alert, ScoredMention, SentimentLabel, WindowPoint

__all__ = ["DetectorSettings", "SpikeDetector", "WindowStats"]

SAMPLES = 3
TOP_TERMS = 5
TOP_SOURCES = 3
CHART_SPAN = 86400.0  # the alert's chart covers the last 24 hours
# An open spike is re-reported (in its thread) when its count reaches this multiple of the last report.
UPDATE_GROWTH = 1.5
# A window whose count is within this many standard deviations of expected is calm whatever its ratio.
CALM_Z = 1.0


@dataclass(frozen=True)
class DetectorSettings:
    """Knobs that are about the data's timeliness rather than about what a spike is.

    `max_alert_age` and `idle_close` default to multiples of the rule's window.
    """

    lateness_buckets: int = 1
    max_alert_age: float | None = None
    idle_close: float | None = None
    prior_per_window: float = 1.0
    std_floor: float = 1.0

    def alert_age(self, rule: AlertRule) -> float:
        return self.max_alert_age if self.max_alert_age is not None else 4 * rule.window

    def idle(self, rule: AlertRule) -> float:
        return self.idle_close if self.idle_close is not None else 3 * rule.window


@dataclass(frozen=True)
class WindowStats:
    """What the detector saw in one window, and what it expected."""

    start: float
    end: float
    observed: int
    total: int
    expected: float

    @property
    def negative_share(self) -> float:
        return self.observed / self.total if self.total else 0.0


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


class SpikeDetector:
    """One brand, one rule; the caller persists `state` after each batch."""

    def __init__(
        self,
        brand: str,
        rule: AlertRule,
        state: BrandState,
        *,
        clock: Callable[[], datetime],
        settings: DetectorSettings | None = None,
        channel: str | None = None,
    ) -> None:
        self.brand = brand
        self.rule = rule
        self.state = state
        self.clock = clock
        self.settings = settings or DetectorSettings()
        self.channel = channel
        # The brand's own name is in every mention; it never explains a spike.
        self._brand_words = frozenset(tokenize(brand))
        self.window_buckets = max(1, math.ceil(rule.window / rule.bucket))
        self.baseline_buckets = max(1, math.ceil(rule.baseline / rule.bucket))
        # The seasonal estimator learns each window's count once per closed bucket; it
        # is trusted only after a full baseline of steps.
        self.estimator = AnomalyEstimator(
            EstimatorParams(
                counts=True,
                direction="up",
                warmup=self.baseline_buckets,
                level_halflife=max(1.0, self.baseline_buckets / 4),
            ),
            state.estimator or None,
        )

    # --- update -----------------------------------------------------------------------

    def bucket_of(self, mention: ScoredMention) -> int:
        """Future-dated items count as now: a wrong time zone must not fill tomorrow's buckets."""
        event = min(mention.published.timestamp(), self._now())
        return math.floor(event / self.rule.bucket)

    def update(self, mention: ScoredMention) -> None:
        """Count one (already de-duplicated) mention into its publication bucket."""
        state = self.state
        now = self._now()
        bucket = self.bucket_of(mention)
        event = min(mention.published.timestamp(), now)
        state.watermark = event if state.watermark is None else max(state.watermark, event)
        state.first_bucket = bucket if state.first_bucket is None else min(state.first_bucket, bucket)
        state.total[bucket] = state.total.get(bucket, 0) + 1
        mix = state.mix.setdefault(bucket, {})
        mix[mention.sentiment.label.value] = mix.get(mention.sentiment.label.value, 0) + 1
        if mention.sentiment.label is SentimentLabel.NEGATIVE:
            state.negative[bucket] = state.negative.get(bucket, 0) + 1
            self._keep_sample(bucket, mention)
            self._count_evidence(bucket, mention)

    def _count_evidence(self, bucket: int, mention: ScoredMention) -> None:
        terms = self.state.terms.setdefault(bucket, {})
        for term in evidence.mention_terms(mention, self._brand_words):
            terms[term] = terms.get(term, 0) + 1
        sources = self.state.sources.setdefault(bucket, {})
        where = evidence.source_of(mention)
        sources[where] = sources.get(where, 0) + 1
        story_evidence.file_mention(self.state.stories.setdefault(bucket, []), mention)

    def _keep_sample(self, bucket: int, mention: ScoredMention) -> None:
        kept = [m for m in self.state.samples.get(bucket, []) if m.id != mention.id]
        kept.append(mention)
        kept.sort(key=_sample_order)
        self.state.samples[bucket] = kept[:SAMPLES]

    # --- evaluate ---------------------------------------------------------------------

    def closed_end(self) -> int | None:
        """The index one past the newest closed bucket, or None before any data."""
        state = self.state
        if state.first_bucket is None:
            return None
        now = self._now()
        closing = now - self.settings.idle(self.rule)
        if state.watermark is not None:
            closing = max(closing, state.watermark - self.settings.lateness_buckets * self.rule.bucket)
        return math.floor(min(closing, now) / self.rule.bucket)

    def evaluate(self) -> list[Alert]:
        """Walk every window end that closed since the last call, in order; return alerts."""
        state = self.state
        end = self.closed_end()
        if end is None or state.first_bucket is None:
            return []
        start = state.first_bucket + 1 if state.evaluated_through is None else state.evaluated_through + 1
        start = max(start, end - self.baseline_buckets)
        if state.open_spike is None:
            # Windows too old to fire change nothing unless a spike is open; skip them.
            oldest_recent = math.ceil((self._now() - self.settings.alert_age(self.rule)) / self.rule.bucket)
            start = max(start, oldest_recent)
        alerts: list[Alert] = []
        for window_end in range(start, end + 1):
            alert = self._step(self.window_stats(window_end))
            if alert is not None:
                alerts.append(alert)
        if state.evaluated_through is None or end > state.evaluated_through:
            state.evaluated_through = end
        self._prune(end)
        return alerts

    def window_stats(self, window_end: int) -> WindowStats:
        first = window_end - self.window_buckets
        observed = sum(self.state.negative.get(b, 0) for b in range(first, window_end))
        total = sum(self.state.total.get(b, 0) for b in range(first, window_end))
        expected = self.expected_per_bucket(first) * self.window_buckets
        if self.estimator.warmed:
            # The hour-of-day / hour-of-week forecast may only raise the bar: a busy
            # Monday morning is not news, but a quiet night must not make one complaint a spike.
            expected = max(expected, self.estimator.forecast(window_end * self.rule.bucket)[0])
        return WindowStats(
            start=first * self.rule.bucket,
            end=window_end * self.rule.bucket,
            observed=observed,
            total=total,
            expected=expected,
        )

    def expected_per_bucket(self, before: int) -> float:
        """Mean negatives per bucket over the baseline span before `before`, spikes left out."""
        state = self.state
        assert state.first_bucket is not None
        low = max(state.first_bucket, before - self.baseline_buckets)
        spikes = sum(1 for b in state.spike_buckets if low <= b < before)
        buckets = max(0, before - low) - spikes
        negatives = sum(
            v for b, v in state.negative.items() if low <= b < before and b not in state.spike_buckets
        )
        prior = self.settings.prior_per_window
        return (negatives + prior) / (buckets + self.window_buckets)

    def is_spike(self, stats: WindowStats) -> bool:
        """Volume, ratio, share, and an exact Poisson tail: 6 against 1 is rarer than 60 against 40."""
        rule = self.rule
        return (
            stats.observed >= rule.min_count
            and stats.observed >= rule.min_ratio * stats.expected
            and stats.negative_share >= rule.min_share
            and poisson_z(stats.observed, stats.expected) >= rule.sensitivity
        )

    def has_calmed(self, stats: WindowStats) -> bool:
        """Under `resolve_ratio` x expected, or a count ordinary noise explains (1 against 0.4).

        A count under `min_count` is no calm by itself: 4 against 0.4 expected is
        an outage's tail, and ending the spike there made it end and fire again.
        """
        return (
            stats.observed < self.rule.resolve_ratio * stats.expected
            or poisson_z(stats.observed, stats.expected) < CALM_Z
        )

    def _step(self, stats: WindowStats) -> Alert | None:
        end = round(stats.end / self.rule.bucket)
        if end % self.window_buckets == 0:
            # Non-overlapping windows on a fixed grid: 288 points a day for 5-minute windows.
            self.state.history[end] = self._point(stats)
        alert = self._decide(stats)
        if self.state.open_spike is None and alert is None:
            # A spike's windows are not learnt: the baseline stays what normal looked like.
            self.estimator.update(stats.end, float(stats.observed))
            self.state.estimator = self.estimator.to_dict()
        return alert

    def _decide(self, stats: WindowStats) -> Alert | None:
        state = self.state
        if state.open_spike is not None:
            return self._follow(stats)
        ended = state.ended_spike
        if ended is not None and ended.ended is not None and stats.end - ended.ended > self.rule.cooldown:
            state.ended_spike = None
        if not self.is_spike(stats) or not self._recent(stats):
            return None
        if state.ended_spike is not None:
            return self._returned(stats, state.ended_spike)
        alert_id = Alert.make_id(self.brand, self.rule.name, _utc(stats.start))
        state.open_spike = OpenSpike(
            alert_id=alert_id, window_start=stats.start, fired_at=self._now(), peak=stats.observed
        )
        self._mark_spike(stats)
        return self._alert(stats, "firing", alert_id)

    def _follow(self, stats: WindowStats) -> Alert | None:
        """An open spike ends after `hold` seconds of calm windows, or when it is the new level."""
        spike = self.state.open_spike
        assert spike is not None
        calm = self.has_calmed(stats)
        calm_since = (stats.end if spike.calm_since is None else spike.calm_since) if calm else None
        self.state.open_spike = replace(spike, calm_since=calm_since)
        if calm_since is not None and stats.end - calm_since >= self.rule.hold:
            return self._end(stats, keep=True)
        if self._is_new_normal(stats):
            return self._end(stats, keep=calm)
        if calm:
            return None
        self._mark_spike(stats)
        return self._rising(stats)

    def _end(self, stats: WindowStats, *, keep: bool) -> Alert:
        """The spike is over (not the incident: a person resolves that). Kept for the cool-down
        so a return continues it, unless it ended by becoming the new normal."""
        spike = self.state.open_spike
        assert spike is not None
        self.state.open_spike = None
        self.state.ended_spike = replace(spike, calm_since=None, ended=stats.end) if keep else None
        # Numbered like the updates, so a second end after a return is a message of its own.
        alert = self._alert(stats, "resolved", spike.alert_id)
        return alert.model_copy(update={"revision": spike.revision})

    def _returned(self, stats: WindowStats, ended: OpenSpike) -> Alert:
        """A spike back within the cool-down is the same spike: an update in its thread and
        incident, not a second page."""
        spike = replace(ended, ended=None, calm_since=None, peak=stats.observed, revision=ended.revision + 1)
        self.state.open_spike, self.state.ended_spike = spike, None
        self._mark_spike(stats)
        alert = self._alert(stats, "update", spike.alert_id)
        return alert.model_copy(update={"revision": spike.revision})

    def _mark_spike(self, stats: WindowStats) -> None:
        first = round(stats.start / self.rule.bucket)
        self.state.spike_buckets.update(range(first, first + self.window_buckets))

    def _is_new_normal(self, stats: WindowStats) -> bool:
        """A "spike" that outlasts the whole baseline span is a level shift, not an incident.

        Without this a brand whose complaints start high (or step up for good)
        would hold one alert open forever, since a spike's buckets are never
        learnt. Once it has lasted a full baseline span its buckets are released
        into the baseline, the alert resolves, and the higher level is normal.
        """
        spike = self.state.open_spike
        assert spike is not None
        if stats.end - spike.window_start < self.rule.baseline:
            return False
        first = round(spike.window_start / self.rule.bucket)
        self.state.spike_buckets.difference_update(range(first, round(stats.end / self.rule.bucket)))
        return True

    def _rising(self, stats: WindowStats) -> Alert | None:
        """An update for the open spike's thread when it has grown clearly past the last report."""
        spike = self.state.open_spike
        assert spike is not None
        if spike.peak == 0:  # state saved before updates existed: this window is the baseline report
            self.state.open_spike = replace(spike, peak=stats.observed)
            return None
        grown = stats.observed >= UPDATE_GROWTH * spike.peak
        if not grown or stats.observed - spike.peak < self.rule.min_count or not self._recent(stats):
            return None
        spike = replace(spike, peak=stats.observed, revision=spike.revision + 1)
        self.state.open_spike = spike
        return self._alert(stats, "update", spike.alert_id).model_copy(update={"revision": spike.revision})

    def _recent(self, stats: WindowStats) -> bool:
        """Backfill is history, not news: only windows ending near the wall clock may fire."""
        return self._now() - stats.end <= self.settings.alert_age(self.rule)

    def _alert(
        self, stats: WindowStats, status: Literal["firing", "update", "resolved"], alert_id: str
    ) -> Alert:
        samples: tuple[ScoredMention, ...] = ()
        extra: dict[str, object] = {}
        if status != "resolved":
            samples = self.samples_between(stats.start, stats.end)
            extra = self.evidence(stats)
        return Alert(
            id=alert_id,
            brand=self.brand,
            rule=self.rule.name,
            status=status,
            window_start=_utc(stats.start),
            window_end=_utc(stats.end),
            observed=stats.observed,
            expected=round(stats.expected, 3),
            total=stats.total,
            negative_share=round(stats.negative_share, 4),
            samples=samples,
            channel=self.channel,
            created=self.clock(),
            **extra,
        )

    def evidence(self, stats: WindowStats) -> dict[str, object]:
        """The window's sentiment mix, the words and sites behind it, and the last 24 h of windows."""
        state = self.state
        first, last = round(stats.start / self.rule.bucket), round(stats.end / self.rule.bucket)
        window = range(first, last)
        baseline = [b for b in range(first - self.baseline_buckets, first) if b not in state.spike_buckets]
        terms = evidence.over_represented(
            evidence.merge(state.terms.get(b, {}) for b in window),
            sum(state.negative.get(b, 0) for b in window),
            evidence.merge(state.terms.get(b, {}) for b in baseline),
            sum(state.negative.get(b, 0) for b in baseline),
            limit=TOP_TERMS,
        )
        sources = evidence.top_counts(evidence.merge(state.sources.get(b, {}) for b in window), TOP_SOURCES)
        stories, story_count = story_evidence.top_stories(state.stories.get(b, []) for b in window)
        return {
            "top_stories": stories,
            "story_count": story_count,
            "mix": dict(evidence.merge(state.mix.get(b, {}) for b in window)),
            "top_terms": terms,
            "top_sources": sources,
            "history": self.chart_series(stats),
        }

    def chart_series(self, current: WindowStats | None = None) -> tuple[WindowPoint, ...]:
        """The last 24 hours of windows against the expected band, from persisted state."""
        points = dict(self.state.history)
        if current is not None:
            points[round(current.end / self.rule.bucket)] = self._point(current)
        if not points:
            return ()
        newest = max(points)
        oldest = newest - math.ceil(CHART_SPAN / self.rule.bucket)
        return tuple(
            WindowPoint(end=_utc(b * self.rule.bucket), observed=int(v[0]), expected=v[1], threshold=v[2])
            for b, v in sorted(points.items())
            if b > oldest
        )

    def _point(self, stats: WindowStats) -> list[float]:
        expected = round(stats.expected, 3)
        return [float(stats.observed), expected, evidence.fire_threshold(expected, self.rule)]

    def samples_between(self, start: float, end: float) -> tuple[ScoredMention, ...]:
        """The window's most-engaged negative mentions, then the most negative among equals."""
        first, last = round(start / self.rule.bucket), round(end / self.rule.bucket)
        pool = [m for b, kept in self.state.samples.items() if first <= b < last for m in kept]
        pool.sort(key=_sample_order)
        return tuple(pool[:SAMPLES])

    def _prune(self, end: int) -> None:
        """Drop what no future window or baseline can reach."""
        state = self.state
        oldest = end - self.window_buckets - self.baseline_buckets - self.settings.lateness_buckets
        for counts in (state.negative, state.total, state.mix, state.terms, state.sources):
            for b in [b for b in counts if b < oldest]:
                del counts[b]
        for b, terms in state.terms.items():
            if b < end - self.window_buckets:
                state.terms[b] = evidence.trim(terms)
        for b in [b for b in state.history if b <= end - math.ceil(CHART_SPAN / self.rule.bucket)]:
            del state.history[b]
        keep_samples_from = end - 2 * self.window_buckets - self.settings.lateness_buckets
        for b in [b for b in state.samples if b < keep_samples_from]:
            del state.samples[b]
        for b in [b for b in state.stories if b < keep_samples_from]:
            del state.stories[b]
        state.spike_buckets = {b for b in state.spike_buckets if b >= oldest}
        if state.first_bucket is not None and state.first_bucket < oldest:
            # History older than the baseline is gone; the mean starts at the kept edge.
            state.first_bucket = oldest

    def prune_horizon(self) -> int | None:
        """Bucket index below which nothing is kept (for pruning de-duplication ids)."""
        end = self.closed_end()
        if end is None:
            return None
        return end - self.window_buckets - self.baseline_buckets - self.settings.lateness_buckets

    def _now(self) -> float:
        return self.clock().timestamp()


def _sample_order(mention: ScoredMention) -> tuple[int, float, str]:
    """Most-engaged first (what most people saw), then most negative, then id for stability."""
    return (-evidence.engagement(mention), -mention.sentiment.negative, mention.id)
