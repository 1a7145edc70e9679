"""One outage, one spike, one incident: the on-call person is not paged twice for the same trouble.

An outage's tail wavers. Before, a window that dipped under `min_count` ended
the spike although it was still ten times the usual, and the next window fired
a new alert, a new Slack message and a new incident in the same second. Now a
spike ends only after its windows stayed calm for `hold` seconds, a return
within `cooldown` of its end continues it (same id, an update in its thread),
and its end says the spike ended: the incident is closed by a person.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alertstory import RULE, T0, Story, oncall_rota
from pydantic import ValidationError
from slack_sdk import WebClient
from slack_server import TOKEN, FakeSlack, fake_slack

from alerts.escalation import EscalationStage
from alerts.incidents import IncidentStore
from alerts.notify import NotifyStage
from alerts.oncall import Roster
from alerts.response import Desk
from alerts.silences import SilenceStore
from alerts.slack import SlackNotifier
from alerts.spike import SpikeDetector, WindowStats
from alerts.state import BrandState, read_spikes
from listener.config import AlertRule, OnCallConfig
from listener.records import Alert

# Per minute after the burst: one or two complaints, sometimes none. Each window holds 3 to 5
# negatives, around `min_count`, against under 0.6 expected for this quiet brand.
WAVERING_TAIL = [1, 1, 0, 1, 1, 2, 0, 1, 1, 1, 0, 2, 1, 1, 0, 1, 1, 1, 0, 2, 1, 1, 0, 1, 1]


def quiet_brand(story: Story) -> None:
    """An hour with one complaint every twelve minutes: about 0.5 expected per window."""
    for minute in range(60):
        story.minute(negatives=1 if minute % 12 == 0 else 0)


def outage(story: Story, minutes: int = 5, per_minute: int = 6) -> None:
    for _ in range(minutes):
        story.minute(negatives=per_minute)


def calm(story: Story, minutes: int) -> None:
    for _ in range(minutes):
        story.minute(negatives=0)


def first_wave(story: Story) -> Alert:
    """A quiet brand's outage that is over after twenty calm minutes; its firing alert."""
    quiet_brand(story)
    outage(story)
    calm(story, 20)
    assert statuses(story.alerts)[-1] == "resolved", "the first wave is over"
    [fired] = story.firing()
    return fired


def statuses(alerts: list[Alert]) -> list[str]:
    return [a.status for a in alerts]


def test_an_outage_tail_around_min_count_but_far_above_expected_stays_one_spike(tmp_path: Path) -> None:
    story = Story(tmp_path)
    quiet_brand(story)
    outage(story)
    [fired] = story.firing()
    for negatives in WAVERING_TAIL:
        story.minute(negatives=negatives)
        window = story.newest_window()
        assert window.observed >= 3 and window.expected < 0.6
        assert not story.detector.has_calmed(window), f"{window.observed} against {window.expected:.2f}"
    assert story.resolved() == [], "the tail is still many times the usual: the spike goes on"
    assert story.firing() == [fired], "and nothing fires a second time"

    calm(story, 20)
    [ended] = story.resolved()
    assert ended.id == fired.id
    assert {a.id for a in story.alerts} == {fired.id}


def test_four_against_point_four_is_not_calm_but_one_against_point_four_is() -> None:
    detector = SpikeDetector("Acme", RULE, BrandState(), clock=lambda: T0)
    tail = WindowStats(start=0, end=300, observed=4, total=20, expected=0.4)
    assert tail.observed < RULE.min_count
    assert not detector.has_calmed(tail), "under min_count, but ten times expected"
    assert detector.has_calmed(WindowStats(start=0, end=300, observed=1, total=20, expected=0.4))
    assert detector.has_calmed(WindowStats(start=0, end=300, observed=14, total=90, expected=10.0))


def test_a_short_lull_inside_an_outage_does_not_end_the_spike(tmp_path: Path) -> None:
    story = Story(tmp_path)
    quiet_brand(story)
    outage(story)
    calm(story, 8)  # calm windows for a few minutes, fewer than `hold`
    outage(story, minutes=4, per_minute=2)
    assert story.resolved() == [] and len(story.firing()) == 1

    calm(story, 20)
    assert statuses(story.alerts).count("resolved") == 1


def test_the_spike_ends_only_after_hold_seconds_of_calm(tmp_path: Path) -> None:
    rule = RULE.model_copy(update={"hold": 900.0})
    story = Story(tmp_path, rule)
    quiet_brand(story)
    outage(story)
    first_calm: float | None = None
    ended_at: float | None = None
    for _ in range(30):
        alerts = story.minute(negatives=0)
        window = story.newest_window()
        if first_calm is None and story.detector.has_calmed(window):
            first_calm = window.end
        if alerts:
            [ended] = alerts
            ended_at = ended.window_end.timestamp()
    assert first_calm is not None and ended_at == first_calm + 900.0


