"""The notifier contract over every engine: the console, and Slack through the real slack_sdk
WebClient against the loopback Slack Web API."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import suppress
from typing import Any, TextIO

import pytest
from notifier_contract import Delivered, Delivery, Failure, NotifierContract
from slack_sdk import WebClient
from slack_server import TOKEN, FakeSlack, closed_port, fake_slack

from alerts.console import ConsoleNotifier
from alerts.notifier import Notifier
from alerts.slack import SlackNotifier


class FlushLog(io.StringIO):
    """A text stream that keeps each flushed stretch as one message (the console flushes per alert)."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []
        self._flushed = 0

    def flush(self) -> None:
        super().flush()
        text = self.getvalue()
        if len(text) > self._flushed:
            self.messages.append(text[self._flushed :])
            self._flushed = len(text)


class TestConsoleNotifierContract(NotifierContract):
    threads = False

    @pytest.fixture
    def stream(self) -> FlushLog:
        return FlushLog()

    @pytest.fixture
    def notifier(self, stream: FlushLog) -> Notifier:
        return ConsoleNotifier(stream)

    @pytest.fixture
    def delivered(self, stream: FlushLog) -> Delivered:
        return lambda: [Delivery(text) for text in stream.messages]

    @pytest.fixture
    def failures(self) -> Iterator[list[Failure]]:
        opened: list[TextIO] = []

        def closed_stream() -> Notifier:
            stream = io.StringIO()
            stream.close()
            return ConsoleNotifier(stream)

        def broken_pipe() -> Notifier:
            """Standard output piped into a reader that went away (`listener monitor | head`)."""
            read_end, write_end = os.pipe()
            os.close(read_end)
            stream = os.fdopen(write_end, "w", encoding="utf-8")
            opened.append(stream)
            return ConsoleNotifier(stream)

        yield [
            Failure("the stream is closed", closed_stream, retryable=False),
            Failure("the reader of the pipe went away", broken_pipe, retryable=False),
        ]
        for stream in opened:
            with suppress(OSError):
                stream.close()


def _texts(value: Any) -> list[str]:
    """Every `text` string of a Block Kit payload, however deeply nested."""
    if isinstance(value, dict):
        own = [value["text"]] if isinstance(value.get("text"), str) else []
        return own + [t for v in value.values() for t in _texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return []


def slack_notifier(url: str, token: str = TOKEN) -> SlackNotifier:
    client = WebClient(token=token, base_url=url, retry_handlers=[], timeout=5)
    return SlackNotifier(client, {"Acme": "#acme"})


class TestSlackNotifierContract(NotifierContract):
    threads = True
    live_markup = (
        "<!channel>",
        "<!here>",
        "<@U123>",
        "<http://evil.example",
        "<script",
        "<b>",
        "@here",
        "@channel",
        "@everyone",
        "*bold*",
        "_it_",
    )

    @pytest.fixture
    def slack(self) -> Iterator[FakeSlack]:
        with fake_slack() as server:
            yield server

    @pytest.fixture
    def notifier(self, slack: FakeSlack) -> Notifier:
        return slack_notifier(slack.url)

    @pytest.fixture
    def delivered(self, slack: FakeSlack) -> Delivered:
        def read() -> list[Delivery]:
            return [
                Delivery(
                    "\n".join([post.body["text"], *_texts(post.body.get("blocks", []))]),
                    post.body.get("thread_ts"),
                    post.body["channel"],
                )
                for post in slack.posted
            ]

        return read

    @pytest.fixture
    def failures(self, slack: FakeSlack) -> list[Failure]:
        def failing_next(how: str) -> Notifier:
            slack.fail_next(1, how)
            return slack_notifier(slack.url)

        unreachable = f"http://127.0.0.1:{closed_port()}/api/"
        return [
            Failure("429 with Retry-After: 1", lambda: failing_next("429"), retryable=True, retry_after=1.0),
            Failure("HTTP 500", lambda: failing_next("500"), retryable=True),
            Failure("ok:false ratelimited", lambda: failing_next("ratelimited"), retryable=True),
            Failure(
                "a wrong token: invalid_auth",
                lambda: slack_notifier(slack.url, "xoxb-wrong"),
                retryable=False,
            ),
            Failure("channel_not_found", lambda: failing_next("channel_not_found"), retryable=False),
            Failure("nothing listens on the port", lambda: slack_notifier(unreachable), retryable=True),
        ]
