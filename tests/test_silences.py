"""A muted brand's spike is neither posted nor opened as an incident, and neither is its end."""

from __future__ import annotations

from pathlib import Path

from alertstory import T0, make_alert
from slack_sdk import WebClient
from slack_server import TOKEN, fake_slack

from alerts.escalation import EscalationStage
from alerts.incidents import IncidentStore
from alerts.oncall import Roster
from alerts.response import Desk
from alerts.silences import SilenceStore
from alerts.slack import SlackNotifier
from alerts.stages import NotifyStage


def desk(tmp_path: Path, now: float) -> Desk:
    return Desk(
        IncidentStore(tmp_path / "incidents.db"),
        SilenceStore(tmp_path / "silences.db"),
        Roster({}),
        lambda: now,
    )


def test_a_silenced_spike_is_not_posted_and_opens_no_incident_until_the_silence_expires(
    tmp_path: Path,
) -> None:
    now = T0.timestamp()
    desk(tmp_path, now).silences.add("acme", 3600, now=now - 60, by="Dana", reason="planned outage")
    muted = make_alert()
    later = make_alert(id="later", created=T0.replace(hour=T0.hour + 2))
    with fake_slack() as slack:
        client = WebClient(token=TOKEN, base_url=slack.url, retry_handlers=[], timeout=5)
        notify = NotifyStage(
            [SlackNotifier(client, {"Acme": "#acme"})], sleep=lambda s: None, desk=desk(tmp_path, now)
        )
        incidents = EscalationStage(desk(tmp_path, now))
        for batch in ([muted], [muted.model_copy(update={"status": "resolved"})], [later]):
            notify.handle(batch)
            incidents.handle(batch)
        assert len(slack.posted) == 1 and "thread_ts" not in slack.posted[0].body
        assert [i.alert_id for i in IncidentStore(tmp_path / "incidents.db").find()] == ["later"]
