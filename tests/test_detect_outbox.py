"""A spike decided just before a crash still reaches the on-call team.

The detect stage saves its counts and its open spike in the state database
before the runner publishes the alert. If the process dies in between, the
redelivered batch is already counted and the window already judged, so
without more care the alert would never be sent. The detector's outbox keeps
every alert it decided until the runner confirms it is on the bus.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from alertstory import RULE, Clock, Story, scored

from alerts.stages import DetectStage
from listener.errors import BusError
from listener.records import Alert, decode, encode
from pipelines.bus_sqlite import EmbeddedBus
from pipelines.runtime import StageRunner


class DiesBeforeAlertsArePublished:
    """The bus as a process sees it when it is killed right after detect committed its state."""

    def __init__(self, bus: EmbeddedBus) -> None:
        self.bus = bus

    def publish(self, topic: str, key: str, value: bytes) -> None:
        self.publish_many(topic, [(key, value)])

    def publish_many(self, topic: str, items: Sequence[tuple[str, bytes]]) -> None:
        if topic == "alerts":
            raise BusError("killed before the alert was published")
        self.bus.publish_many(topic, items)

    def __getattr__(self, name: str) -> object:
        return getattr(self.bus, name)  # everything else is the real bus


def alerts_on_the_bus(bus: EmbeddedBus) -> list[Alert]:
    found = [decode(m.value) for m in bus.read("alerts", 0, 1000)]
    return [a for a in found if isinstance(a, Alert)]


def test_an_alert_lost_between_saving_state_and_publishing_is_sent_after_the_restart(tmp_path: Path) -> None:
    story = Story(tmp_path)
    story.quiet_hour()
    bus = EmbeddedBus(tmp_path / "bus.db")
    start = story.clock.now
    burst = [scored(start + timedelta(seconds=15 * i)) for i in range(20)]  # four a minute, for 5 min
    story.clock.now = start + timedelta(minutes=5)
    bus.publish_many("mentions.scored", [(m.brand, encode(m)) for m in burst])

    dying = StageRunner(DiesBeforeAlertsArePublished(bus), story.stage, poll_timeout=0)  # type: ignore[arg-type]
    with pytest.raises(BusError):
        dying.run_once()
    assert alerts_on_the_bus(bus) == []
    assert story.stage.detector("Acme") is not None
    assert story.stage.detector("Acme").state.open_spike is not None, "the spike was decided and saved"  # type: ignore[union-attr]

    # The restarted process: the batch comes back (it was never committed) and is already counted.
    restarted = DetectStage(
        {"Acme": story.rule}, {"Acme": "#acme-alerts"}, story.path, clock=story.clock, redeliver_after=0
    )
    StageRunner(bus, restarted, poll_timeout=0).run_until_idle()
    firing = [a for a in alerts_on_the_bus(bus) if a.status == "firing"]
    assert len(firing) == 1, "the decided alert reaches the bus once the process is back"
    assert bus.committed("mentions.scored", "detect") == len(burst)

    # Confirmed now: later batches do not repeat it.
    story.clock.now += timedelta(minutes=1)
    StageRunner(bus, restarted, poll_timeout=0).run_once()
    restarted.handle([])
    restarted.after_commit()
    assert len([a for a in alerts_on_the_bus(bus) if a.status == "firing"]) == 1
    bus.close()


def test_an_alert_another_copy_is_still_publishing_is_not_repeated(tmp_path: Path) -> None:
    story = Story(tmp_path)
    story.quiet_hour()
    fired = []
    for _ in range(5):
        out = story.stage.handle([scored(story.clock.now + timedelta(seconds=s)) for s in range(0, 60, 15)])
        story.clock.now += timedelta(minutes=1)
        fired += [o.record for o in out if isinstance(o.record, Alert) and o.record.status == "firing"]
    assert len(fired) == 1  # decided, and not yet confirmed by this copy's runner
    other = DetectStage({"Acme": story.rule}, {"Acme": None}, story.path, clock=story.clock)
    assert [o.record for o in other.handle([]) if isinstance(o.record, Alert)] == []


def test_two_copies_busy_with_their_own_brands_leave_each_other_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After a rebalance each copy owns some brands: a batch locks and saves only the brands it
    has mentions of (others only when they are due for the clock), so copies do not take turns."""
    clock = Clock()
    rules = {"Acme": RULE, "Globex": RULE}
    acme_side, globex_side = (DetectStage(rules, {}, tmp_path / "d.sqlite", clock=clock) for _ in range(2))
    caplog.set_level(logging.INFO, logger="alerts.stages")
    for _ in range(12):  # a minute of traffic, a batch every five seconds, alternating copies
        clock.now += timedelta(seconds=5)
        acme_side.handle([scored(clock.now, brand="Acme")])
        acme_side.after_commit()
        globex_side.handle([scored(clock.now, brand="Globex")])
        globex_side.after_commit()
    reloads = [r for r in caplog.records if "changed elsewhere" in r.getMessage()]
    # Each copy evaluates the other's brand only when it is due for the clock (every idle_tick),
    # which costs each side at most two reloads then; locking every brand on every batch cost 44.
    periods = 60 // int(acme_side.idle_tick) + 1
    assert len(reloads) <= 2 * 2 * periods, [r.getMessage() for r in reloads]
    totals = DetectStage(rules, {}, tmp_path / "d.sqlite", clock=clock)
    for brand in rules:
        detector = totals.detector(brand)
        assert detector is not None and sum(detector.state.total.values()) == 12
