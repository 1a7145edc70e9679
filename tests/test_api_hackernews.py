"""A brand team watches Hacker News: stories and comments arrive once, through failures and restarts."""

from __future__ import annotations

import pytest
from api_server import Reply, fixture, fixture_text

from crawlers.api_http import RateLimited
from crawlers.hackernews import HackerNewsSource
from crawlers.scheduler import Scheduler
from crawlers.state import FetchState
from listener.config import HackerNewsSourceConfig, Limits
from listener.errors import SourceError
from listener.records import encode

pytest_plugins = ["api_fixtures"]

PATH = "/api/v1/search_by_date"


def hn_config(api, **extra) -> HackerNewsSourceConfig:
    return HackerNewsSourceConfig(
        type="hackernews", name="hn", query="zephyro", base_url=api.base + "/api/v1", hits_per_page=2, **extra
    )


def paged(request):
    page = request.query.get("page", "0")
    if "numericFilters" in request.query:
        return Reply(fixture("hn_search_newer.json"))
    return Reply(fixture(f"hn_search_page{page}.json"))


def drain(source) -> list:
    docs = list(source.poll())
    source.commit(docs)
    return docs


def test_stories_and_comments_page_through_and_carry_author_time_and_engagement(api, state, limits, client):
    api.route(PATH, paged)
    source = HackerNewsSource(hn_config(api), limits, state, client=client)
    docs = drain(source)
    assert [d.author for d in docs] == ["kestrel_dev", "mlin", "quietpond"]
    comment, story, ask = docs
    assert "support just says try rebooting" in comment.text and "&amp;" not in comment.text
    assert comment.title == "Re: Zephyro Fiber outage across the Midwest"
    assert story.engagement == {"score": 212, "replies": 87}
    assert story.url == "https://news.ycombinator.com/item?id=41000001"
    assert ask.text.startswith("Ask HN: Anyone else billed twice by Zephyro?")
    assert story.published.isoformat() == "2025-11-20T13:58:02+00:00"
    first = api.requests_for(PATH)
    assert [r.query["page"] for r in first] == ["0", "1"]
    assert first[0].query["tags"] == "(story,comment)" and "numericFilters" not in first[0].query


def test_the_next_poll_resumes_from_the_cursor_and_skips_what_was_seen_and_malformed_items(
    api, state, limits, client
):
    api.route(PATH, paged)
    drain(HackerNewsSource(hn_config(api), limits, state, client=client))
    # A restart: a new source object over the same state file.
    again = HackerNewsSource(hn_config(api), limits, state, client=client)
    docs = drain(again)
    assert [d.author for d in docs] == ["newcomer"]  # the repeat and the item without objectID are dropped
    assert api.requests_for(PATH)[-1].query["numericFilters"] == "created_at_i>=1763647511"
    assert state.get_cursor("hn") == "1763652660"


def test_a_429_waits_the_time_the_api_names_and_then_recovers_without_losing_a_page(
    api, state, limits, client, clock
):
    slow_down = Reply({"message": "slow down"}, 429, {"Retry-After": "120"})
    calls = []

    def flaky(request):
        calls.append(request.query["page"])
        if len(calls) == 2:
            return slow_down
        return paged(request)

    api.route(PATH, flaky)
    source = HackerNewsSource(hn_config(api), limits, state, client=client)
    with pytest.raises(RateLimited) as caught:
        drain(source)
    assert caught.value.retry_after == 120
    assert state.get_cursor("hn") is None and state.unseen("hn", ["x"]) == {"x"}
    with pytest.raises(SourceError, match="backing off"):
        drain(source)  # the gate answers without touching the network
    assert len(calls) == 2
    clock.advance(121)
    assert [d.author for d in drain(source)] == ["kestrel_dev", "mlin", "quietpond"]


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply({"message": "boom"}, 503), "HTTP 503"),
        (Reply(fixture_text("hn_search_page0.json")[:300]), "not valid JSON"),
        (Reply({"results": []}), "no 'hits'"),
        (Reply(fixture("hn_search_page0.json"), delay=1.5), "timed out"),
    ],
    ids=["server-error", "truncated-json", "changed-shape", "timeout"],
)
def test_a_broken_answer_is_a_clear_source_error_and_moves_nothing(api, state, client, reply, message):
    api.route(PATH, reply)
    source = HackerNewsSource(hn_config(api), Limits(timeout=0.5), state, client=client)
    client.limits = Limits(timeout=0.5)
    with pytest.raises(SourceError, match=message):
        drain(source)
    assert state.get_cursor("hn") is None


def test_through_the_scheduler_a_failed_poll_publishes_nothing_and_the_recovery_publishes_each_item_once(
    api, tmp_path, limits, client, clock
):
    failing = {"on": True}

    def second_page_fails(request):
        if failing["on"] and request.query.get("page") == "1":
            return Reply({"message": "upstream"}, 502)
        return paged(request)

    api.route(PATH, second_page_fails)
    published: list = []
    with FetchState(tmp_path / "fetch.db") as fetch_state:
        source = HackerNewsSource(hn_config(api), limits, fetch_state, client=client)
        scheduler = Scheduler([source], fetch_state, publish=published.extend)
        outcome = scheduler.run_once().outcomes[0]
        assert not outcome.ok and "HTTP 502" in (outcome.error or "") and published == []
        failing["on"] = False
        clock.advance(60)
        scheduler._next_due["hn"] = 0.0
        assert scheduler.run_once().outcomes[0].ok
        scheduler._next_due["hn"] = 0.0
        scheduler.run_once()
        scheduler.close()
    assert sorted(d.author for d in published) == ["kestrel_dev", "mlin", "newcomer", "quietpond"]


def test_a_lone_surrogate_and_an_absurd_timestamp_cost_only_their_own_items_nothing_else(
    api, state, limits, client, caplog
):
    """A stranger's comment carries half an emoji; another hit is stamped 1e20 or 10**20 seconds."""
    comment = (
        '{{"objectID": "{}", "author": "{}", "comment_text": "{}", "created_at_i": {}, "_tags": ["comment"]}}'
    )
    hits = [
        comment.format(1, "a", "Zephyro outage \\ud83d again", 1763647511),
        comment.format(2, "b", "Zephyro stamped 1e20", "1e20"),
        comment.format(3, "c", "Zephyro stamped 10**20", 10**20),
        comment.format(4, "d", "Zephyro is fine here", 1763647600),
    ]
    api.route(PATH, Reply(('{"hits": [' + ", ".join(hits) + '], "nbPages": 1}').encode()))
    source = HackerNewsSource(hn_config(api), limits, state, client=client)
    with caplog.at_level("WARNING", logger="crawlers.api_source"):
        docs = drain(source)
    assert [d.author for d in docs] == ["a", "b", "c", "d"]
    assert docs[0].text == "Zephyro outage \ufffd again"
    assert all(encode(doc) for doc in docs)  # each one can be published
    assert docs[1].published == docs[1].fetched and docs[2].published == docs[2].fetched
    assert "1e+20 is out of range; the item gets its fetch time" in caplog.text
    # The absurd stamp does not become the cursor: the next poll still asks from the real newest item.
    drain(source)
    assert api.requests_for(PATH)[-1].query["numericFilters"] == "created_at_i>=1763647600"
