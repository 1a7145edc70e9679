"""The rapid-response story, end to end in one process.

A crisis builds on a watched brand; Slack (the loopback stand-in, through the
real slack_sdk client) gets one alert with buttons and a thread of updates;
nobody answers, so after the response time the incident escalates to the next
responder by mention; a signed button press acknowledges it, a forged and a
replayed one change nothing; the owner resolves it with a note through the
modal and the message shows it resolved.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

from alertstory import Story, oncall_rota
from slack_sdk import WebClient
from slack_server import TOKEN, fake_slack
from slackactions import SECRET, button, encode, press, send, signed, submission

from alerts.escalation import EscalationStage
from alerts.incidents import IncidentStore
from alerts.interactivity import InteractivityServer
from alerts.oncall import Roster
from alerts.outbox import Outbox
from alerts.response import Desk
from alerts.silences import SilenceStore
from alerts.slack import SlackNotifier
from alerts.stages import NotifyStage
from listener.config import OnCallConfig

ONCALL = OnCallConfig.model_validate(oncall_rota("#acme-escalations", admins=["U0BOSS"]))


class Desks:
    """Each stage gets its own connections to the same files, as in the monitor."""

    def __init__(self, tmp_path: Path, story: Story) -> None:
        self.tmp_path, self.story = tmp_path, story

    def __call__(self) -> Desk:
        return Desk(
            IncidentStore(self.tmp_path / "incidents.db"),
            SilenceStore(self.tmp_path / "silences.db"),
            Roster({"Acme": ONCALL}),
            clock=lambda: self.story.clock.now.timestamp(),
        )


def test_a_crisis_is_owned_escalated_acknowledged_and_resolved_in_slack(tmp_path: Path) -> None:
    story, desks = Story(tmp_path), None
    desks = Desks(tmp_path, story)
    with fake_slack() as slack:
        notifier = SlackNotifier(
            WebClient(token=TOKEN, base_url=slack.url, retry_handlers=[], timeout=5),
            {"Acme": "#acme-alerts"},
            buttons=True,
        )
        notify = NotifyStage(
            [notifier], sleep=lambda s: None, outbox=Outbox(tmp_path / "outbox.db"), desk=desks()
        )
        escalation = EscalationStage(desks(), notifier)
        endpoint = InteractivityServer(desks(), notifier, SECRET).start()
        try:
            # A quiet hour, then complaints build up, then double.
            story.quiet_hour()
            for negatives in [4] * 6 + [12] * 6:
                alerts = story.minute(negatives=negatives)
                notify.handle(alerts)
                escalation.handle(alerts)
            statuses = [a.status for a in story.alerts]
            assert statuses.count("firing") == 1 and statuses.count("update") >= 1

            incidents = IncidentStore(tmp_path / "incidents.db")
            (incident,) = incidents.find()
            assert incident.state == "open" and incident.responder == "Dana"
            first, *thread = slack.posted
            assert [b["block_id"] for b in first.body["blocks"] if b["type"] == "actions"] == [
                "listener.actions"
            ]
            assert thread and all(p.body["thread_ts"] == first.response["ts"] for p in thread)
            assert all(p.body["reply_broadcast"] in (False, "0", "false") for p in thread)

            # Nobody acknowledges within 15 minutes: Lee is mentioned in the thread and escalation channel.
            story.clock.now += timedelta(minutes=16)
            escalation.tick()
            escalations = [p for p in slack.posted if "<@U0LEE>" in p.body["text"]]
            assert {p.body["channel"] for p in escalations} == {"#acme-escalations", "#acme-alerts"}
            assert incidents.get(incident.id).level == 1  # type: ignore[union-attr]

            # Dana presses Acknowledge; a forged press and a replay of a real one do nothing.
            message = {"ts": first.response["ts"], "blocks": first.body["blocks"]}
            assert (
                press(endpoint.url, button("ack", incident.alert_id, "U0SAM", message), "wrong-secret") == 401
            )
            raw = encode(button("ack", incident.alert_id, "U0DANA", message))
            headers = signed(raw)
            assert send(endpoint.url, raw, headers) == 200
            assert send(endpoint.url, raw, headers) == 401
            assert send(endpoint.url, raw, signed(raw, stamp=int(time.time()) - 600)) == 401
            assert send(endpoint.url, raw, {}) == 401
            acked = incidents.get(incident.id)
            assert acked is not None and acked.state == "acknowledged" and acked.owner == "Dana"
            update = slack.calls("chat.update")[-1].body
            assert update["ts"] == first.response["ts"] and "Acknowledged* by Dana" in json.dumps(
                update["blocks"]
            )

            # Still unanswered time passes, but an owned incident does not escalate further.
            story.clock.now += timedelta(minutes=30)
            escalation.tick()
            assert len([p for p in slack.posted if "<@" in p.body["text"]]) == 2

            # Sam is not the owner: the modal refuses; Dana resolves with a note.
            assert press(endpoint.url, button("resolve", incident.alert_id, "U0SAM", message)) == 200
            assert press(endpoint.url, submission("U0SAM", slack, "I fixed it")) == 200
            assert incidents.get(incident.id).state == "acknowledged"  # type: ignore[union-attr]
            assert press(endpoint.url, button("resolve", incident.alert_id, "U0DANA", message)) == 200
            assert (
                press(endpoint.url, submission("U0DANA", slack, "Refunds issued; <!channel> apologised"))
                == 200
            )
            resolved = incidents.get(incident.id)
            assert resolved is not None and resolved.state == "resolved" and resolved.resolved_by == "Dana"
            final = slack.calls("chat.update")[-1].body
            assert "Resolved* by Dana" in json.dumps(final["blocks"])
            assert not [b for b in final["blocks"] if b["type"] == "actions"]
            assert any(b["type"] == "section" for b in final["blocks"])  # the alert's evidence is kept
            note = slack.posted[-1].body
            assert note["thread_ts"] == first.response["ts"] and "&lt;!channel&gt;" in note["text"]
            kinds = [e.kind for e in incidents.events(incident.id)]
            assert kinds[0] == "opened" and "escalated" in kinds and kinds[-1] == "resolved"
            assert kinds.index("escalated") < kinds.index("acknowledged")
        finally:
            endpoint.stop()
            notify.close()
            escalation.close()
