"""Google News searches and App Store reviews arrive as documents like everything else."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from api_server import Reply, fixture, fixture_text

from crawlers.appstore import AppStoreSource
from crawlers.feed import FeedSource
from crawlers.googlenews import build_google_news, google_news_url
from listener.config import AppStoreSourceConfig, GoogleNewsSourceConfig
from listener.errors import SourceError

pytest_plugins = ["api_fixtures"]

REVIEWS = "/us/rss/customerreviews/page={}/id=1234567890/sortby=mostrecent/json"


def drain(source) -> list:
    docs = list(source.poll())
    source.commit(docs)
    return docs


def test_the_google_news_url_picks_the_edition_from_language_and_country():
    config = GoogleNewsSourceConfig(
        type="googlenews", name="gn", query='"zephyro fiber"', language="de", country="AT"
    )
    query = parse_qs(urlsplit(google_news_url(config)).query)
    assert query == {"q": ['"zephyro fiber"'], "hl": ["de-AT"], "gl": ["AT"], "ceid": ["AT:de"]}


def test_google_news_results_are_read_by_the_feed_reader(api, state, limits):
    api.route("/rss/search", Reply(fixture_text("googlenews_search.xml"), content_type="application/rss+xml"))
    config = GoogleNewsSourceConfig(type="googlenews", name="gn", query='"zephyro fiber"', base_url=api.base)
    source = build_google_news(config, limits, state)
    assert isinstance(source, FeedSource)
    docs = drain(source)
    assert [d.title for d in docs] == [
        "Zephyro Fiber outage hits thousands across the Midwest - Metro Wire",
        "Zephyro Fiber says service restored, promises bill credits - Daily Ledger",
    ]
    assert api.requests_for("/rss/search")[0].query["ceid"] == "US:en"
    assert drain(source) == []  # seen-item memory


def reviews(request_path_pages):
    def answer(request):
        for page, name in request_path_pages.items():
            if request.path == REVIEWS.format(page):
                return Reply(fixture(name))
        return Reply(fixture("appstore_reviews_empty.json"))

    return answer


@pytest.fixture
def store(api):
    pages = {1: "appstore_reviews_page1.json", 2: "appstore_reviews_page2.json"}
    for page in range(1, 4):
        api.route(REVIEWS.format(page), reviews(pages))
    return api


def appstore(api, state, limits, client) -> AppStoreSource:
    config = AppStoreSourceConfig(type="appstore", name="ios", app_id=1234567890, base_url=api.base)
    return AppStoreSource(config, limits, state, client=client)


def test_app_reviews_carry_rating_votes_author_and_time(store, state, limits, client):
    docs = drain(appstore(store, state, limits, client))
    assert [d.author for d in docs] == ["RouterRuth", "happy_hank", "oldtimer"]  # a one-review page too
    ruth = docs[0]
    assert ruth.text.startswith("Useless during the outage\n\nThe Zephyro app just spins")
    assert ruth.engagement == {"rating": 1, "score": 3, "likes": 4}
    assert ruth.published.isoformat() == "2025-11-20T14:12:33+00:00"
    assert [r.path for r in store.log] == [REVIEWS.format(n) for n in (1, 2, 3)]


def test_the_next_poll_stops_at_the_first_page_it_already_knew(store, state, limits, client):
    drain(appstore(store, state, limits, client))
    assert drain(appstore(store, state, limits, client)) == []
    assert [r.path for r in store.log][3:] == [REVIEWS.format(1)]


def test_a_page_without_a_feed_is_an_error_not_an_empty_app(api, state, limits, client):
    api.route(REVIEWS.format(1), Reply({"errors": ["not found"]}))
    with pytest.raises(SourceError, match="no 'feed'"):
        drain(appstore(api, state, limits, client))
