"""The alert arrives with a picture: the brand's recent windows against the expected band.

Two quiet hours, then a crisis: the firing alert's Slack message gets a PNG in
its thread through slack_sdk's `files_upload_v2` (three calls against the
loopback stand-in). When the upload fails, the alert is still posted, recorded
as sent, and the failure is logged; nothing is posted twice.
"""

from __future__ import annotations

import io
import itertools
import logging
from pathlib import Path

import pytest
from alertstory import Story
from matplotlib.image import imread
from slack_sdk import WebClient
from slack_server import TOKEN, FakeSlack, fake_slack

from alerts.chart import CHART_SIZE
from alerts.outbox import Outbox
from alerts.slack import SlackNotifier
from alerts.stages import NotifyStage
from listener.records import Alert

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def crisis(story: Story) -> Alert:
    story.quiet_hour()
    story.quiet_hour()
    for _ in range(6):
        story.minute(negatives=6)
    (firing,) = story.firing()
    return firing


def notify(slack: FakeSlack, tmp_path: Path, alert: Alert) -> NotifyStage:
    client = WebClient(token=TOKEN, base_url=slack.url, retry_handlers=[], timeout=5)
    stage = NotifyStage(
        [SlackNotifier(client, {"Acme": "#acme-alerts"})],
        sleep=lambda s: None,
        outbox=Outbox(tmp_path / "o.db"),
    )
    stage.handle([alert])
    return stage


def test_the_detector_supplies_its_recent_windows_from_persisted_state(tmp_path: Path) -> None:
    story = Story(tmp_path)
    alert = crisis(story)
    window = story.rule.window
    ends = [p.end.timestamp() for p in alert.history]
    assert len(ends) >= 2 * 3600 // window  # two hours of five-minute windows
    assert all(b - a == window for a, b in itertools.pairwise(ends[:-1]))
    assert alert.history[-1].observed == alert.observed and alert.history[-1].end == alert.window_end
    assert all(p.threshold > p.expected for p in alert.history)  # the band has width
    story.restart()
    assert [p.end for p in story.detector.chart_series()][: len(ends) - 1] == [p.end for p in alert.history][
        :-1
    ]


def test_a_png_of_the_last_day_lands_in_the_alerts_thread(tmp_path: Path) -> None:
    alert = crisis(Story(tmp_path))
    with fake_slack() as slack:
        notify(slack, tmp_path, alert).close()
        (post,) = slack.posted
        (chart,) = slack.files
    assert chart.channel == "#acme-alerts" and chart.thread_ts == post.response["ts"]
    assert chart.data.startswith(PNG_MAGIC)
    height, width = imread(io.BytesIO(chart.data)).shape[:2]
    assert (width, height) == CHART_SIZE
    methods = [r.method for r in slack.requests]
    assert methods == ["chat.postMessage", "files.getUploadURLExternal", "files.completeUploadExternal"]


def test_a_failed_chart_never_holds_back_or_repeats_the_alert(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    alert = crisis(Story(tmp_path))
    with fake_slack() as slack, caplog.at_level(logging.ERROR, logger="alerts.slack"):
        slack.fail_next(1, "500", method="files.getUploadURLExternal")
        notify(slack, tmp_path, alert).close()
        assert len(slack.posted) == 1 and slack.files == []
        assert "chart for alert" in caplog.text
        notify(slack, tmp_path, alert).close()  # redelivered after a restart: already sent
        assert len(slack.posted) == 1
    assert Outbox(tmp_path / "o.db").state(alert.id, "firing", 0) == "sent"
