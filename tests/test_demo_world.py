"""The demo world: a fictional brand's quiet afternoon, then an outage storm, served over loopback."""

from __future__ import annotations

import re
import urllib.robotparser
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import feedparser
import pytest
import requests
import yaml
from parsel import Selector

from listener.demo import DemoServer, World, WorldItem, build_world, write_demo_config
from listener.demo.world import CRISIS_START, HORIZON, Channel
from listener.query.tokens import tokenize

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z: a fixed start keeps every run identical


class Clock:
    """A clock the test moves by hand, so time-gating needs no sleeping."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


Serve = Callable[..., tuple[DemoServer, Clock]]


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(seed=7, t0=T0)


@pytest.fixture
def serve(world: World) -> Iterator[Serve]:
    """Factory: a running server over the module's world, at a chosen offset from t0."""
    started: list[DemoServer] = []

    def start(offset: float = 0.0, **options: Any) -> tuple[DemoServer, Clock]:
        clock = Clock(world.t0 + offset)
        server = DemoServer(world, clock=clock, **options)
        server.start()
        started.append(server)
        return server, clock

    yield start
    for server in started:
        server.stop()


def get(server: DemoServer, path: str, **headers: str) -> requests.Response:
    return requests.get(server.url + path, headers=headers, timeout=5)


def negatives_per_window(items: list[WorldItem], start: int, end: int, window: int) -> list[int]:
    """Negative brand mentions in each sliding `window` (seconds) from start to end, by publication time."""
    times = [i.published for i in items if i.topic == "zephyro" and i.tone == "negative"]
    return [sum(1 for t in times if s <= t < s + window) for s in range(start, end - window + 1, 60)]


# --- the generated world ---------------------------------------------------------------


def test_the_same_seed_and_start_time_give_the_same_world(world: World) -> None:
    again = build_world(seed=7, t0=T0)
    assert again.items == world.items
    assert len(world) > 500


def test_another_seed_tells_a_different_story(world: World) -> None:
    other = build_world(seed=8, t0=T0)
    assert [i.text for i in other.items] != [i.text for i in world.items]


def test_history_is_a_quiet_trickle_that_never_looks_like_a_spike(world: World) -> None:
    history = [i for i in world.items if i.phase == "history"]
    assert min(i.published for i in history) >= world.t0 - 3 * 3600
    assert max(i.published for i in history) < world.t0
    per_minute = Counter((i.published - world.t0) // 60 for i in history if i.topic == "zephyro")
    assert set(per_minute.values()) <= {1, 2, 3}
    assert len(per_minute) == 180, "every minute of the three quiet hours has brand mentions"
    windows = negatives_per_window(history, world.t0 - 3 * 3600, world.t0, 300)
    assert max(windows) < 8, "the demo's alert rule needs at least 8 negatives in five minutes"


def test_the_crisis_is_overwhelmingly_negative_compared_with_history(world: World) -> None:
    def negative_share(phase: str) -> float:
        brand = [i for i in world.items if i.phase == phase and i.topic == "zephyro"]
        return sum(i.tone == "negative" for i in brand) / len(brand)

    assert negative_share("history") < 0.2
    assert negative_share("crisis") > 0.8
    start, end = world.crisis_window
    assert start == world.t0 + CRISIS_START
    history_rate = sum(
        1 for i in world.items if i.phase == "history" and i.topic == "zephyro" and i.tone == "negative"
    ) / (3 * 60)
    peak = max(negatives_per_window(list(world.items), start, end, 60))
    assert peak > 100 * history_rate, f"peak {peak}/min against a baseline of {history_rate:.2f}/min"


def test_the_storm_is_loud_from_its_first_seconds(world: World) -> None:
    """Spikes are counted in whole minutes; the first minute the storm touches should be enough to fire."""
    start, _ = world.crisis_window
    opening = [i for i in world.between(start, start + 15) if i.topic == "zephyro" and i.tone == "negative"]
    assert len(opening) >= 8, "the demo rule's min_count is 8"


def test_complaints_are_assembled_from_parts_not_repeated(world: World) -> None:
    complaints = [i.text for i in world.items if i.phase == "crisis" and i.tone == "negative"]
    assert len(set(complaints)) > 0.8 * len(complaints)
    assert len({i.author for i in world.items}) > 200


def test_brand_mentions_and_word_boundary_traps_are_told_apart(world: World) -> None:
    brand_words = {"zephyro", "zephyrofiber", "zephyrodown"}
    for item in world.items:
        words = set(tokenize(f"{item.title} {item.text}"))
        if item.topic in ("zephyro", "hiring"):
            assert words & brand_words, item.text
        else:
            assert not words & brand_words, item.text
    traps = [i for i in world.items if i.topic == "chatter" and "zephyroville" in tokenize(i.text)]
    assert traps, "the world should tempt a matcher that ignores word boundaries"


def test_nothing_is_published_after_the_horizon(world: World) -> None:
    assert max(i.published for i in world.items) < world.t0 + HORIZON


# --- feeds over HTTP ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "channel", "version"),
    [
        ("/feeds/social.rss", "social", "rss20"),
        ("/feeds/news.atom", "news", "atom10"),
        ("/feeds/forum.rdf", "forum", "rss10"),
    ],
)
def test_each_feed_parses_with_its_entries_dates_and_links(
    serve: Serve, world: World, path: str, channel: Channel, version: str
) -> None:
    server, _ = serve(offset=150)
    response = get(server, path)
    assert response.status_code == 200
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == version
    expected = world.visible(channel, world.t0 + 150, 500)
    assert len(parsed.entries) == len(expected) > 0
    for entry, item in zip(parsed.entries, expected, strict=True):
        assert entry.link == server.url + item.path
        assert entry.id in (item.guid, entry.link)
        assert entry.author == item.author
        when = entry.get("published_parsed") or entry.get("updated_parsed")
        assert when is not None and tuple(when[:6]) == item.published_at.timetuple()[:6]
    assert get(server, expected[0].path).status_code == 200, "entry links lead to real pages"


