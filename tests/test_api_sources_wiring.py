"""A watch.yaml lists the API sources; the factory finds them through entry points and builds each."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest
from api_server import Reply, fixture, fixture_text

from crawlers.factory import ENTRY_POINT_GROUP, build_sources
from crawlers.scheduler import Scheduler
from crawlers.state import FetchState
from listener.config import load_config
from listener.errors import ConfigError

pytest_plugins = ["api_fixtures"]

WATCH = """\
version: 1
data_dir: data
brands:
  - name: Zephyro Fiber
    queries: [zephyro]
    sources:
      - {{type: hackernews, name: hn, query: zephyro, base_url: "{base}/api/v1"}}
      - type: reddit
        name: reddit
        query: zephyro
        subreddits: [HomeNetworking]
        comments: false
        user_agent: "python:acme-listener:1.2 (by /u/acme_social)"
        base_url: "{base}"
      - {{type: mastodon, name: masto, instance: "{base}", hashtags: [zephyro]}}
      - {{type: bluesky, name: bsky, query: zephyro, base_url: "{base}", max_pages: 1}}
      - {{type: googlenews, name: gnews, query: zephyro, base_url: "{base}"}}
      - {{type: appstore, name: ios, app_id: 1234567890, base_url: "{base}", max_pages: 1}}
"""


def test_every_api_source_is_registered_as_an_entry_point():
    names = {point.name for point in entry_points(group=ENTRY_POINT_GROUP)}
    assert {"hackernews", "reddit", "mastodon", "bluesky", "googlenews", "appstore"} <= names


def test_one_watch_yaml_builds_and_polls_every_api_source_through_the_scheduler(api, tmp_path):
    api.route("/api/v1/search_by_date", Reply(fixture("hn_search_page1.json")))
    api.route("/r/HomeNetworking/search.json", Reply(fixture("reddit_search_page2.json")))
    api.route("/api/v1/timelines/tag/zephyro", Reply(fixture("mastodon_tag_newer.json")))
    api.route("/xrpc/app.bsky.feed.searchPosts", Reply(fixture("bsky_search_page2.json")))
    api.route("/rss/search", Reply(fixture_text("googlenews_search.xml"), content_type="application/rss+xml"))
    api.route(
        "/us/rss/customerreviews/page=1/id=1234567890/sortby=mostrecent/json",
        Reply(fixture("appstore_reviews_page2.json")),
    )
    path = tmp_path / "watch.yaml"
    path.write_text(WATCH.format(base=api.base))
    config = load_config(path)
    published: list = []
    with FetchState(tmp_path / "fetch.db") as state:
        sources = build_sources(config, state)
        kinds = [type(s).__name__ for s in sources]
        assert kinds == ["HackerNewsSource", "RedditSource", "MastodonSource", "BlueskySource",
                         "FeedSource", "AppStoreSource"]  # fmt: skip
        with Scheduler(sources, state, publish=published.extend) as scheduler:
            summary = scheduler.run_once()
    assert summary.failed == {}
    by_source = {d.source for d in published}
    assert by_source == {"hn", "reddit", "masto", "bsky", "gnews", "ios"}


def test_a_misspelled_source_setting_names_file_line_and_field(tmp_path):
    path = tmp_path / "watch.yaml"
    path.write_text(
        "brands:\n  - name: A\n    queries: [a]\n    sources:\n"
        "      - type: reddit\n        name: r\n        query: a\n        user_agent: curl/8\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert any(":8: brands[0].sources[0].user_agent:" in line for line in caught.value.problems)
