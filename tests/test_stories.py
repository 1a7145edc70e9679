"""One viral post is one thing to respond to: copies across sources fold into a story."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from fixture_server import FIXTURES
from state_engines import migrated

from listener.demo import texts
from listener.demo.world import build_world
from listener.records import Mention, ScoredMention, Sentiment, SentimentLabel, document_id
from listener.stages import IndexStage
from listener.stories import MIGRATIONS, StoryIndex, containment, similarity
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


def wire_copy(outlet: str, area: str = "Eastgate") -> str:
    title, body = texts.SYNDICATED_STORY
    return f"{title}. ({outlet}) {body.format(a=area)} More local news from {outlet}."


def teaser(full: str) -> str:
    """The first two sentences, as a feed's summary or a link preview shows them."""
    return " ".join(re.split(r"(?<=[.!?])\s+", full)[:2])


def test_a_wire_teaser_joins_its_article_either_way_round_and_outage_posts_stay_apart(state_db):
    index = StoryIndex(migrated(state_db, "stories", MIGRATIONS))
    article = index.add(mention(wire_copy("Metro Wire"), source="news"))
    short = teaser(wire_copy("Valley Daily"))
    assert similarity(short, wire_copy("Metro Wire")) < 0.5  # Jaccard alone would split them
    assert index.add(mention(f"{short} Read more: https://valley.example/a1", source="news-2")) == article
    complaints = [*texts.CRISIS_REVIEWS, texts.SYNDICATED_STORY[0]]
    assert article not in {index.add(mention(text, source="social")) for text in complaints}

    teaser_first = index.add(mention(teaser(wire_copy("Metro Wire")), brand="Velmora Air"))
    assert index.add(mention(wire_copy("Northbank Gazette"), brand="Velmora Air")) == teaser_first


def test_containment_needs_a_long_enough_shorter_text():
    article = wire_copy("Metro Wire")
    assert containment(teaser(article), article) == 1.0
    assert containment("Zephyro Fiber confirms core network failure", article) == 0.0  # too short to judge
    half = article[: len(article) // 2]
    assert containment(article, half) == containment(half, article)  # always the shorter in the longer


def test_stories_not_seen_within_the_horizon_leave_memory_but_not_the_database(tmp_path):
    index = StoryIndex(tmp_path / "stories.db", horizon=3600, sweep_every=10)
    first = [mention(f"Zephyro story number {n} about something else entirely {n * 7}") for n in range(10)]
    old_ids = index.add_many(first)
    assert index.held() == 10
    for hour in range(1, 6):
        batch = [mention(f"Zephyro hour {hour} item {n} with different words {n * 13}", minutes=60 * hour + 1)
                 for n in range(10)]  # fmt: skip
        index.add_many(batch)
        assert index.held() <= 20  # this hour's and the last hour's, never the whole history
    assert index.get(old_ids[0]) is not None  # evicted from memory only
    assert index.add(first[0]) == old_ids[0]  # a late redelivery still gets its story
    late = mention(f"RT @x: {first[1].text}", minutes=5 * 60 + 2)
    assert index.add(late) != old_ids[1]  # an evicted story is not joined, as after a restart


def test_a_story_another_copy_kept_alive_is_not_evicted(state_db_pair):
    one = StoryIndex(migrated(state_db_pair[0], "stories", MIGRATIONS), horizon=3600, sweep_every=1)
    two = StoryIndex(state_db_pair[1], horizon=3600, sweep_every=1)
    text = "Zephyro Fiber status page green while the whole of Eastgate is offline since noon"
    story = one.add(mention(text))
    for hour in range(1, 4):  # the other copy sees the story every hour; this one sees only other posts
        assert two.add(mention(f"RT @n{hour}: {text}", minutes=60 * hour)) == story
        one.add(mention(f"Unrelated Zephyro post {hour} about billing plans {hour * 11}", minutes=60 * hour))
    assert one.add(mention(f"RT @late: {text}", minutes=3 * 60 + 5)) == story


def test_stories_stored_before_leads_were_kept_still_load_and_join(tmp_path):
    path = tmp_path / "stories.db"
    now = datetime.now(UTC)
    first = StoryIndex(path)
    story = first.add(mention(wire_copy("Metro Wire"), t0=now))
    first._db.execute("UPDATE story SET lead = NULL")  # as the previous schema stored it
    first.close()
    again = StoryIndex(path)
    assert again.add(mention(wire_copy("Valley Daily"), source="news", t0=now)) == story
