"""A brand team watches Reddit: posts and comments, asked for the way Reddit asks to be asked."""

from __future__ import annotations

import base64

import pytest
from api_server import Reply, fixture
from pydantic import ValidationError

from crawlers.api_http import ApiClient
from crawlers.reddit import RedditSource
from listener.config import RedditSourceConfig
from listener.errors import SourceError

pytest_plugins = ["api_fixtures"]

UA = "python:acme-listener:1.2 (by /u/acme_social)"


def reddit_config(api, **extra) -> RedditSourceConfig:
    return RedditSourceConfig(
        type="reddit",
        name="reddit",
        query="zephyro",
        subreddits=["HomeNetworking", "technology"],
        user_agent=UA,
        base_url=api.base,
        oauth_base_url=api.base + "/oauth",
        limit=2,
        **extra,
    )


def search_pages(request):
    page = 2 if request.query.get("after") else 1
    return Reply(fixture(f"reddit_search_page{page}.json"))


def drain(source) -> list:
    docs = list(source.poll())
    source.commit(docs)
    return docs


def source_for(api, state, limits, clock_client, **extra) -> RedditSource:
    config = reddit_config(api, **extra)
    client = ApiClient(limits, user_agent=config.user_agent, gate=clock_client.gate)
    return RedditSource(config, limits, state, client=client)


def test_posts_and_comments_arrive_with_reddits_user_agent_and_engagement(api, state, limits, client):
    api.route("/r/HomeNetworking+technology/search.json", search_pages)
    api.route("/r/HomeNetworking+technology/comments.json", Reply(fixture("reddit_comments.json")))
    docs = drain(source_for(api, state, limits, client))
    assert [d.author for d in docs] == ["packetloss_pam", "newsbot_ed", "ledger_lou", "evening_eve"]
    post, announce, _, comment = docs
    assert post.text.endswith("keeps closing my ticket >:(")
    assert post.engagement == {"score": 48, "replies": 23, "reposts": 1}
    assert announce.text == "Zephyro Fiber announces new 5 Gbit plans"
    assert comment.title == "Re: Zephyro Fiber down again?"
    assert comment.url == (
        "https://www.reddit.com/r/HomeNetworking/comments/1h2b3c5/zephyro_fiber_down_again/lzq1a2b/"
    )
    searches = api.requests_for("/r/HomeNetworking+technology/search.json")
    assert {r.headers["user-agent"] for r in api.log} == {UA}
    assert searches[0].query == {
        "q": "zephyro", "sort": "new", "type": "link", "raw_json": "1", "restrict_sr": "1", "limit": "2"
    }  # fmt: skip
    assert searches[1].query["after"] == "t3_1h2b3c4"


def test_paging_stops_at_what_the_last_poll_already_reached(api, state, limits, client):
    api.route("/r/HomeNetworking+technology/search.json", search_pages)
    api.route("/r/HomeNetworking+technology/comments.json", Reply(fixture("reddit_comments.json")))
    drain(source_for(api, state, limits, client))
    before = len(api.requests_for("/r/HomeNetworking+technology/search.json"))
    assert drain(source_for(api, state, limits, client)) == []
    assert len(api.requests_for("/r/HomeNetworking+technology/search.json")) == before + 1


def test_an_exhausted_rate_limit_budget_holds_the_next_request_until_the_reset(
    api, state, limits, client, clock
):
    budget = {"X-Ratelimit-Used": "100", "X-Ratelimit-Remaining": "0.0", "X-Ratelimit-Reset": "42"}
    page = fixture("reddit_search_page2.json")
    api.route("/r/HomeNetworking+technology/search.json", [Reply(page, headers=budget), Reply(page)])
    api.route("/r/HomeNetworking+technology/comments.json", Reply(fixture("reddit_comments.json")))
    source = source_for(api, state, limits, client)
    with pytest.raises(SourceError, match="exhausted rate-limit budget"):
        drain(source)  # the comments request would overdraw the budget: it is not sent
    assert api.requests_for("/r/HomeNetworking+technology/comments.json") == []
    clock.advance(43)
    assert len(drain(source)) == 2


def test_with_app_credentials_it_reads_through_oauth_with_a_bearer_token(api, state, limits, client):
    api.route("/api/v1/access_token", Reply(fixture("reddit_token.json")))
    api.route("/oauth/r/HomeNetworking+technology/search", search_pages)
    api.route("/oauth/r/HomeNetworking+technology/comments", Reply(fixture("reddit_comments.json")))
    source = source_for(api, state, limits, client, client_id="app-id", client_secret="s3cret")
    assert len(drain(source)) == 4
    drain(source)
    (token_request,) = api.requests_for("/api/v1/access_token")  # cached for the second poll
    assert token_request.method == "POST" and token_request.form() == {"grant_type": "client_credentials"}
    assert token_request.headers["authorization"] == "Basic " + base64.b64encode(b"app-id:s3cret").decode()
    reads = api.requests_for("/oauth/r/HomeNetworking+technology/search")
    assert {r.headers["authorization"] for r in reads} == {"bearer eyJhbGciOiJSUzI1NiJ9.app-only"}


def test_a_generic_user_agent_is_refused_at_load_time():
    with pytest.raises(ValidationError, match="user_agent"):
        RedditSourceConfig(type="reddit", name="r", query="x", user_agent="python-requests/2.31")
