"""A responder reads an alert and sees at once whether the spike is one article syndicated
to many sites (answer the article) or many separate complaints (answer the people)."""

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
WIRE = (
    "Acme broadband outage leaves thousands of homes without internet for a second day, "
    "the company says engineers are still working on a fix and customers may claim a refund"
)
SITES = ["daily.example", "herald.example", "courier.example", "gazette.example", "post.example"]
COMPLAINTS = [
    "Acme charged me twice this month and nobody answers the phone",
    "my Acme router keeps rebooting every hour since the update",
    "Acme cancelled my installation appointment without telling me",
    "waited forty minutes in the Acme shop queue for nothing",
    "Acme billing page shows an error whenever I try to pay",
    "the Acme app logged me out and now my password does not work",
    "technician from Acme never showed up, third time this week",
    "Acme sold me a plan that is not available at my address",
    "why does Acme throttle streaming every evening after eight",
    "Acme customer service hung up on me mid sentence",
    "Acme took my deposit and still has not shipped the modem",
    "the Acme contract renewal doubled my price without notice",
]


def post(story: Story, at: timedelta, text: str, site: str, label: SentimentLabel = NEG) -> ScoredMention:
    mention = scored(story.clock.now + at, label, text=text, url=f"https://{site}/{abs(hash(text)) % 9999}")
    return mention.model_copy(update={"site": site})


def quiet_hour(story: Story) -> None:
    for m in range(60):
        batch = [post(story, timedelta(seconds=5), "Acme store opening hours", "news.example", NEU)]
        if m % 10 == 0:
            batch.append(post(story, timedelta(seconds=9), COMPLAINTS[(m // 10) % 12], "forum.example"))
        story.clock.now += timedelta(minutes=1)
        story.feed(batch)


def spike(story: Story, minutes: int, per_minute: list[tuple[str, str]]) -> Alert:
    """`minutes` of the same kind of posts; the first firing alert."""
    alerts: list[Alert] = []
    for m in range(minutes):
        batch = [
            post(story, timedelta(seconds=1 + i), text.format(m=m), site)
            for i, (text, site) in enumerate(per_minute)
        ]
        story.clock.now += timedelta(minutes=1)
        alerts += story.feed(batch)
    firing = [a for a in alerts if a.status == "firing"]
    assert firing, "the spike must fire"
    return firing[0]


def syndication(m: int) -> list[tuple[str, str]]:
    """Each minute the wire story lands on every site (lightly edited), and one person complains."""
    copies = [(f"{site.split('.')[0].title()} reports: {WIRE}", site) for site in SITES]
    return [*copies, (COMPLAINTS[m % len(COMPLAINTS)], "forum.example")]


def test_one_article_on_many_sites_reads_as_one_story(tmp_path: Path) -> None:
    story = Story(tmp_path)
    quiet_hour(story)
    alerts: list[Alert] = []
    for m in range(6):
        batch = [post(story, timedelta(seconds=1 + i), t, s) for i, (t, s) in enumerate(syndication(m))]
        story.clock.now += timedelta(minutes=1)
        alerts += story.feed(batch)
    alert = next(a for a in alerts if a.status == "firing")

    top = alert.top_stories[0]
    assert WIRE in top.text
    assert {site for site, _ in top.sites} == set(SITES), "every syndicating site is named"
    assert top.members == sum(n for _, n in top.sites)
    # The rest of the window's negatives are separate complaints: one story each.
    assert alert.story_count == 1 + (alert.observed - top.members)
    assert all(s.members == 1 for s in alert.top_stories[1:])
    assert top.members > alert.observed / 2


def test_many_different_complaints_read_as_many_stories(tmp_path: Path) -> None:
    story = Story(tmp_path)
    quiet_hour(story)
    alerts: list[Alert] = []
    for m in range(6):
        texts = COMPLAINTS[2 * m : 2 * m + 2]
        batch = [post(story, timedelta(seconds=1 + i), t, "forum.example") for i, t in enumerate(texts)]
        story.clock.now += timedelta(minutes=1)
        alerts += story.feed(batch)
    alert = next(a for a in alerts if a.status == "firing")

    assert alert.story_count == alert.observed
    assert all(s.members == 1 for s in alert.top_stories)

    out = io.StringIO()
    ConsoleNotifier(out).send(alert)
    assert f"stories:  {alert.observed} different complaints, no shared story" in out.getvalue()


def test_stories_come_first_in_the_terminal_and_slack_escaped(tmp_path: Path) -> None:
    story = Story(tmp_path)
    quiet_hour(story)
    hostile = "<!channel> *Acme* outage \x1b[2J <https://evil.example|click> " + WIRE
    per_minute = [(hostile, site) for site in SITES[:4]] + [(COMPLAINTS[0] + " {m}", "forum.example")]
    alert = spike(story, 6, per_minute)
    assert alert.top_stories[0].members > 1

    out = io.StringIO()
    ConsoleNotifier(out).send(alert)
    text = out.getvalue()
    assert "\x1b" not in text
    assert text.index("stories:") < text.index("mix:") < text.index("words:")
    assert f"{alert.top_stories[0].members} mentions on 4 sites" in text

    with fake_slack() as slack:
        client = WebClient(token=TOKEN, base_url=slack.url, retry_handlers=[])
        SlackNotifier(client, {"Acme": "#a"}).send(alert)
        blocks = slack.posted[0].body["blocks"]
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    first_evidence = texts[1]
    assert first_evidence.startswith("*Stories*")
    assert "&lt;!channel&gt;" in first_evidence and "<!channel>" not in json.dumps(blocks)
    assert "<https://evil.example|click>" not in json.dumps(blocks)


def test_stories_survive_a_restart_and_old_alerts_still_decode(tmp_path: Path) -> None:
    story = Story(tmp_path)
    quiet_hour(story)
    early = ["early.example", "first.example"]
    assert not story.feed([post(story, timedelta(seconds=1 + i), WIRE, site) for i, site in enumerate(early)])
    story.clock.now += timedelta(minutes=1)
    story.restart()
    alert = spike(story, 4, syndication(0)[:-1])
    top = alert.top_stories[0]
    assert set(early) <= {site for site, _ in top.sites}, "copies from before the restart still count"
    assert top.members == alert.observed and alert.story_count == 1

    envelope = json.loads(encode(alert))
    for field in ("top_stories", "story_count"):
        del envelope["data"][field]
    old = decode(json.dumps(envelope).encode())
    assert isinstance(old, Alert) and old.top_stories == () and old.story_count == 0
    assert not any(b.get("text", {}).get("text", "").startswith("*Stories*") for b in build_blocks(old))
    assert decode(encode(alert)) == alert
