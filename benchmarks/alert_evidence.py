"""What alert evidence costs: the detect stage per mention, the saved state, the chart.

    python benchmarks/alert_evidence.py [--minutes 180] [--per-minute 40]

One brand, a stream of scored mentions (a fifth negative, a burst at the end
so an alert fires and carries its evidence), through the real `DetectStage`
with its SQLite state. The baseline, measured in the same run on the same
mentions, is decoding them from their bus envelopes: the per-mention cost
every stage pays before it does anything. It also prints the saved state's
size and the time to draw the alert's 24-hour chart (first call includes
importing matplotlib).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alerts.chart import render_chart
from alerts.stages import DetectStage
from listener.config import AlertRule
from listener.records import Alert, ScoredMention, Sentiment, SentimentLabel, decode, encode

TEXTS = (
    "Acme delivery late again, support never answers",
    "Acme outage, the app is down, I want a refund",
    "Loving the new Acme headphones, great sound",
    "Acme statement about the outage and the refunds",
)
T0 = datetime(2024, 5, 1, tzinfo=UTC)


def stream(minutes: int, per_minute: int) -> list[list[ScoredMention]]:
    batches = []
    for m in range(minutes):
        batch = []
        for i in range(per_minute):
            burst = m >= minutes - 8
            label = SentimentLabel.NEGATIVE if burst or i % 5 == 0 else SentimentLabel.NEUTRAL
            published = T0 + timedelta(minutes=m, seconds=i * 55 / per_minute)
            batch.append(
                ScoredMention(
                    id=f"m{m}-{i}",
                    source="bench",
                    source_type="feed",
                    url=f"https://site{i % 7}.example/{m}/{i}",
                    site=f"site{i % 7}.example",
                    text=f"{TEXTS[1] if burst else TEXTS[(i + m) % len(TEXTS)]} #{m}-{i}",
                    published=published,
                    fetched=published,
                    engagement={"likes": (i * 7) % 50},
                    document_id=f"d{m}-{i}",
                    brand="Acme",
                    sentiment=Sentiment(
                        label=label,
                        negative=0.9 if label == "negative" else 0.1,
                        model_id="bench",
                        model_version="1",
                    ),
                )
            )
        batches.append(batch)
    return batches


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=int, default=180)
    parser.add_argument("--per-minute", type=int, default=40)
    args = parser.parse_args()
    batches = stream(args.minutes, args.per_minute)
    count = sum(len(b) for b in batches)
    envelopes = [[encode(m) for m in b] for b in batches]

    started = time.perf_counter()
    for batch in envelopes:
        [decode(e) for e in batch]
    codec = count / (time.perf_counter() - started)

    now = [T0]
    alerts: list[Alert] = []
    with tempfile.TemporaryDirectory() as tmp:
        # min_count above the steady 40 negatives a window: only the burst fires, not the cold start.
        rule = AlertRule(min_count=60)
        stage = DetectStage({"Acme": rule}, {"Acme": None}, Path(tmp) / "d.db", clock=lambda: now[0])
        started = time.perf_counter()
        for m, batch in enumerate(batches):
            now[0] = T0 + timedelta(minutes=m + 1)
            alerts += [o.record for o in stage.handle(batch) if isinstance(o.record, Alert)]
        elapsed = time.perf_counter() - started
        detector = stage.detector("Acme")
        assert detector is not None
        state_bytes = len(detector.state.to_json().encode())
        stage.close()
    print(
        f"detect stage: {count / elapsed:,.0f} mentions/s, {elapsed / len(batches) * 1000:.1f} ms per batch"
    )
    print(
        f"baseline (envelope decode): {codec:,.0f} mentions/s; detect costs {codec / (count / elapsed):.1f}x"
    )
    print(f"saved state: {state_bytes / 1024:.1f} KiB; alerts: {[a.status for a in alerts]}")
    firing = next((a for a in alerts if a.status == "firing"), None)
    if firing is not None:
        print(f"firing evidence: words {firing.top_terms}, sources {firing.top_sources}, mix {firing.mix}")
        for label in ("chart (first, imports matplotlib)", "chart (warm)"):
            started = time.perf_counter()
            png = render_chart(firing)
            print(f"{label}: {(time.perf_counter() - started) * 1000:.0f} ms, {len(png) / 1024:.1f} KiB PNG")


if __name__ == "__main__":
    main()