def test_the_feed_grows_as_the_clock_passes_publication_times(serve: Serve, world: World) -> None:
    server, clock = serve(offset=0)
    before = feedparser.parse(get(server, "/feeds/social.rss").content).entries
    clock.now = world.t0 + 180
    after = feedparser.parse(get(server, "/feeds/social.rss").content).entries
    assert len(after) > len(before)
    assert all(entry.link in {e.link for e in after} for entry in before[:50])
    newest_time = world.visible("social", world.t0 + 180)[0].published
    assert world.t0 + CRISIS_START <= newest_time <= world.t0 + 180


def test_a_post_from_the_future_does_not_exist_yet(serve: Serve, world: World) -> None:
    server, clock = serve(offset=0)
    future = next(i for i in world.items if i.published > world.t0 + 100)
    assert get(server, future.path).status_code == 404
    clock.now = future.published
    assert get(server, future.path).status_code == 200


def test_the_history_backfill_is_there_from_the_start(serve: Serve, world: World) -> None:
    server, _ = serve(offset=0)
    entries = feedparser.parse(get(server, "/feeds/social.rss").content).entries
    history = [i for i in world.items if i.channel == "social" and i.published <= world.t0]
    assert len(entries) == len(history) > 200


def test_a_feed_keeps_only_its_newest_items(serve: Serve, world: World) -> None:
    server, _ = serve(offset=600, feed_limit=50)
    entries = feedparser.parse(get(server, "/feeds/social.rss").content).entries
    assert [e.link for e in entries] == [
        server.url + i.path for i in world.visible("social", world.t0 + 600)[:50]
    ]


def test_an_unchanged_feed_answers_304_and_a_changed_one_200(serve: Serve, world: World) -> None:
    server, clock = serve(offset=60)
    first = get(server, "/feeds/news.atom")
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert get(server, "/feeds/news.atom", **{"If-None-Match": etag}).status_code == 304
    assert get(server, "/feeds/news.atom", **{"If-Modified-Since": modified}).status_code == 304
    clock.now = world.t0 + 200  # a news article about the outage is out by now
    changed = get(server, "/feeds/news.atom", **{"If-None-Match": etag, "If-Modified-Since": modified})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert "outage" in changed.text


def test_hostile_text_arrives_as_text_not_markup(serve: Serve, world: World) -> None:
    server, _ = serve(offset=300)
    social = feedparser.parse(get(server, "/feeds/social.rss").content).entries
    shouting = next(e for e in social if "@channel" in e.summary)
    assert "&lt;script&gt;" in shouting.summary and "<script" not in shouting.summary
    raw_forum = get(server, "/feeds/forum.rdf").text
    assert "&lt;script&gt;alert" in raw_forum, "the forum really sends a live <script> in its HTML"
    forum = feedparser.parse(raw_forum).entries
    refund = next(e for e in forum if "example.com/win" in e.content[0].value)
    assert "<script" not in refund.content[0].value
    review = next(i for i in world.items if i.channel == "reviews" and "onerror" in i.text)
    page = get(server, review.path).text
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


# --- the review site (for the spider) ----------------------------------------------------


def spider_selectors(tmp_path: Path) -> dict[str, str]:
    config = yaml.safe_load(
        write_demo_config(tmp_path / "watch.yaml", "http://127.0.0.1:1", tmp_path).read_text()
    )
    spider = next(s for s in config["brands"][0]["sources"] if s["type"] == "spider")
    return dict(spider["selectors"])


