"""A responder reads *why* from the alert: the words, the sites, the mix, the loudest posts.

Acme's usual complaints are about late deliveries. Then an outage hits and
people want refunds, mostly on one forum; the alert must say "outage" and
"refund" (not "acme", not "delivery", not "the"), name the forum, show how
the window splits by sentiment, and put the most-shared post first.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

from alertstory import Story, scored
from slack_sdk import WebClient
from slack_server import TOKEN, fake_slack

from alerts.console import ConsoleNotifier
from alerts.slack import SlackNotifier, build_blocks
from listener.records import Alert, ScoredMention, SentimentLabel, decode, encode

NEG, NEU = SentimentLabel.NEGATIVE, SentimentLabel.NEUTRAL
HOSTILE_SOURCE = "forum <!channel> \x1b[2J"


def minute(story: Story, posts: list[tuple[SentimentLabel, str, str | None, int]]) -> list[Alert]:
    """One minute of posts (label, text, site, shares); they arrive at the minute's end."""
    start = story.clock.now
    batch: list[ScoredMention] = []
    for i, (label, text, site, shares) in enumerate(posts):
        mention = scored(start + timedelta(seconds=i * 55 / max(len(posts), 1)), label, text=text)
        fields: dict[str, object] = {"site": site, "engagement": {"shares": shares}}
        if site is None:
            fields["source"] = HOSTILE_SOURCE
        batch.append(mention.model_copy(update=fields))
    story.clock.now = start + timedelta(minutes=1)
    return story.feed(batch)


def crisis(story: Story) -> Alert:
    for m in range(60):
        usual = [(NEG, "Acme delivery late again", "shop.example", 0)] if m % 5 == 0 else []
        minute(story, [*usual, (NEU, "Acme delivery tracking page", "news.example", 0)])
    alerts: list[Alert] = []
    for m in range(6):
        posts = [(NEG, "Acme outage, the app is down, refund please", "forum.example", 1) for _ in range(4)]
        posts.append((NEG, "Acme delivery late and now an outage, refund", None, 0))
        loud = 500 if m == 0 else 3
        posts.append((NEG, "Acme outage ruined my weekend, refund now", "forum.example", loud))
        posts.append((NEU, "Acme statement about the outage", "news.example", 0))
        alerts += minute(story, posts)
    (firing,) = [a for a in alerts if a.status == "firing"]
    return firing


def test_the_alert_names_the_words_sites_mix_and_loudest_post(tmp_path: Path) -> None:
    alert = crisis(Story(tmp_path))

    terms = [term for term, _ in alert.top_terms]
    assert set(terms[:2]) == {"outage", "refund"}
    assert "acme" not in terms and "the" not in terms and "now" not in terms
    assert "delivery" not in terms[:2]  # the everyday complaint explains nothing new
    counts = dict(alert.top_terms)
    assert counts["outage"] == alert.observed  # every negative in the window says it

    assert alert.top_sources[0][0] == "forum.example"
    assert HOSTILE_SOURCE in dict(alert.top_sources)  # a mention without a site counts by source
    assert sum(n for _, n in alert.top_sources) == alert.observed

    assert alert.mix["negative"] == alert.observed
    assert alert.mix["neutral"] == alert.total - alert.observed

    shares = [m.engagement["shares"] for m in alert.samples]
    assert shares == sorted(shares, reverse=True) and shares[0] == 500
    assert all(m.url and m.url.startswith("https://") for m in alert.samples)


def test_evidence_reaches_the_terminal_and_slack_escaped(tmp_path: Path) -> None:
    alert = crisis(Story(tmp_path))

    out = io.StringIO()
    ConsoleNotifier(out).send(alert)
    text = out.getvalue()
    assert "words:" in text and f"outage ({alert.top_terms[0][1]})" in text
    assert "forum.example" in text and "engagement 500" in text
    assert "\x1b" not in text  # the source name's escape sequence never reaches the terminal

    with fake_slack() as slack:
        client = WebClient(token=TOKEN, base_url=slack.url, retry_handlers=[])
        notifier = SlackNotifier(client, {"Acme": "#a"})
        notifier.send(alert)
        posted = json.dumps(slack.posted[0].body["blocks"])
    assert "*Words*" in posted and "outage" in posted and "*Sources*" in posted
    assert "&lt;!channel&gt;" in posted and "<!channel>" not in posted
    assert "negative" in posted and "neutral" in posted


def test_an_alert_from_before_evidence_still_decodes(tmp_path: Path) -> None:
    alert = crisis(Story(tmp_path))
    envelope = json.loads(encode(alert))
    for field in ("mix", "top_terms", "top_sources", "history"):
        del envelope["data"][field]
    old = decode(json.dumps(envelope).encode())
    assert isinstance(old, Alert) and old.top_terms == () and old.mix == {} and old.history == ()
    assert build_blocks(old)  # and it still renders
    assert decode(encode(alert)) == alert


def test_evidence_survives_a_restart(tmp_path: Path) -> None:
    story = Story(tmp_path)
    for m in range(60):
        minute(story, [(NEG, "Acme delivery late", "shop.example", 0)] if m % 5 == 0 else [])
    story.restart()
    alerts: list[Alert] = []
    for _ in range(6):
        alerts += minute(story, [(NEG, "Acme outage, refund", "forum.example", 0) for _ in range(6)])
    firing = [a for a in alerts if a.status == "firing"]
    assert firing and firing[0].top_terms[0][0] in {"outage", "refund"}
    assert firing[0].history and firing[0].history[-1].observed == firing[0].observed
