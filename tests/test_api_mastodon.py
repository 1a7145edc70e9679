"""A brand team follows a hashtag on Mastodon and searches it with a token."""

from __future__ import annotations

import pytest
from api_server import Reply, fixture

from crawlers.mastodon import MastodonSource
from listener.config import MastodonSourceConfig
from listener.errors import ConfigError, SourceError

pytest_plugins = ["api_fixtures"]

TAG = "/api/v1/timelines/tag/zephyro"


def mastodon_config(api, **extra) -> MastodonSourceConfig:
    fields = {"type": "mastodon", "name": "masto", "instance": api.base, "hashtags": ["#Zephyro"], **extra}
    return MastodonSourceConfig(**fields)


def drain(source) -> list:
    docs = list(source.poll())
    source.commit(docs)
    return docs


def timeline(api):
    """Newest page without a cursor; with min_id, the newer page and then (via Link rel=prev) nothing."""

    def answer(request):
        since = request.query.get("min_id")
        if since is None:
            return Reply(fixture("mastodon_tag_latest.json"))
        if since == "113500000000000020":
            link = f'<{api.base}{TAG}?limit=40&max_id=113500000000000050>; rel="next", ' + (
                f'<{api.base}{TAG}?limit=40&min_id=113500000000000050>; rel="prev"'
            )
            return Reply(fixture("mastodon_tag_newer.json"), headers={"Link": link})
        return Reply([])

    return answer


def test_a_hashtag_timeline_gives_statuses_with_language_and_engagement(api, state, limits, client):
    api.route(TAG, timeline(api))
    docs = drain(MastodonSource(mastodon_config(api), limits, state, client=client))
    first, second = docs
    assert first.text == "Is #zephyro down for anyone else? Nothing loads since noon."
    assert first.author == "fibrefan" and first.language == "en"
    assert first.engagement == {"likes": 25, "replies": 3, "reposts": 11}
    assert first.url == "https://social.example/@fibrefan/113500000000000020"
    assert second.text.startswith("ISP rant\n\nZephyro hat mir") and second.language == "de"
    assert api.requests_for(TAG)[0].query == {"limit": "40"}


def test_the_next_poll_asks_from_min_id_and_follows_the_link_header_to_newer_pages(
    api, state, limits, client
):
    api.route(TAG, timeline(api))
    drain(MastodonSource(mastodon_config(api), limits, state, client=client))
    docs = drain(MastodonSource(mastodon_config(api), limits, state, client=client))
    assert [d.author for d in docs] == ["ops"]
    assert "alert(1)" not in docs[0].text
    asked = [r.query.get("min_id") for r in api.requests_for(TAG)]
    assert asked == [None, "113500000000000020", "113500000000000050"]
    assert '"tag:zephyro": "113500000000000050"' in (state.get_cursor("masto") or "")


def test_search_sends_the_access_token_and_reads_statuses(api, state, limits, client):
    api.route("/api/v2/search", Reply(fixture("mastodon_search.json")))
    config = mastodon_config(api, hashtags=[], query="zephyro fiber", access_token="tok-123")
    source = MastodonSource(config, limits, state, client=client)
    (doc,) = drain(source)
    assert doc.author == "bea"
    (request,) = api.requests_for("/api/v2/search")
    assert request.headers["authorization"] == "Bearer tok-123"
    assert request.query["type"] == "statuses" and request.query["q"] == "zephyro fiber"


def test_search_without_a_token_is_refused_at_start_up(api, state, limits):
    with pytest.raises(ConfigError, match="needs access_token"):
        MastodonSource(mastodon_config(api, query="zephyro"), limits, state)


def test_an_instance_that_answers_an_object_instead_of_a_list_is_a_clear_error(api, state, limits, client):
    api.route(TAG, Reply({"error": "This method requires an authenticated user"}))
    with pytest.raises(SourceError, match="expected a list of statuses"):
        drain(MastodonSource(mastodon_config(api), limits, state, client=client))
