"""One viral post is one thing to respond to: copies across sources fold into a story."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from fixture_server import FIXTURES

from listener.demo import texts
from listener.demo.world import build_world
from listener.records import Mention, ScoredMention, Sentiment, SentimentLabel, document_id
from listener.stages import IndexStage
from listener.stories import StoryIndex, similarity
from pipelines.store_sqlite import EmbeddedStore

T0 = datetime(2025, 11, 20, 14, 0, tzinfo=UTC)


def mention(text, *, source="social", minutes=0, brand="Zephyro Fiber", t0=T0, **extra) -> Mention:
    doc = document_id(source, f"{text}|{minutes}")
    when = t0 + timedelta(minutes=minutes)
    return Mention(id=doc, document_id=doc, brand=brand, source=source, source_type="feed", text=text,
                   published=when, fetched=when, **extra)  # fmt: skip


def test_the_demo_worlds_syndicated_article_is_one_story_and_distinct_complaints_stay_apart(tmp_path):
    world = build_world(seed=7, t0=1_763_600_000)
    copies = [i for i in world.items if texts.SYNDICATED_STORY[0] in i.text]
    assert len(copies) == len(texts.SYNDICATION_OUTLETS)
    others = [i for i in world.items if i.channel == "news" and i.phase == "crisis" and i not in copies]
    index = StoryIndex(tmp_path / "stories.db")
    story_ids = {index.add(mention(i.text, source=f"news-{n}")) for n, i in enumerate(copies)}
    assert len(story_ids) == 1
    (story,) = [index.get(s) for s in story_ids]
    assert story is not None and story.members == len(copies)
    assert {index.add(mention(i.text, source="news")) for i in others}.isdisjoint(story_ids)


def test_reposts_and_quotes_across_sources_join_with_reach_and_first_seen(tmp_path):
    index = StoryIndex(tmp_path / "stories.db")
    original = "zephyro fiber is down AGAIN. third time this week, support hung up on me"
    first = index.add(mention(original, source="bsky", minutes=5, engagement={"likes": 51, "reposts": 18}))
    assert index.add(mention(f"RT @nightowl: {original}", source="masto", minutes=9)) == first
    assert index.add(mention(f"So true. {original} Same in Millbrook.", source="reddit", minutes=2)) == first
    other = index.add(mention("Got billed twice by Zephyro this month, anyone else?", minutes=3))
    assert other != first
    top = index.stories("Zephyro Fiber")
    assert [(s.id, s.members) for s in top] == [(first, 3), (other, 1)]
    assert top[0].reach == (1 + 51 + 18) + 1 + 1
    assert top[0].first_seen == T0 + timedelta(minutes=2)
    assert top[0].representative == original


def test_adding_again_changes_nothing_and_a_restart_keeps_joining_running_stories(tmp_path):
    path = tmp_path / "stories.db"
    text = "Zephyro Fiber confirms core network failure, promises bill credits to customers in Eastgate today"
    first = StoryIndex(path)
    now = datetime.now(UTC)  # stories are reloaded for the last few days only
    m = mention(text, t0=now)
    story = first.add(m)
    assert first.add(m) == story and first.get(story).members == 1  # type: ignore[union-attr]
    first.close()
    again = StoryIndex(path)
    assert again.add(mention(f"(Valley Daily) {text}", source="news", minutes=30, t0=now)) == story
    assert again.get(story).members == 2  # type: ignore[union-attr]


def test_brands_never_share_a_story(tmp_path):
    index = StoryIndex(tmp_path / "stories.db")
    text = "Worst customer service I have ever dealt with, cancelling today"
    assert index.add(mention(text)) != index.add(mention(text, brand="Velmora Air", source="forum"))


def test_the_labelled_pairs_are_told_apart_with_high_precision_and_recall():
    pairs = [json.loads(line) for line in (FIXTURES / "stories" / "pairs.jsonl").read_text().splitlines()]
    called = [(similarity(p["a"], p["b"]) >= 0.5, p["same"]) for p in pairs]
    tp = sum(c and s for c, s in called)
    precision = tp / sum(c for c, _ in called)
    recall = tp / sum(s for _, s in called)
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)


def test_the_index_stage_files_each_scored_mention_under_its_story(tmp_path):
    store = EmbeddedStore(tmp_path / "mentions.db")
    stories = StoryIndex(tmp_path / "stories.db")
    verdict = Sentiment(label=SentimentLabel.NEGATIVE, negative=0.9, model_id="m", model_version="1")
    text = "Zephyro outage: status page is green but nothing works in Harbor Point since noon"
    said = [text, f"RT @ops: {text}", "Zephyro billing portal is great now"]
    batch = [ScoredMention.from_mention(mention(t, minutes=n), verdict) for n, t in enumerate(said)]
    IndexStage(store, stories=stories).handle(batch)
    assert stories.story_of(batch[0].id) == stories.story_of(batch[1].id) != stories.story_of(batch[2].id)
