"""Two `detect` processes in one consumer group share the brands and one PostgreSQL state.

The brands' messages are keyed by brand, so the group gives each copy a
partition; yet every copy evaluates every brand on each batch and tick (a
quiet brand's spike must still end). Acme's crisis is therefore seen by both
copies, and exactly one firing alert may come of it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from stageprocs import Deployment, Timeline, partition_of, small_rule

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

BRANDS = ("Acme", "Globex", "Initech")


def test_two_detect_processes_split_the_brands_and_fire_one_alert_for_a_crisis(
    tmp_path: Path, kafka_bootstrap: str, postgres_server_url: str
) -> None:
    # Acme has a partition to itself; Globex and Initech share the other.
    assert partition_of("Acme") != partition_of("Globex") == partition_of("Initech")
    brands = [
        {"name": b, "queries": [b.lower()], "slack_channel": f"#{b.lower()}", "alert": small_rule()}
        for b in BRANDS
    ]
    deployment = Deployment(tmp_path, kafka_bootstrap, postgres_server_url, brands)
    assert "migrated" in deployment.cli("migrate")
    copies = [deployment.start("detect"), deployment.start("detect")]
    try:
        deployment.wait_healthy(copies)
        time.sleep(8)  # the group settles: joins on Tansu complete a few seconds apart

        timeline = Timeline()
        sent = deployment.publish(timeline.quiet(BRANDS))
        time.sleep(3)
        sent += deployment.publish(timeline.burst("Acme", 3, others=("Globex", "Initech")))
        firing = deployment.wait_for(
            "Acme's firing alert", lambda: [a for a in deployment.alerts() if a.status == "firing"]
        )
        # Time goes on: both copies take more batches and idle ticks, each evaluating Acme again.
        time.sleep(12)
        sent += deployment.publish(timeline.chatter(BRANDS))
        deployment.wait_for("every mention consumed", lambda: sum(c.consumed() for c in copies) >= sent)
        time.sleep(16)  # past the detectors' idle tick
        shares = [c.consumed() for c in copies]
        alerts = deployment.alerts()
    finally:
        failures = deployment.stop()

    assert [a.brand for a in firing] == ["Acme"]
    assert [(a.brand, a.id) for a in alerts if a.status == "firing"] == [("Acme", firing[0].id)]
    assert all(share > 0 for share in shares), f"each copy consumed part of the stream: {shares}"
    assert sum(shares) >= sent
    assert not failures, "\n".join(failures)
