"""The detect and notify stages, and the console notifier, as the runtime would drive them."""

from __future__ import annotations

import io
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from alertstory import HOSTILE, RULE, T0, Clock, Story, make_alert, scored
from slack_sdk import WebClient
from slack_server import TOKEN, closed_port, fake_slack

from alerts.console import ConsoleNotifier
from alerts.slack import SlackNotifier
from alerts.stages import DetectStage, NotifyStage
from listener.errors import NotifierError
from listener.records import Alert, decode, encode


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def slack_notifier(url: str) -> SlackNotifier:
    return SlackNotifier(
        WebClient(token=TOKEN, base_url=url, retry_handlers=[], timeout=5), {"Acme": "#acme"}
    )


def test_notify_waits_out_a_rate_limit_then_posts_exactly_once() -> None:
    with fake_slack() as slack:
        slack.fail_next(1, "429")
        sleeps = Sleeps()
        stage = NotifyStage([slack_notifier(slack.url)], sleep=sleeps)
        assert stage.handle([make_alert()]) == []
        assert sleeps.waits == [1.0]
        assert [r.status for r in slack.requests] == [429, 200]
        assert len(slack.posted) == 1


def test_notify_does_not_retry_a_missing_channel_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    with fake_slack() as slack:
        slack.fail_next(1, "channel_not_found")
        sleeps = Sleeps()
        stage = NotifyStage([slack_notifier(slack.url)], sleep=sleeps)
        with caplog.at_level(logging.ERROR), pytest.raises(NotifierError) as caught:
            stage.handle([make_alert()])
        assert not caught.value.retryable
        assert sleeps.waits == []
        assert len(slack.requests) == 1
        assert "channel_not_found" in caplog.text and "not retrying" in caplog.text


def test_notify_backs_off_exponentially_from_an_unreachable_slack_then_gives_up() -> None:
    sleeps = Sleeps()
    stage = NotifyStage([slack_notifier(f"http://127.0.0.1:{closed_port()}/api/")], sleep=sleeps, attempts=4)
    with pytest.raises(NotifierError) as caught:
        stage.handle([make_alert()])
    assert caught.value.retryable
    assert sleeps.waits == [1.0, 2.0, 4.0]


def test_notify_recovers_from_server_errors() -> None:
    with fake_slack() as slack:
        slack.fail_next(2, "500")
        sleeps = Sleeps()
        NotifyStage([slack_notifier(slack.url)], sleep=sleeps).handle([make_alert()])
        assert sleeps.waits == [1.0, 2.0]
        assert len(slack.posted) == 1


def test_the_same_alert_is_not_posted_twice_but_its_end_is() -> None:
    with fake_slack() as slack:
        stage = NotifyStage([slack_notifier(slack.url)], sleep=Sleeps())
        alert = make_alert()
        stage.handle([alert])
        stage.handle([decode(encode(alert))])  # redelivered by the bus
        stage.handle([alert.model_copy(update={"status": "resolved", "samples": ()})])
        assert len(slack.posted) == 2
        assert slack.posted[1].body["blocks"][0]["text"]["text"].startswith("Spike ended")


def test_a_failed_notifier_does_not_resend_through_the_one_that_worked() -> None:
    with fake_slack() as slack:
        out = io.StringIO()
        broken = slack_notifier(f"http://127.0.0.1:{closed_port()}/api/")
        stage = NotifyStage(
            [ConsoleNotifier(out), slack_notifier(slack.url), broken], sleep=Sleeps(), attempts=1
        )
        alert = make_alert()
        for _ in range(2):  # the runtime retries the batch
            with pytest.raises(NotifierError):
                stage.handle([alert])
        assert out.getvalue().count("NEGATIVE SPIKE") == 1
        assert len(slack.posted) == 1


def test_the_console_shows_the_evidence_without_hostile_escapes() -> None:
    evil = scored(
        T0,
        text="\x1b[2J\x1b[31mRESOLVED, all fine\x1b[0m\x1b]0;pwned\x07 really\r\nbad\x9b1m service "
        + HOSTILE,
        author="\x1b[1mroot\x1b[0m",
        url="https://forum.example/t/1",
    )
    out = io.StringIO()
    ConsoleNotifier(out).send(make_alert(samples=(evil, *make_alert().samples[:2])))
    text = out.getvalue()
    assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text and "\r" not in text
    assert "Acme" in text and "17 negative / 40 total" in text and "1.2" in text and "42%" in text
    assert "2024-05-01 12:00 – 12:05 UTC" in text
    assert "https://forum.example/t/1" in text
    assert "root" in text and "really bad" in text
    sample_lines = [line for line in text.splitlines() if line.lstrip().startswith("[")]
    assert len(sample_lines) == 3
    assert all(len(line) < 300 for line in text.splitlines())


def test_detect_ignores_brands_without_a_rule(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    stage = DetectStage({"Acme": RULE}, {"Acme": None}, tmp_path / "d.sqlite", clock=clock)
    with caplog.at_level(logging.DEBUG, logger="alerts.stages"):
        outputs = stage.handle([scored(T0, brand="Globex") for _ in range(50)])
    assert outputs == []
    assert "Globex" in caplog.text
    assert stage.detector("Globex") is None


def test_detected_spikes_flow_to_slack_and_the_console(tmp_path: Path) -> None:
    story = Story(tmp_path)
    story.quiet_hour()
    outputs = []
    for _ in range(5):
        start = story.clock.now
        batch = [scored(start + timedelta(seconds=10 * i)) for i in range(4)]
        story.clock.now = start + timedelta(minutes=1)
        outputs.extend(story.stage.handle(batch))
    [output] = outputs
    assert output.topic == "alerts" and output.key == "Acme"
    assert isinstance(output.record, Alert)
    with fake_slack() as slack:
        out = io.StringIO()
        NotifyStage([ConsoleNotifier(out), slack_notifier(slack.url)], sleep=Sleeps()).handle(
            [decode(encode(output.record))]
        )
        [post] = slack.posted
        assert post.body["channel"] == "#acme-alerts"
        evidence = ("*Sources*", "*Stories*")
        samples = [
            b
            for b in post.body["blocks"]
            if "news.example" in str(b) and not any(e in str(b) for e in evidence)
        ]
        assert len(samples) == 3
        assert "NEGATIVE SPIKE Acme" in out.getvalue()


def test_an_update_on_the_console_reads_as_the_same_spike_not_a_new_one() -> None:
    out = io.StringIO()
    ConsoleNotifier(stream=out).send(make_alert(status="update", revision=1))
    text = out.getvalue()
    assert text.startswith("STILL RISING Acme:")
    assert "NEGATIVE SPIKE" not in text
