"""Builders for alerting stories: a controllable clock, scored mentions and alerts, a minute ticker."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alerts.spike import DetectorSettings, SpikeDetector, WindowStats
from alerts.stages import DetectStage
from listener.config import AlertRule
from listener.records import Alert, ScoredMention, Sentiment, SentimentLabel

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RULE = AlertRule(
    bucket=60, baseline=3600, window=300, min_count=5, min_ratio=3.0, sensitivity=3.0, resolve_ratio=1.5
)
_ids = itertools.count(1)


def oncall_rota(escalation_channel: str, **extra: Any) -> dict[str, Any]:
    """A brand's watch.yaml `oncall` section: Dana, Sam and Lee a week each, Lee the next level.

    Dana took over on the Monday before the stories' crises (they start at T0).
    """
    return {
        "responders": [
            {"name": "Dana", "slack_user": "U0DANA"},
            {"name": "Sam", "slack_user": "U0SAM"},
            {"name": "Lee", "slack_user": "U0LEE"},
        ],
        "handover_every": "7d",
        "handover_at": "2024-04-29T09:00:00Z",
        "escalation": [{"responder": "Lee", "channel": escalation_channel}],
        "response_time": "15m",
        "remind_every": "1h",
        **extra,
    }


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def scored(
    published: datetime,
    label: SentimentLabel = SentimentLabel.NEGATIVE,
    *,
    brand: str = "Acme",
    negative: float | None = None,
    text: str | None = None,
    author: str = "someone",
    url: str | None = None,
    title: str | None = None,
) -> ScoredMention:
    n = next(_ids)
    if negative is None:
        negative = 0.9 if label is SentimentLabel.NEGATIVE else 0.05
    rest = (1.0 - negative) / 2
    return ScoredMention(
        id=f"m{n:06d}",
        source="test-feed",
        source_type="feed",
        url=url or f"https://news.example/{n}",
        site="news.example",
        author=author,
        title=title,
        text=text or f"post number {n} about {brand}",
        published=published,
        fetched=published,
        document_id=f"d{n:06d}",
        brand=brand,
        sentiment=Sentiment(
            label=label, negative=negative, neutral=rest, positive=rest, model_id="test", model_version="1"
        ),
    )


class Story:
    """One brand watched by a DetectStage on a real SQLite file; time moves a minute per tick."""

    def __init__(
        self,
        tmp_path: Path,
        rule: AlertRule = RULE,
        *,
        clock: Clock | None = None,
        settings: DetectorSettings | None = None,
    ) -> None:
        self.path = tmp_path / "detector.sqlite"
        self.rule = rule
        self.clock = clock or Clock()
        self.settings = settings
        self.alerts: list[Alert] = []
        self.stage = self._stage()

    def _stage(self) -> DetectStage:
        return DetectStage(
            {"Acme": self.rule}, {"Acme": "#acme-alerts"}, self.path, clock=self.clock, settings=self.settings
        )

    @property
    def detector(self) -> SpikeDetector:
        detector = self.stage.detector("Acme")
        assert detector is not None
        return detector

    def newest_window(self) -> WindowStats:
        end = self.detector.closed_end()
        assert end is not None
        return self.detector.window_stats(end)

    def baseline(self) -> float:
        """Expected negatives per bucket for the newest closed window."""
        end = self.detector.closed_end()
        assert end is not None
        return self.detector.expected_per_bucket(end - self.detector.window_buckets)

    def restart(self) -> None:
        self.stage.close()
        self.stage = self._stage()

    def feed(self, mentions: list[ScoredMention]) -> list[Alert]:
        """One batch, as the runner delivers it: handled, published, confirmed."""
        outputs = self.stage.handle(mentions)
        self.stage.after_commit()
        alerts = [o.record for o in outputs if isinstance(o.record, Alert)]
        self.alerts.extend(alerts)
        return alerts

    def minute(self, negatives: int = 0, neutral: int = 2, positive: int = 0) -> list[Alert]:
        """A minute of publishing goes by; its mentions arrive at the minute's end."""
        start = self.clock.now
        labels = (
            [SentimentLabel.NEGATIVE] * negatives
            + [SentimentLabel.NEUTRAL] * neutral
            + [SentimentLabel.POSITIVE] * positive
        )
        step = 55 / max(len(labels), 1)
        batch = [scored(start + timedelta(seconds=i * step), label) for i, label in enumerate(labels)]
        self.clock.now = start + timedelta(minutes=1)
        return self.feed(batch)

    def quiet_hour(self) -> None:
        """One negative every five minutes among neutral chatter: an expected ~1 per window."""
        for m in range(60):
            self.minute(negatives=1 if m % 5 == 0 else 0)

    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "firing"]

    def resolved(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "resolved"]


HOSTILE = (
    "<!channel> <!here> <@U123> wake up! <http://evil.example|click> & also @here @channel "
    "@everyone *bold* _it_ ~strike~ `code` " + "long " * 2000
)


def make_alert(samples: tuple[ScoredMention, ...] | None = None, **fields: Any) -> Alert:
    start = T0
    if samples is None:
        samples = tuple(
            scored(start + timedelta(seconds=i), negative=0.9 - i / 100, author=f"user{i}", title=f"Post {i}")
            for i in range(3)
        )
    values: dict[str, Any] = dict(
        id=Alert.make_id("Acme", "negative-spike", start),
        brand="Acme",
        window_start=start,
        window_end=start + timedelta(minutes=5),
        observed=17,
        expected=1.2,
        total=40,
        negative_share=0.425,
        samples=samples,
        channel=None,
        created=start + timedelta(minutes=6),
    )
    values.update(fields)
    return Alert(**values)
