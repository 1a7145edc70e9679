"""Negative-spike detection for one brand: a small online estimator.

Negative mentions are counted in buckets by *publication* time, so a burst is
seen when it happened, not when a feed happened to be polled. Time moves with a
watermark (the newest publication time seen, never beyond the wall clock); a
bucket closes once the watermark is `lateness` buckets past its end, or once
the wall clock is `idle_close` seconds past it, so a stream that falls silent
can still end its spike.

A spike must pass two tests together (`is_spike`):

* the count: the window's negatives against the baseline, the mean per
  bucket over the closed buckets of the preceding `rule.baseline` seconds
  (raised by the hour-of-day profile once learnt), plus a small prior so an
  empty history does not make the first few complaints a spike; and
* the share: the window's negatives *among all its mentions* against the
  brand's usual share (`alerts.share`), so a launch that brings ten times the
  volume, and ten times the complaints, at the usual share does not page.

Buckets that belonged to a firing spike are left out of both baselines, so a
long spike is not learnt as the new normal (River's
`protect_anomaly_detector`).

Time has two edges. Closed windows (once the watermark is `lateness` past
them) are judged in order and are what the baselines learn from. The open
edge is judged too, as posts arrive: every span from one bucket to a whole
window ending at the newest post is tested, with the expected count scaled to
the span (a Poisson tail holds for any span), so an outage pages as soon as
its evidence suffices rather than a bucket and a late post after.

A slow crisis outruns neither test: its hourly rise is learnt by the 1-hour
baseline. So a CUSUM of the share's log-likelihood ratio (`alerts.share`)
runs over the closed buckets against the slow usual share, which stops
learning while that evidence gathers (and which must first have learnt for
half a `share_baseline`, or a new brand's share above the prior would look
like a climb and freeze there); a climb pages once when it crosses
`climb_threshold`, says since when and from what share to what, and ends
once the evidence has drained.

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
from alerts.anomaly import AnomalyEstimator, EstimatorParams, negbin_z, poisson_z
from alerts.share import (
    beta_binomial_z,
    bucket_weight,
    climb_evidence,
    climbed_share,
    forget_climb,
    learn_share,
    scan_z,
    share_learnt,
    usual_share,
)
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
    # The share tests (see alerts.share): a new brand's usual share is taken as 15 % until
    # about a hundred mentions have been seen; a window's share varies like a beta of 50
    # pseudo-mentions around the usual one.
    prior_share: float = 0.15
    prior_mentions: float = 100.0
    concentration: float = 50.0
    # The slow-climb CUSUM: nats of evidence to page, per-bucket clip, and the evidence above
    # which the usual share stops learning (a climb under way must not become the usual).
    climb_threshold: float = 12.0
    climb_clip: float = 2.0
    climb_freeze: float = 3.0

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
    usual_share: float = 0.0
    # The negatives (prior included) the expectation rests on: few make it a rough guess.
    shape: float = math.inf

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
        state.dirty.add(bucket)  # the next save rewrites this bucket's row
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
        opened = self._scan_open()
        if opened is not None:
            alerts.append(opened)
        return alerts

    def window_stats(self, window_end: int) -> WindowStats:
        first = window_end - self.window_buckets
        return self._span_stats(first, window_end, window_end * self.rule.bucket)

    def _span_stats(self, first: int, last: int, end: float) -> WindowStats:
        """Counts of buckets [first, last) against what a span from `first`'s start to `end` expects.

        `end` may fall inside bucket `last - 1` (the open edge): the expected count is then
        scaled to the time the span covers, never to less than one bucket.
        """
        bucket = self.rule.bucket
        observed = sum(self.state.negative.get(b, 0) for b in range(first, last))
        total = sum(self.state.total.get(b, 0) for b in range(first, last))
        length = max(1.0, end / bucket - first)
        per_bucket, shape = self.baseline(min(first, last - self.window_buckets))
        expected = per_bucket * length
        if self.estimator.warmed:
            # The hour-of-day / hour-of-week forecast may only raise the bar: a busy
            # Monday morning is not news, but a quiet night must not make one complaint a spike.
            seasonal = self.estimator.forecast(math.ceil(end / bucket) * bucket)[0]
            expected = max(expected, seasonal * length / self.window_buckets)
        return WindowStats(
            start=first * bucket,
            end=end,
            observed=observed,
            total=total,
            expected=expected,
            usual_share=self.usual_share(),
            shape=shape,
        )

    def usual_share(self) -> float:
        return usual_share(self.state.share, self.settings.prior_share, self.settings.prior_mentions)

    def expected_per_bucket(self, before: int) -> float:
        """Mean negatives per bucket over the baseline span before `before`, spikes left out."""
        return self.baseline(before)[0]

    def baseline(self, before: int) -> tuple[float, float]:
        """Mean negatives per bucket over the baseline span before `before` (spikes left out),
        and the negatives that mean rests on (the prior's included), for the count's tail."""
        state = self.state
        assert state.first_bucket is not None
        low = max(state.first_bucket, before - self.baseline_buckets)
        spikes = sum(1 for b in state.spike_buckets if low <= b < before)
        buckets = max(0, before - low) - spikes
        negatives = sum(
            v for b, v in state.negative.items() if low <= b < before and b not in state.spike_buckets
        )
        prior = self.settings.prior_per_window
        return (negatives + prior) / (buckets + self.window_buckets), negatives + prior

    def is_spike(self, stats: WindowStats, fraction: float = 1.0) -> bool:
        """High for the time of day *and* high for the volume.

        The count: at least `min_count`, `min_ratio` x expected and a tail beyond
        `sensitivity` (6 against 1 is rarer than 60 against 40): exact, and negative binomial
        so that an expectation resting on a handful of negatives is trusted only that far
        (`negbin_z`; Poisson once the baseline is long). The share: at least
        `min_share`, `share_ratio` x the usual share's odds, and a beta-binomial tail beyond
        half the `sensitivity`, so more complaints that come with more of everything are not
        news. The count's tail guards against noise; the share's only has to show that the
        share really rose, so it asks for less (a blatant minute of an outage, 12 negatives of
        21 against a usual tenth, is only about 4 sigma once shares are allowed to wander).

        A span that is a `fraction` of the window is one of 1/fraction such spans a window
        holds, each a chance for noise: its tails must be that much smaller (a scan
        statistic's Bonferroni bound), or judging the open edge would page on every flurry.
        """
        rule = self.rule
        share = stats.negative_share
        z = scan_z(rule.sensitivity, fraction)
        spread = self.settings.concentration
        return (
            stats.observed >= rule.min_count
            and stats.observed >= rule.min_ratio * stats.expected
            and negbin_z(stats.observed, stats.expected, stats.shape) >= z
            and share >= rule.min_share
            and share >= climbed_share(stats.usual_share, rule.share_ratio)
            and beta_binomial_z(stats.observed, stats.total, stats.usual_share, spread) >= z / 2
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
        self._expire_ended(stats.end)
        climbed = self._learn_share(end)
        alert = self._decide(stats)
        if alert is None and climbed:
            alert = self._climb_alert(stats)
        if self.state.open_spike is None and alert is None:
            # A spike's windows are not learnt: the baseline stays what normal looked like.
            self.estimator.update(stats.end, float(stats.observed))
            self.state.estimator = self.estimator.to_dict()
        return alert

    def _decide(self, stats: WindowStats) -> Alert | None:
        if self.state.open_spike is not None:
            return self._follow(stats)
        if not self.is_spike(stats):
            return None
        return self._open(stats, "spike")

    def _open(self, stats: WindowStats, trigger: Literal["spike", "climb"]) -> Alert | None:
        """Page for a new spike, or continue the last one if it ended within the cool-down."""
        state = self.state
        self._expire_ended(stats.end)
        if not self._recent(stats):
            return None
        if state.ended_spike is not None:
            return self._returned(stats, state.ended_spike, trigger)
        alert_id = Alert.make_id(self.brand, self.rule.name, _utc(stats.start))
        state.open_spike = OpenSpike(
            alert_id=alert_id,
            window_start=stats.start,
            fired_at=self._now(),
            peak=stats.observed,
            trigger=trigger,
        )
        if trigger == "spike":
            self._mark_spike(stats)
        return self._alert(stats, "firing", alert_id)

    def _scan_open(self) -> Alert | None:
        """Judge the open edge: every span from one bucket to a whole window ending at the newest
        post, so an outage pages once its evidence suffices, not a bucket and a late post later."""
        state = self.state
        if state.open_spike is not None or state.watermark is None or state.first_bucket is None:
            return None
        edge = min(state.watermark, self._now())
        newest = math.floor(edge / self.rule.bucket)
        # An edge exactly on a boundary is inside the bucket it opens (a millisecond in), so the
        # span's posts and samples are in the span.
        edge = max(edge, newest * self.rule.bucket + 1e-3)
        if state.evaluated_through is not None and newest < state.evaluated_through:
            return None  # the closed windows have judged this edge already
        negatives = 0
        for length in range(1, self.window_buckets + 1):
            negatives += state.negative.get(newest + 1 - length, 0)
            if negatives < self.rule.min_count:
                continue  # the cheap test first: most edges of most brands stop here
            span = self._span_stats(newest + 1 - length, newest + 1, edge)
            covered = (span.end - span.start) / self.rule.bucket  # the newest bucket only in part
            if self.is_spike(span, min(1.0, covered / self.window_buckets)):
                whole = self._span_stats(newest + 1 - self.window_buckets, newest + 1, edge)
                return self._open(whole if self.is_spike(whole) else span, "spike")
        return None

    def _learn_share(self, end: int) -> bool:
        """Feed the closed buckets before `end` to the usual share and the climb's CUSUM, once
        each; True when the climb's evidence crossed `climb_threshold` on the way."""
        state, settings, rule = self.state, self.settings, self.rule
        base = state.share
        first = end - self.window_buckets - self.baseline_buckets
        if base.through is not None:
            first = base.through + 1
        halflife = rule.share_baseline / 2 / rule.bucket
        crossed = False
        for b in range(first, end):
            gap, base.through = (1 if base.through is None else b - base.through), b
            if b in state.spike_buckets:
                continue  # a burst's own buckets say nothing about a climb or the usual share
            negatives, mentions = state.negative.get(b, 0), state.total.get(b, 0)
            usual = self.usual_share()
            if rule.climb_ratio is not None and share_learnt(base, halflife, settings.prior_mentions):
                step = climb_evidence(negatives, mentions, usual, rule.climb_ratio, settings.climb_clip)
                step *= bucket_weight(base, mentions)  # a launch's volume is not more evidence
                before, base.cusum = base.cusum, max(0.0, base.cusum + step)
                if base.cusum > 0 and before == 0:
                    base.rising_since, base.rising_negatives, base.rising_mentions = b * rule.bucket, 0, 0
                if base.cusum > 0:
                    base.rising_negatives += negatives
                    base.rising_mentions += mentions
                else:
                    forget_climb(base)
                crossed = crossed or (before < settings.climb_threshold <= base.cusum)
                if self._climbing():
                    base.cusum = min(base.cusum, settings.climb_threshold)  # drains in hours, not days
            if base.cusum < settings.climb_freeze and state.open_spike is None:
                learn_share(base, negatives, mentions, halflife, gap)
        return crossed or (
            base.cusum >= settings.climb_threshold and state.open_spike is None and self._climb_may_page()
        )

    def _expire_ended(self, now: float) -> None:
        """Forget an ended spike once its cool-down is over: a return after it is news again.

        Done by time, not only when something fires: a day-old ended spike kept around
        barred a later climb from paging at all.
        """
        ended = self.state.ended_spike
        if ended is not None and ended.ended is not None and now - ended.ended > self.rule.cooldown:
            self.state.ended_spike = None

    def _climbing(self) -> bool:
        spike = self.state.open_spike
        return spike is not None and spike.trigger == "climb"

    def _climb_may_page(self) -> bool:
        """A climb is gathering, and no spike ended within its cool-down (a crossing then is a return)."""
        since = self.state.share.rising_since
        return since is not None and self.state.ended_spike is None

    def _climb_stats(self, stats: WindowStats) -> WindowStats | None:
        """The climb as one span: from where its evidence left zero to now."""
        base = self.state.share
        if base.rising_since is None or base.rising_mentions <= 0:
            return None
        usual = self.usual_share()
        return WindowStats(
            start=base.rising_since,
            end=stats.end,
            observed=base.rising_negatives,
            total=base.rising_mentions,
            expected=usual * base.rising_mentions,
            usual_share=usual,
        )

    def _climb_alert(self, stats: WindowStats) -> Alert | None:
        """A climb pages when its share is clearly raised and its excess is worth a person."""
        climb = self._climb_stats(stats)
        if climb is None or self.state.open_spike is not None:
            return None
        excess = climb.observed - climb.expected
        raised = climbed_share(climb.usual_share, self.rule.share_ratio)
        if excess < self.rule.min_count or climb.negative_share < raised:
            return None
        return self._open(climb, "climb")

    def _follow(self, stats: WindowStats) -> Alert | None:
        """An open spike ends after `hold` seconds of calm windows, or when it is the new level.

        A climb's calm is its evidence drained to zero: its windows were never high for the
        1-hour baseline, which has long learnt them.
        """
        spike = self.state.open_spike
        assert spike is not None
        calm = self.has_calmed(stats) if spike.trigger == "spike" else self.state.share.cusum <= 0
        calm_since = (stats.end if spike.calm_since is None else spike.calm_since) if calm else None
        self.state.open_spike = replace(spike, calm_since=calm_since)
        if calm_since is not None and stats.end - calm_since >= self.rule.hold:
            return self._end(stats, keep=True)
        if self._is_new_normal(stats):
            return self._end(stats, keep=calm)
        if calm or spike.trigger == "climb":
            return None  # a climb's growth is in its evidence, not in one window: no updates
        self._mark_spike(stats)
        return self._rising(stats)

    def _end(self, stats: WindowStats, *, keep: bool) -> Alert:
        """The spike is over (not the incident: a person resolves that). Kept for the cool-down
        so a return continues it, unless it ended by becoming the new normal."""
        spike = self.state.open_spike
        assert spike is not None
        self.state.open_spike = None
        self.state.ended_spike = replace(spike, calm_since=None, ended=stats.end) if keep else None
        # What the climb test had gathered belongs to the spike that ended; a climb still going
        # on gathers again (and, within the cool-down, continues this alert).
        forget_climb(self.state.share)
        # Numbered like the updates, so a second end after a return is a message of its own.
        alert = self._alert(stats, "resolved", spike.alert_id)
        return alert.model_copy(update={"revision": spike.revision})

    def _returned(self, stats: WindowStats, ended: OpenSpike, trigger: Literal["spike", "climb"]) -> Alert:
        """A spike back within the cool-down is the same spike: an update in its thread and
        incident, not a second page."""
        spike = replace(
            ended,
            ended=None,
            calm_since=None,
            peak=stats.observed,
            revision=ended.revision + 1,
            trigger=trigger,
        )
        self.state.open_spike, self.state.ended_spike = spike, None
        if trigger == "spike":
            self._mark_spike(stats)
        alert = self._alert(stats, "update", spike.alert_id)
        return alert.model_copy(update={"revision": spike.revision})

    def _mark_spike(self, stats: WindowStats) -> None:
        first = round(stats.start / self.rule.bucket)
        self.state.spike_buckets.update(range(first, math.ceil(stats.end / self.rule.bucket)))

    def _is_new_normal(self, stats: WindowStats) -> bool:
        """A "spike" that outlasts the whole baseline span is a level shift, not an incident.

        Without this a brand whose complaints start high (or step up for good)
        would hold one alert open forever, since a spike's buckets are never
        learnt. Once it has lasted a full baseline span its buckets are released
        into the baseline, the alert resolves, and the higher level is normal.
        """
        spike = self.state.open_spike
        assert spike is not None
        if spike.trigger == "climb":
            return self._climb_is_new_normal(stats, spike)
        if stats.end - spike.window_start < self.rule.baseline:
            return False
        first = round(spike.window_start / self.rule.bucket)
        released = range(first, round(stats.end / self.rule.bucket))
        self.state.spike_buckets.difference_update(released)
        if self.state.share.cusum >= self.settings.climb_threshold and self.state.share.rising_since:
            # The count is the new level, but the share is still far above usual: the burst
            # has become a climb. Same alert, no page; it ends as a climb does. Ending it
            # here paged the same outage again minutes later, as a climb.
            self.state.open_spike = replace(spike, trigger="climb", calm_since=None)
            return False
        # Its share is learnt like any ordinary hour's, or the climb test would page for it next.
        share = self.state.share
        share.negatives += sum(self.state.negative.get(b, 0) for b in released)
        share.mentions += sum(self.state.total.get(b, 0) for b in released)
        return True

    def _climb_is_new_normal(self, stats: WindowStats, spike: OpenSpike) -> bool:
        """A climb that holds for a whole `share_baseline` is the brand's new usual share."""
        base = self.state.share
        if stats.end - spike.window_start < self.rule.share_baseline:
            return False
        if base.rising_mentions > 0:
            base.negatives, base.mentions = float(base.rising_negatives), float(base.rising_mentions)
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
            trigger=self._trigger(alert_id),
            usual_share=round(stats.usual_share, 4),
            **extra,
        )

    def _trigger(self, alert_id: str) -> Literal["spike", "climb"]:
        for spike in (self.state.open_spike, self.state.ended_spike):
            if spike is not None and spike.alert_id == alert_id:
                return "climb" if spike.trigger == "climb" else "spike"
        return "spike"

    def evidence(self, stats: WindowStats) -> dict[str, object]:
        """The window's sentiment mix, the words and sites behind it, and the last 24 h of windows."""
        state = self.state
        first, last = round(stats.start / self.rule.bucket), math.ceil(stats.end / self.rule.bucket)
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
        ends = {b: b * self.rule.bucket for b in points}
        if current is not None:
            # The open edge ends mid-bucket: its point sits where the alert's window ends.
            key = math.ceil(current.end / self.rule.bucket)
            points[key], ends[key] = self._point(current), current.end
        if not points:
            return ()
        newest = max(points)
        oldest = newest - math.ceil(CHART_SPAN / self.rule.bucket)
        return tuple(
            WindowPoint(end=_utc(ends[b]), observed=int(v[0]), expected=v[1], threshold=v[2])
            for b, v in sorted(points.items())
            if b > oldest
        )

    def _point(self, stats: WindowStats) -> list[float]:
        expected = round(stats.expected, 3)
        return [float(stats.observed), expected, evidence.fire_threshold(expected, self.rule, stats.shape)]

    def samples_between(self, start: float, end: float) -> tuple[ScoredMention, ...]:
        """The window's most-engaged negative mentions, then the most negative among equals."""
        first, last = round(start / self.rule.bucket), math.ceil(end / self.rule.bucket)
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
                state.dirty.add(b)
        for b, terms in state.terms.items():
            if b < end - self.window_buckets:
                state.terms[b] = evidence.trim(terms)
                if state.terms[b] is not terms:
                    state.dirty.add(b)
        for b in [b for b in state.history if b <= end - math.ceil(CHART_SPAN / self.rule.bucket)]:
            del state.history[b]
        keep_samples_from = end - 2 * self.window_buckets - self.settings.lateness_buckets
        for b in [b for b in state.samples if b < keep_samples_from]:
            del state.samples[b]
            state.dirty.add(b)
        for b in [b for b in state.stories if b < keep_samples_from]:
            del state.stories[b]
            state.dirty.add(b)
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
