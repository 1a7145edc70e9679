"""The Slack notifier through the real slack_sdk WebClient against a loopback Slack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from alertstory import HOSTILE, T0, make_alert, scored
from pydantic import SecretStr
from slack_sdk import WebClient
from slack_server import TOKEN, FakeSlack, closed_port, fake_slack

from alerts.slack import ChannelLookup, SlackNotifier
from listener.config import BrandConfig, SlackConfig
from listener.errors import ConfigError, NotifierError


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with fake_slack() as server:
        yield server


def notifier_for(
    server: FakeSlack, channels: ChannelLookup | None = None, default: str | None = None
) -> SlackNotifier:
    client = WebClient(token=TOKEN, base_url=server.url, retry_handlers=[], timeout=5)
    return SlackNotifier(client, {"Acme": "#acme"} if channels is None else channels, default)


def all_text(body: dict[str, Any]) -> str:
    return json.dumps(body["blocks"], ensure_ascii=False) + str(body["text"])


def test_the_loopback_slack_answers_auth_test_like_slack(slack: FakeSlack) -> None:
    client = WebClient(token=TOKEN, base_url=slack.url)
    assert client.auth_test()["user_id"] == "U0001"
    [request] = slack.requests
    assert request.method == "auth.test" and request.headers["authorization"] == f"Bearer {TOKEN}"


def test_a_wrong_token_is_refused_and_not_retryable(slack: FakeSlack) -> None:
    client = WebClient(token="xoxb-wrong", base_url=slack.url, retry_handlers=[])
    with pytest.raises(NotifierError) as caught:
        SlackNotifier(client, {"Acme": "#acme"}).send(make_alert())
    assert not caught.value.retryable
    assert "invalid_auth" in str(caught.value)


def test_an_alert_posts_blocks_with_brand_counts_and_three_linked_samples(slack: FakeSlack) -> None:
    alert = make_alert()
    ts = notifier_for(slack).send(alert)
    [post] = slack.posted
    body = post.body
    assert ts == post.response["ts"]
    assert body["channel"] == "#acme"
    assert post.headers["authorization"] == f"Bearer {TOKEN}"
    assert body["link_names"] is False and body["unfurl_links"] is False and body["unfurl_media"] is False
    blocks = body["blocks"]
    assert blocks[0]["type"] == "header" and "Acme" in blocks[0]["text"]["text"]
    assert "*17*" in blocks[1]["text"]["text"] and "1.2" in blocks[1]["text"]["text"]
    assert "42%" in blocks[1]["text"]["text"]
    samples = [b for b in blocks[2:] if b["type"] == "section"]
    assert len(samples) == 3
    for i, block in enumerate(samples):
        mention = alert.samples[i]
        assert f"<{mention.url}|Post {i}>" in block["text"]["text"]
        assert f"user{i}" in block["text"]["text"]
    assert blocks[-1]["type"] == "context" and "UTC" in blocks[-1]["elements"][0]["text"]
    assert "Acme" in body["text"] and "17" in body["text"]


def test_hostile_mention_text_arrives_escaped_and_cannot_ping_or_forge_links(slack: FakeSlack) -> None:
    evil = scored(
        T0, text=HOSTILE, author="<!channel> @here", title="<http://evil.example|official statement>"
    )
    notifier_for(slack).send(make_alert(samples=(evil,)))
    [post] = slack.posted
    text = all_text(post.body)
    for forbidden in ("<!channel>", "<!here>", "<@U123>", "<http://evil.example"):
        assert forbidden not in text
    assert "&lt;!channel&gt;" in text and "&lt;@U123&gt;" in text
    assert "&lt;http://evil.example|click&gt;" in text
    assert " &amp; " in text
    for word in ("here", "channel", "everyone"):
        assert f"@{word}" not in text
        assert f"@\u200d{word}" in text
    assert "*bold*" not in text
    # The only link in the sample block is the mention's own URL.
    sample_text = post.body["blocks"][2]["text"]["text"]
    assert sample_text.count("<") == 1 and sample_text.count(">") == 1
    assert sample_text.startswith(f"1. <{evil.url}|&lt;http://evil.example|official statement&gt;>")
    for block in post.body["blocks"]:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
    assert "…" in sample_text


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "ftp://files.example/x", "slack://open", "https://ok.example/a b", None],
)
def test_only_http_links_become_slack_links(slack: FakeSlack, url: str | None) -> None:
    mention = scored(T0, url="https://placeholder.example/").model_copy(update={"url": url})
    notifier_for(slack).send(make_alert(samples=(mention,)))
    sample_text = slack.posted[0].body["blocks"][2]["text"]["text"]
    assert "<" not in sample_text


def test_a_url_with_a_pipe_cannot_smuggle_a_label(slack: FakeSlack) -> None:
    mention = scored(T0, url="https://ok.example/?q=1|pay here&x=<b>".replace(" ", "%20"))
    notifier_for(slack).send(make_alert(samples=(mention,)))
    sample_text = slack.posted[0].body["blocks"][2]["text"]["text"]
    assert "<https://ok.example/?q=1%7Cpay%20here&amp;x=%3Cb%3E|" in sample_text


def test_a_rate_limit_is_retryable_with_retry_after(slack: FakeSlack) -> None:
    slack.fail_next(1, "429")
    with pytest.raises(NotifierError) as caught:
        notifier_for(slack).send(make_alert())
    assert caught.value.retryable
    assert caught.value.retry_after == 1.0
    assert slack.posted == []


def test_a_server_error_is_retryable(slack: FakeSlack) -> None:
    slack.fail_next(1, "500")
    with pytest.raises(NotifierError) as caught:
        notifier_for(slack).send(make_alert())
    assert caught.value.retryable and caught.value.retry_after is None


@pytest.mark.parametrize("code", ["channel_not_found", "not_in_channel", "invalid_auth"])
def test_a_refusal_is_not_retryable_and_names_slacks_error(slack: FakeSlack, code: str) -> None:
    slack.fail_next(1, code)
    with pytest.raises(NotifierError) as caught:
        notifier_for(slack).send(make_alert())
    assert not caught.value.retryable
    assert code in str(caught.value)
    assert len(slack.requests) == 1


def test_an_unreachable_slack_is_retryable() -> None:
    client = WebClient(token=TOKEN, base_url=f"http://127.0.0.1:{closed_port()}/api/", retry_handlers=[])
    with pytest.raises(NotifierError) as caught:
        SlackNotifier(client, {"Acme": "#acme"}).send(make_alert())
    assert caught.value.retryable


def test_the_channel_comes_from_the_alert_then_the_brand_then_the_default(slack: FakeSlack) -> None:
    notifier_for(slack, channels={"Acme": "#acme"}).send(make_alert(channel="#from-alert"))
    notifier_for(slack, channels=lambda brand: None, default="#everything").send(make_alert())
    notifier_for(slack, channels={"acme": "#casefolded"}).send(make_alert())
    assert [p.body["channel"] for p in slack.posted] == ["#from-alert", "#everything", "#casefolded"]
    with pytest.raises(NotifierError) as caught:
        notifier_for(slack, channels={}).send(make_alert())
    assert not caught.value.retryable


def test_the_end_of_a_spike_says_the_spike_ended_not_that_anything_is_resolved(slack: FakeSlack) -> None:
    """The incident stays open until a person resolves it; the channel must not read otherwise."""
    notifier_for(slack).send(make_alert(status="resolved", observed=1, samples=()))
    body = slack.posted[0].body
    blocks = body["blocks"]
    assert blocks[0]["text"]["text"] == "Spike ended: Acme"
    assert [b["type"] for b in blocks] == ["header", "section", "context"]
    assert "resolved" not in json.dumps(blocks).casefold() and "resolved" not in body["text"].casefold()
    assert body["text"] == "Spike ended: the negative spike for Acme is over (1 in the window)"


def test_from_config_uses_base_url_and_no_silent_retries(slack: FakeSlack) -> None:
    config = SlackConfig(bot_token=SecretStr(TOKEN), base_url=slack.url, default_channel="#alerts")
    brands = [BrandConfig(name="Acme", queries=["acme"], slack_channel="#acme-team")]
    notifier = SlackNotifier.from_config(config, brands)
    assert notifier.client.retry_handlers == []
    slack.fail_next(1, "500")
    with pytest.raises(NotifierError):
        notifier.send(make_alert())
    assert len(slack.requests) == 1  # the client did not quietly try again
    notifier.send(make_alert())
    assert slack.posted[0].body["channel"] == "#acme-team"


def test_from_config_without_a_token_says_what_to_set() -> None:
    with pytest.raises(ConfigError, match="bot_token"):
        SlackNotifier.from_config(SlackConfig(), [])
