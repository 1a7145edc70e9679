"""A brand team searches Bluesky, anonymously or with an app password."""

from __future__ import annotations

import pytest
from api_server import Reply, fixture

from crawlers.bluesky import BlueskySource
from listener.config import BlueskySourceConfig
from listener.errors import SourceError

pytest_plugins = ["api_fixtures"]

SEARCH = "/xrpc/app.bsky.feed.searchPosts"


def bsky_config(api, **extra) -> BlueskySourceConfig:
    fields = {"type": "bluesky", "name": "bsky", "query": "zephyro", "base_url": api.base, **extra}
    return BlueskySourceConfig(**fields)


def pages(request):
    page = 2 if request.query.get("cursor") else 1
    return Reply(fixture(f"bsky_search_page{page}.json"))


def drain(source) -> list:
    docs = list(source.poll())
    source.commit(docs)
    return docs


def test_search_pages_through_the_cursor_and_keeps_language_and_engagement(api, state, limits, client):
    api.route(SEARCH, pages)
    docs = drain(BlueskySource(bsky_config(api), limits, state, client=client))
    assert [d.author for d in docs] == ["nightowl.bsky.social", "mira.example.com", "netwatch.bsky.social"]
    owl, mira, _ = docs
    assert owl.url == "https://bsky.app/profile/nightowl.bsky.social/post/3lbq2xyzzy2k2"
    assert owl.engagement == {"likes": 51, "replies": 4, "reposts": 18, "quotes": 2}
    assert owl.language == "en" and mira.language == "es"
    assert owl.published.isoformat() == "2025-11-20T14:20:00+00:00"
    first, second = api.requests_for(SEARCH)
    assert first.query == {"q": "zephyro", "sort": "latest", "limit": "100"}
    assert second.query["cursor"] == "2"


def test_the_next_poll_asks_only_since_the_newest_post_committed(api, state, limits, client):
    api.route(SEARCH, pages)
    drain(BlueskySource(bsky_config(api), limits, state, client=client))
    assert drain(BlueskySource(bsky_config(api), limits, state, client=client)) == []
    assert api.requests_for(SEARCH)[-2].query["since"] == "2025-11-20T14:20:01.120Z"


def test_with_an_app_password_it_opens_a_session_and_searches_with_the_bearer_token(
    api, state, limits, client
):
    api.route("/pds/xrpc/com.atproto.server.createSession", Reply(fixture("bsky_session.json")))
    api.route("/pds" + SEARCH, pages)
    config = bsky_config(api, service_url=api.base + "/pds", identifier="acme-listen.bsky.social",
                         app_password="abcd-efgh-ijkl-mnop")  # fmt: skip
    source = BlueskySource(config, limits, state, client=client)
    assert len(drain(source)) == 3
    drain(source)
    (login,) = api.requests_for("/pds/xrpc/com.atproto.server.createSession")
    assert login.method == "POST"
    assert login.body == b'{"identifier": "acme-listen.bsky.social", "password": "abcd-efgh-ijkl-mnop"}'
    searches = api.requests_for("/pds" + SEARCH)
    assert {r.headers["authorization"] for r in searches} == {"Bearer eyJ0eXAiOiJhdCtqd3QifQ.access"}


def test_a_refused_login_names_the_problem(api, state, limits, client):
    api.route("/xrpc/com.atproto.server.createSession", Reply({"error": "AuthenticationRequired"}, 401))
    config = bsky_config(api, service_url=api.base, identifier="x.bsky.social", app_password="wrong")
    with pytest.raises(SourceError, match="HTTP 401"):
        drain(BlueskySource(config, limits, state, client=client))