def test_the_review_listing_paginates_newest_first(serve: Serve, world: World, tmp_path: Path) -> None:
    server, _ = serve(offset=0)
    selectors = spider_selectors(tmp_path)
    reviews = world.visible("reviews", world.t0)
    first = Selector(text=get(server, "/reviews/").text)
    assert first.css(selectors["links"]).getall() == [i.path for i in reviews[:10]]
    next_page = first.css(selectors["next_page"]).get()
    assert next_page == "/reviews/?page=2"
    second = Selector(text=get(server, next_page).text)
    assert second.css(selectors["links"]).getall() == [i.path for i in reviews[10:20]]
    last = -(-len(reviews) // 10)
    assert Selector(text=get(server, f"/reviews/?page={last}").text).css(selectors["next_page"]).get() is None


def test_a_review_page_yields_title_author_date_and_text(serve: Serve, world: World, tmp_path: Path) -> None:
    server, _ = serve(offset=200)
    selectors = spider_selectors(tmp_path)
    review = world.visible("reviews", world.t0 + 200)[0]
    page = Selector(text=get(server, review.path).text)
    assert page.css(selectors["title"]).get() == review.title
    assert page.css(selectors["author"]).get() == review.author
    assert page.css(selectors["date"]).get() == review.published_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert " ".join(page.css(selectors["text"]).getall()).strip() == review.text
    assert "Sponsored" not in " ".join(page.css(selectors["text"]).getall())


def test_bad_page_numbers_get_a_clear_answer(serve: Serve) -> None:
    server, _ = serve(offset=0)
    bad = get(server, "/reviews/?page=two")
    assert bad.status_code == 400 and "whole number" in bad.text
    assert get(server, "/reviews/?page=9999").status_code == 404
    assert get(server, "/nowhere/at-all").status_code == 404


def test_robots_txt_allows_the_review_site_and_keeps_crawlers_out_of_admin(serve: Serve) -> None:
    server, _ = serve(offset=0)
    robots = urllib.robotparser.RobotFileParser()
    robots.parse(get(server, "/robots.txt").text.splitlines())
    assert robots.can_fetch("Listener", server.url + "/reviews/?page=2")
    assert not robots.can_fetch("Listener", server.url + "/admin/")
    assert get(server, "/admin/").status_code == 403


def test_the_server_says_clearly_when_it_is_not_running(world: World) -> None:
    server = DemoServer(world)
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url
    with server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
    with pytest.raises(RuntimeError):
        _ = server.url


# --- the generated watch.yaml ------------------------------------------------------------


def test_the_demo_config_points_every_source_at_the_server(tmp_path: Path) -> None:
    path = write_demo_config(tmp_path / "demo" / "watch.yaml", "http://127.0.0.1:8123/", tmp_path / "data")
    raw = yaml.safe_load(path.read_text())
    sources = [s for brand in raw["brands"] for s in brand.get("sources", [])]
    urls = [s.get("url") or s["start_urls"][0] for s in sources]
    assert urls and all(u.startswith("http://127.0.0.1:8123/") and "//" not in u[8:] for u in urls)
    assert raw["brands"][0]["alert"]["min_count"] == 8


def test_the_demo_watch_terms_find_each_brand_and_leave_the_traps(tmp_path: Path, world: World) -> None:
    from listener.config import load_config
    from listener.query.matcher import Matcher
    from listener.query.parser import parse_watch_query

    config = load_config(write_demo_config(tmp_path / "watch.yaml", "http://127.0.0.1:8123", tmp_path))
    matcher: Matcher[str] = Matcher(
        [(brand.name, parse_watch_query(q)) for brand in config.brands for q in brand.queries]
    )
    expected = {"zephyro": {"Zephyro Fiber"}, "velmora": {"Velmora Air"}, "chatter": set(), "hiring": set()}
    for item in world.items:
        assert set(matcher.match_text(f"{item.title}\n{item.text}")) == expected[item.topic], item.text


def test_the_demo_config_loads_and_validates(tmp_path: Path) -> None:
    from listener.config import load_config

    path = write_demo_config(tmp_path / "watch.yaml", "http://127.0.0.1:8123", tmp_path / "data")
    config = load_config(path)
    zephyro = config.brand("Zephyro Fiber")
    assert zephyro.alert.window == 300 and zephyro.alert.baseline == 3 * 3600
    assert {s.type for s in zephyro.sources} == {"feed", "spider"}
    assert config.limits.per_host_delay < 0.1
    assert config.data_dir == tmp_path / "data"


def test_a_data_dir_with_quotes_and_colons_survives_the_round_trip(tmp_path: Path) -> None:
    data_dir = tmp_path / 'it\'s: "here" #1'
    path = write_demo_config(tmp_path / "watch.yaml", "http://127.0.0.1:8123", data_dir)
    assert yaml.safe_load(path.read_text())["data_dir"] == str(data_dir)