def chain(tmp_path: Path, slack: FakeSlack) -> tuple[NotifyStage, EscalationStage, Desk]:
    """Notify (Slack with buttons) and the incidents stage over one desk, as the monitor runs them;
    Acme has the stories' on-call rota (reminders every hour)."""
    desk = Desk(
        IncidentStore(tmp_path / "incidents.db"),
        SilenceStore(tmp_path / "silences.db"),
        Roster({"Acme": OnCallConfig.model_validate(oncall_rota("#acme-escalations"))}),
    )
    client = WebClient(token=TOKEN, base_url=slack.url, retry_handlers=[], timeout=5)
    notifier = SlackNotifier(client, {"Acme": "#acme"}, buttons=True, charts=False)
    return NotifyStage([notifier], sleep=lambda _: None, desk=desk), EscalationStage(desk), desk


def test_a_spike_back_within_the_cooldown_is_the_same_alert_thread_and_incident(tmp_path: Path) -> None:
    story = Story(tmp_path)
    with fake_slack() as slack:
        notify, incidents, desk = chain(tmp_path, slack)
        fired = first_wave(story)
        outage(story)  # back within minutes of its end
        calm(story, 20)
        back = story.alerts[statuses(story.alerts).index("resolved") + 1]
        for alert in story.alerts:
            notify.handle([alert])
            incidents.handle([alert])
            if alert is back:  # the spike is live again on the incident: reminders resume
                live = desk.incidents.by_alert(fired.id)
                assert live is not None and live.spike_ended_at is None and live.remind_at is not None

        assert story.firing() == [fired]
        assert {a.id for a in story.alerts} == {fired.id}, "one alert id for the whole outage"
        assert statuses(story.alerts).count("resolved") == 2
        assert back.status == "update" and back.revision > 0

        first, *replies = slack.posted
        assert "thread_ts" not in first.body or not first.body["thread_ts"]
        ts = first.response["ts"]
        assert len(replies) == len(story.alerts) - 1, "every end and return is posted once"
        assert all(r.body["thread_ts"] == ts for r in replies), "all in the first message's thread"
        ends = [r for r in replies if r.body["text"].startswith("Spike ended")]
        assert len(ends) == 2
        for message in ends:
            text = json.dumps(message.body["blocks"]) + message.body["text"]
            assert "Spike ended: Acme" in text and "stays open until someone resolves it" in text
            assert "Resolved" not in text

        [incident] = desk.incidents.find(brand="Acme")
        assert incident.alert_id == fired.id and incident.state == "open"
        kinds = [e.kind for e in desk.incidents.events(incident.id)]
        assert kinds[0] == "opened" and kinds.count("spike-ended") == 2 and "update" in kinds
        assert kinds.index("spike-ended") < kinds.index("spike-returned") < len(kinds) - 1
        # The dashboard's spike log shows it as one spike, ended at its second end.
        [mark] = read_spikes(story.path, "Acme", 0.0, float("inf"))
        assert mark.alert_id == fired.id and mark.ended is not None


def test_a_spike_back_after_the_cooldown_is_a_new_spike(tmp_path: Path) -> None:
    story = Story(tmp_path)
    first = first_wave(story)
    calm(story, int(RULE.cooldown // 60) + 5)
    outage(story)
    second = story.firing()[-1]
    assert len(story.firing()) == 2
    assert second.id != first.id and second.revision == 0


def test_an_ended_spike_is_forgotten_when_its_cooldown_is_over_even_if_nothing_fires(tmp_path: Path) -> None:
    # Kept past its cool-down, yesterday's spike barred today's slow climb from paging at all.
    story = Story(tmp_path)
    first_wave(story)
    assert story.detector.state.ended_spike is not None, "within the cool-down a return continues it"
    calm(story, int(RULE.cooldown // 60) + 5)
    assert story.detector.state.ended_spike is None


def test_the_cooldown_survives_a_restart(tmp_path: Path) -> None:
    story = Story(tmp_path)
    fired = first_wave(story)
    story.restart()
    before = len(story.alerts)
    outage(story)
    back = story.alerts[before]
    assert (back.id, back.status) == (fired.id, "update")
    assert story.firing() == [fired]


def test_hold_and_cooldown_scale_with_the_window_unless_given() -> None:
    assert (AlertRule().hold, AlertRule().cooldown) == (600.0, 1800.0)
    hourly = AlertRule(window="1h")
    assert (hourly.hold, hourly.cooldown) == (7200.0, 21600.0)
    given = AlertRule(window="1h", hold="15m", cooldown=0)
    assert (given.hold, given.cooldown) == (900.0, 0.0)
    assert AlertRule.model_validate(AlertRule(window="10m").model_dump()).hold == 1200.0
    for bad in ({"hold": "-5m"}, {"cooldown": "soon"}):
        with pytest.raises(ValidationError):
            AlertRule.model_validate(bad)
    with pytest.raises(ValidationError) as caught:
        AlertRule(window="later")
    assert [e["loc"] for e in caught.value.errors()] == [("window",)]


def test_state_saved_before_the_hold_and_cooldown_existed_still_loads() -> None:
    old = {
        "negative": {"5": 2},
        "total": {"5": 4},
        "samples": {},
        "spike_buckets": [5],
        "first_bucket": 1,
        "watermark": 400.0,
        "evaluated_through": 6,
        "open_spike": {"alert_id": "a1", "window_start": 0.0, "fired_at": 300.0, "peak": 6, "revision": 1},
    }
    state = BrandState.from_json(json.dumps(old))
    assert state.open_spike is not None and state.open_spike.calm_since is None
    assert state.ended_spike is None
    assert BrandState.from_json(state.to_json()) == state
