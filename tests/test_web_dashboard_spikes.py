"""The dashboard marks every spike the detector found on the volume chart, incident or not.

A real detect stage runs over the data dir's detector file (its clock a few
hours back, a minute per tick); no notify stage runs, so no incident exists,
and the chart must still show the spike.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from alerts.stages import DetectStage
from listener.config import AlertRule
from tests.alertstory import Clock, Story
from tests.webapp import WebWorld, make_world

HOSTILE_RULE = '<script>window.__x=1</script>"spike'


@pytest.fixture
def world(tmp_path: Path) -> Iterator[WebWorld]:
    yield from make_world(tmp_path)


def spike_then_calm(world: WebWorld, *, resolve: bool) -> Story:
    rule = AlertRule(name=HOSTILE_RULE, bucket=60, baseline=3600, window=300, min_count=5)
    story = Story(world.config.data_dir, rule, clock=Clock(datetime.now(UTC) - timedelta(hours=3)))
    story.stage = DetectStage(
        {"Acme": rule}, {"Acme": None}, world.config.data_dir / "detector.db", clock=story.clock
    )
    story.quiet_hour()
    for _ in range(4):
        story.minute(negatives=8)
    for _ in range(30 if resolve else 0):
        story.minute()
    assert len(story.firing()) == 1 and len(story.resolved()) == int(resolve)
    return story


def test_a_spike_without_an_incident_is_shaded_on_the_chart(world: WebWorld) -> None:
    spike_then_calm(world, resolve=True)
    analyst: TestClient = world.user("ann", "viewer")
    assert world.client().app.state.incidents.find(None, limit=10) == []  # type: ignore[attr-defined]
    html = analyst.get("/dashboard", params={"window": "6h"}).text
    assert html.count('<g class="spike">') == 1
    assert "spike (resolved, " in html and "negative against" in html
    assert "red bands" in html  # the caption says what the band means
    assert "<script>window.__x" not in html and "&lt;script&gt;window.__x" in html

    api = analyst.get("/api/dashboard/Acme", params={"window": "6h"}).json()
    (spike,) = api["spikes"]
    assert spike["end"] is not None and spike["peak"] >= 8 and spike["rule"] == HOSTILE_RULE
    # Outside the window it is not drawn.
    assert analyst.get("/api/dashboard/Acme", params={"window": "1h"}).json()["spikes"] == []


def test_an_open_spike_runs_to_the_right_edge(world: WebWorld) -> None:
    spike_then_calm(world, resolve=False)
    analyst = world.user("ann", "viewer")
    (spike,) = analyst.get("/api/dashboard/Acme", params={"window": "24h"}).json()["spikes"]
    assert spike["end"] is None
    html = analyst.get("/dashboard", params={"window": "24h"}).text
    assert "spike (open, " in html


def test_no_detector_file_yet_means_no_spikes(world: WebWorld) -> None:
    analyst = world.user("ann", "viewer")
    assert analyst.get("/api/dashboard/Acme").json()["spikes"] == []
    assert not (world.config.data_dir / "detector.db").exists()  # reading never creates it
