"""The outbox: a restart does not post an alert twice, and the resolution lands in the spike's thread."""

from __future__ import annotations

from pathlib import Path

from alertstory import make_alert
from slack_sdk import WebClient
from slack_server import TOKEN, fake_slack

from alerts.outbox import Outbox
from alerts.slack import SlackNotifier
from alerts.stages import NotifyStage


def stage(url: str, path: Path) -> NotifyStage:
    client = WebClient(token=TOKEN, base_url=url, retry_handlers=[], timeout=5)
    return NotifyStage([SlackNotifier(client, {"Acme": "#acme"})], sleep=lambda s: None, outbox=Outbox(path))


def test_a_redelivered_alert_after_a_restart_is_not_posted_again(tmp_path: Path) -> None:
    alert = make_alert()
    with fake_slack() as slack:
        first = stage(slack.url, tmp_path / "outbox.db")
        first.handle([alert])
        first.close()
        restarted = stage(slack.url, tmp_path / "outbox.db")
        restarted.handle([alert])  # the bus redelivers the batch it had not committed
        assert len(slack.posted) == 1


def test_the_resolution_replies_in_the_firing_thread_even_after_a_restart(tmp_path: Path) -> None:
    fired = make_alert()
    with fake_slack() as slack:
        first = stage(slack.url, tmp_path / "outbox.db")
        first.handle([fired])
        first.close()
        stage(slack.url, tmp_path / "outbox.db").handle([fired.model_copy(update={"status": "resolved"})])
        firing, resolved = slack.posted
        assert "thread_ts" not in firing.body
        assert resolved.body["thread_ts"] == firing.response["ts"]
        assert resolved.body["reply_broadcast"] in (True, "1", "true")


def test_a_delivery_interrupted_mid_call_is_sent_again_rather_than_lost(tmp_path: Path) -> None:
    alert = make_alert()
    Outbox(tmp_path / "outbox.db").sending(alert.id, alert.status, 0)  # the process died here
    with fake_slack() as slack:
        stage(slack.url, tmp_path / "outbox.db").handle([alert])
        assert len(slack.posted) == 1
        assert Outbox(tmp_path / "outbox.db").state(alert.id, alert.status, 0) == "sent"


def test_a_rate_limited_post_is_recorded_once_it_goes_through(tmp_path: Path) -> None:
    alert = make_alert()
    with fake_slack() as slack:
        slack.fail_next(1, "429")
        stage(slack.url, tmp_path / "outbox.db").handle([alert])
        assert len(slack.posted) == 1
        assert Outbox(tmp_path / "outbox.db").ref(alert.id, "firing", 0) == slack.posted[0].response["ts"]
