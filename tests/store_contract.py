"""The contract every `MentionStore` engine must keep, written once and run over each engine.

An engine's test module subclasses `StoreContract` and provides one fixture,
`store_factory`: a callable that opens a NEW store on the SAME storage each time
it is called (a file for the embedded store, an index prefix for Elasticsearch).
Writes are made searchable with the protocol's `refresh` (a no-op where writes
are visible at once). Everything here talks only through the `MentionStore`
protocol (plus `counts`, where an engine has it), and builds queries as AST
nodes so that no parser is involved.

    class TestEmbeddedStoreContract(StoreContract):
        @pytest.fixture
        def store_factory(self, tmp_path): ...
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from listener.query.ast import And, Field, Near, Node, Not, Or, Phrase, Term
from listener.records import ScoredMention, Sentiment, SentimentLabel, document_id, mention_id
from pipelines.store import MentionStore, SearchRequest

__all__ = ["T0", "StoreContract", "StoreFactory", "make_mention"]

StoreFactory = Callable[[], MentionStore]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
_serial = itertools.count()


def make_mention(text: str, **fields: Any) -> ScoredMention:
    """A scored mention with plausible defaults; `key` names the source item (and so the id)."""
    key = fields.pop("key", None) or f"item-{next(_serial)}"
    brand = fields.pop("brand", "acme")
    source = fields.pop("source", "acme-news")
    label = SentimentLabel(fields.pop("label", "neutral"))
    doc_id = document_id(source, key)
    return ScoredMention(
        id=mention_id(doc_id, brand),
        document_id=doc_id,
        brand=brand,
        source=source,
        source_type=fields.pop("source_type", "feed"),
        url=fields.pop("url", f"https://news.example.com/{key}"),
        site=fields.pop("site", "news.example.com"),
        author=fields.pop("author", None),
        title=fields.pop("title", None),
        text=text,
        published=fields.pop("published", T0),
        fetched=fields.pop("fetched", T0),
        language=fields.pop("language", "en"),
        matched_queries=("acme",),
        sentiment=Sentiment(label=label, model_id="test", model_version="1"),
        **fields,
    )


def texts(result: Any) -> list[str]:
    return [hit.mention.text for hit in result.hits]


class StoreContract:
    """Behaviour the search page, the CLI and retention rely on; any engine that passes can serve them."""

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        raise NotImplementedError("an engine's test module provides store_factory")

    def settle(self, store: MentionStore) -> None:
        """Make written mentions visible to searches, as the reindex command does."""
        store.refresh()

    @pytest.fixture
    def store(self, store_factory: StoreFactory) -> Iterator[MentionStore]:
        store = store_factory()
        yield store
        store.close()

    def stored(self, store: MentionStore, *mentions: ScoredMention) -> list[ScoredMention]:
        store.upsert(list(mentions))
        self.settle(store)
        return list(mentions)

    def find(self, store: MentionStore, query: Node | None, **request: Any) -> list[str]:
        return sorted(texts(store.search(SearchRequest(query=query, limit=100, **request))))

    # --- upsert and get -----------------------------------------------------------------------

    def test_a_redelivered_mention_is_stored_once_and_the_latest_text_wins(self, store: MentionStore) -> None:
        self.stored(store, make_mention("Acme recall announced", key="a"))
        self.stored(store, make_mention("Acme recall announced", key="a"))
        self.stored(store, make_mention("Acme recall withdrawn", key="a"))
        assert texts(store.search(SearchRequest(query=Term("acme")))) == ["Acme recall withdrawn"]
        assert store.search(SearchRequest(query=Term("announced"))).total == 0
        assert store.search(SearchRequest()).total == 1

    def test_one_batch_may_carry_the_same_mention_twice(self, store: MentionStore) -> None:
        self.stored(store, make_mention("first draft", key="a"), make_mention("final text", key="a"))
        assert texts(store.search(SearchRequest())) == ["final text"]

    def test_get_returns_the_stored_mention_and_none_for_an_unknown_id(self, store: MentionStore) -> None:
        (mention,) = self.stored(store, make_mention("Acme ships rockets", author="Jane", label="positive"))
        assert store.get(mention.id) == mention
        assert store.get("no-such-id") is None

    # --- text queries -------------------------------------------------------------------------

    def test_a_term_finds_the_word_in_any_case_and_not_inside_longer_words(self, store: MentionStore) -> None:
        self.stored(
            store,
            make_mention("ACME, again!"),
            make_mention("Welcome to Acmeville"),
            make_mention("acme's new anvil"),
        )
        assert self.find(store, Term("acme")) == ["ACME, again!", "acme's new anvil"]

    def test_a_word_in_the_title_is_found_too(self, store: MentionStore) -> None:
        self.stored(store, make_mention("body says nothing", title="Acme recall"), make_mention("other"))
        assert self.find(store, Term("recall")) == ["body says nothing"]

    def test_a_phrase_needs_its_words_next_to_each_other_in_order(self, store: MentionStore) -> None:
        self.stored(
            store,
            make_mention("the acme rocket exploded"),
            make_mention("a rocket from acme"),
            make_mention("acme built a rocket"),
        )
        assert self.find(store, Phrase(("acme", "rocket"))) == ["the acme rocket exploded"]

    def test_a_prefix_term_finds_words_that_start_with_it(self, store: MentionStore) -> None:
        self.stored(store, make_mention("Acmeville fair"), make_mention("acme"), make_mention("bacme"))
        assert self.find(store, Term("acme", prefix=True)) == ["Acmeville fair", "acme"]

    def test_a_phrase_may_end_in_a_prefix(self, store: MentionStore) -> None:
        self.stored(
            store, make_mention("acme rockets fly"), make_mention("acme robots"), make_mention("acme")
        )
        assert self.find(store, Phrase(("acme", "rock"), prefix=True)) == ["acme rockets fly"]

    def test_near_finds_words_at_most_n_apart_in_either_order(self, store: MentionStore) -> None:
        self.stored(
            store,
            make_mention("acme recall"),
            make_mention("recall one two three acme"),
            make_mention("acme one two three four recall"),
            make_mention("acme alone"),
        )
        found = self.find(store, Near(Term("acme"), Term("recall"), 3))
        assert found == ["acme recall", "recall one two three acme"]
        assert self.find(store, Near(Term("acme"), Term("recall"), 0)) == ["acme recall"]

    def test_near_works_with_phrases(self, store: MentionStore) -> None:
        self.stored(store, make_mention("big acme x recall"), make_mention("acme big x y recall"))
        assert self.find(store, Near(Phrase(("big", "acme")), Term("recall"), 1)) == ["big acme x recall"]

    def test_and_or_not_combine_like_boolean_logic(self, store: MentionStore) -> None:
        self.stored(
            store,
            make_mention("acme recall"),
            make_mention("acme lawsuit"),
            make_mention("acme recall lawsuit"),
            make_mention("recall only"),
        )
        acme, recall, lawsuit = Term("acme"), Term("recall"), Term("lawsuit")
        assert self.find(store, And((acme, recall))) == ["acme recall", "acme recall lawsuit"]
        assert self.find(store, Or((lawsuit, Phrase(("recall", "only"))))) == [
            "acme lawsuit",
            "acme recall lawsuit",
            "recall only",
        ]
        assert self.find(store, And((acme, Not(lawsuit)))) == ["acme recall"]
        assert self.find(store, Not(acme)) == ["recall only"]

    def test_parentheses_group_as_written(self, store: MentionStore) -> None:
        self.stored(store, make_mention("a b"), make_mention("a c"), make_mention("c"), make_mention("b c"))
        a, b, c = Term("a"), Term("b"), Term("c")
        assert self.find(store, And((a, Or((b, c))))) == ["a b", "a c"]
        assert self.find(store, Or((And((a, b)), c))) == ["a b", "a c", "b c", "c"]
        assert self.find(store, And((Or((a, c)), Not(And((a, b)))))) == ["a c", "b c", "c"]

    def test_words_that_are_all_punctuation_match_nothing(self, store: MentionStore) -> None:
        self.stored(store, make_mention("acme * ' !"))
        assert self.find(store, Term("*")) == []
        assert self.find(store, Not(Term("'"))) == ["acme * ' !"]
        assert self.find(store, Or((Term("!"), Term("acme")))) == ["acme * ' !"]

    # --- fields -------------------------------------------------------------------------------

    def test_site_matches_the_host_and_its_subdomains_only(self, store: MentionStore) -> None:
        self.stored(
            store,
            make_mention("on the host", site="example.com"),
            make_mention("on a subdomain", site="news.example.com"),
            make_mention("look-alike", site="badexample.com"),
        )
        assert self.find(store, Field("site", "Example.com")) == ["on a subdomain", "on the host"]
        assert self.find(store, Field("site", "news.example.com")) == ["on a subdomain"]

    def test_author_ignores_case(self, store: MentionStore) -> None:
        self.stored(store, make_mention("by jane", author="Jane Doe"), make_mention("by john", author="John"))
        assert self.find(store, Field("author", "jane doe")) == ["by jane"]
        assert self.find(store, Not(Field("author", "JANE DOE"))) == ["by john"]

    def test_lang_matches_the_language_and_its_regional_variants(self, store: MentionStore) -> None:
        self.stored(
            store,
            make_mention("british", language="en-GB"),
            make_mention("plain", language="en"),
            make_mention("french", language="fr"),
            make_mention("unknown", language=None),
        )
        assert self.find(store, Field("lang", "en")) == ["british", "plain"]
        assert self.find(store, Not(Field("lang", "en"))) == ["french", "unknown"]

    def test_source_names_the_configured_source(self, store: MentionStore) -> None:
        self.stored(store, make_mention("from news"), make_mention("from hn", source="hn"))
        assert self.find(store, Field("source", "hn")) == ["from hn"]

    def test_fields_and_text_mix_freely(self, store: MentionStore) -> None:
        self.stored(
            store,
            make_mention("acme on news", site="news.example.com"),
            make_mention("acme on blog", site="blog.test"),
            make_mention("other on blog", site="blog.test"),
        )
        blog = Field("site", "blog.test")
        assert self.find(store, And((Term("acme"), blog))) == ["acme on blog"]
        assert self.find(store, Or((Term("news"), blog))) == ["acme on blog", "acme on news", "other on blog"]
        assert self.find(store, And((Term("acme"), Not(blog)))) == ["acme on news"]

    # --- request filters, order and paging -----------------------------------------------------

    def test_request_filters_narrow_by_brand_sentiment_and_source(self, store: MentionStore) -> None:
        self.stored(
            store,
            make_mention("acme bad", label="negative"),
            make_mention("acme good", label="positive"),
            make_mention("globex bad", brand="Globex", label="negative", source="hn"),
        )
        assert self.find(store, None, brand="acme") == ["acme bad", "acme good"]
        assert self.find(store, None, brand="GLOBEX") == ["globex bad"]
        assert self.find(store, None, sentiment="negative") == ["acme bad", "globex bad"]
        assert self.find(store, Term("bad"), source="hn") == ["globex bad"]

    def test_since_is_inclusive_and_until_exclusive(self, store: MentionStore) -> None:
        for hour in range(4):
            self.stored(store, make_mention(f"hour {hour}", published=T0 + timedelta(hours=hour)))
        window = {"since": T0 + timedelta(hours=1), "until": T0 + timedelta(hours=3)}
        assert self.find(store, None, **window) == ["hour 1", "hour 2"]

    def test_newest_order_puts_the_latest_publication_first(self, store: MentionStore) -> None:
        for day in (2, 0, 1):
            self.stored(store, make_mention(f"acme day {day}", published=T0 + timedelta(days=day)))
        result = store.search(SearchRequest(query=Term("acme"), order="newest"))
        assert texts(result) == ["acme day 2", "acme day 1", "acme day 0"]

    def test_relevance_order_puts_the_best_match_first(self, store: MentionStore) -> None:
        self.stored(
            store,
            make_mention("acme mentioned once among many other words here", published=T0 + timedelta(days=1)),
            make_mention("acme acme acme", published=T0),
        )
        result = store.search(SearchRequest(query=Term("acme"), order="relevance"))
        assert texts(result)[0] == "acme acme acme"
        assert result.hits[0].score > result.hits[1].score

    def test_relevance_without_words_falls_back_to_newest(self, store: MentionStore) -> None:
        self.stored(
            store, make_mention("older", published=T0), make_mention("newer", published=T0 + timedelta(1))
        )
        result = store.search(SearchRequest(query=Field("site", "example.com"), order="relevance"))
        assert texts(result) == ["newer", "older"]

    def test_pages_split_the_results_and_total_counts_them_all(self, store: MentionStore) -> None:
        for minute in range(7):
            self.stored(store, make_mention(f"acme {minute}", published=T0 + timedelta(minutes=minute)))
        pages = [store.search(SearchRequest(query=Term("acme"), limit=3, offset=o)) for o in (0, 3, 6)]
        assert [p.total for p in pages] == [7, 7, 7]
        assert [len(p.hits) for p in pages] == [3, 3, 1]
        seen = [t for p in pages for t in texts(p)]
        assert seen == [f"acme {m}" for m in range(6, -1, -1)]

    def test_collapsing_by_story_shows_each_story_once_with_its_size(self, store: MentionStore) -> None:
        wire = [
            make_mention(f"acme outage wire copy {n}", story_id="s-wire", published=T0 + timedelta(minutes=n))
            for n in range(4)
        ]
        repost = [
            make_mention(f"acme refund thread {n}", story_id="s-thread", published=T0) for n in range(2)
        ]
        alone = make_mention("acme outage on its own", published=T0 + timedelta(minutes=10))
        self.stored(store, *wire, *repost, alone, make_mention("not this brand", story_id="s-wire"))

        result = store.search(SearchRequest(query=Term("acme"), collapse_story=True))
        assert result.total == 3
        assert [(h.mention.text, h.members) for h in result.hits] == [
            ("acme outage on its own", 1),
            ("acme outage wire copy 3", 4),  # the newest member stands for the story
            (repost[0].text, 2) if repost[0].id < repost[1].id else (repost[1].text, 2),
        ]
        narrowed = store.search(SearchRequest(query=Term("outage"), collapse_story=True, limit=1, offset=1))
        assert narrowed.total == 2 and [(h.mention.text, h.members) for h in narrowed.hits] == [
            ("acme outage wire copy 3", 4)
        ]
        plain = store.search(SearchRequest(query=Term("acme")))
        assert plain.total == 7 and all(h.members == 1 for h in plain.hits)

    def test_a_count_limit_caps_the_total_and_says_it_is_a_lower_bound(self, store: MentionStore) -> None:
        self.stored(
            store,
            *[make_mention(f"acme outage {n}", published=T0 + timedelta(minutes=n)) for n in range(5)],
            make_mention("acme outage story copy", story_id="s1"),
            make_mention("acme outage story copy again", story_id="s1"),
            make_mention("unrelated"),
        )
        capped = store.search(SearchRequest(query=Term("outage"), count_limit=3, limit=2))
        assert (capped.total, capped.total_at_least) == (3, True)
        assert texts(capped) == ["acme outage 4", "acme outage 3"]  # the page itself is whole
        for limit in (7, 50):  # at or under the limit the total is exact
            exact = store.search(SearchRequest(query=Term("outage"), count_limit=limit))
            assert (exact.total, exact.total_at_least) == (7, False)
        assert store.search(SearchRequest(query=Term("outage"))).total_at_least is False
        filtered = store.search(
            SearchRequest(query=Term("acme"), since=T0 + timedelta(minutes=1), count_limit=2)
        )
        assert (filtered.total, filtered.total_at_least) == (2, True)
        stories = store.search(SearchRequest(query=Term("outage"), collapse_story=True, count_limit=6))
        assert (stories.total, stories.total_at_least) == (6, False)
        stories = store.search(SearchRequest(query=Term("outage"), collapse_story=True, count_limit=5))
        assert stories.total == 5
        everything = store.search(SearchRequest(count_limit=4, limit=0))
        assert (everything.total, everything.total_at_least) == (4, True)
        with pytest.raises(ValueError, match="count_limit"):
            store.search(SearchRequest(count_limit=0))

    def test_a_zero_limit_still_counts(self, store: MentionStore) -> None:
        self.stored(store, make_mention("acme"), make_mention("acme too"))
        result = store.search(SearchRequest(query=Term("acme"), limit=0))
        assert (result.total, result.hits) == (2, [])

    def test_bad_requests_are_refused_with_a_clear_error(self, store: MentionStore) -> None:
        with pytest.raises(ValueError, match="order"):
            store.search(SearchRequest(order="oldest"))  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="limit"):
            store.search(SearchRequest(limit=-1))
        with pytest.raises(ValueError, match="offset"):
            store.search(SearchRequest(offset=-5))
        with pytest.raises(ValueError, match="sentiment"):
            store.search(SearchRequest(sentiment="furious"))

    # --- snippets -----------------------------------------------------------------------------

    def test_the_snippet_marks_the_matched_words(self, store: MentionStore) -> None:
        self.stored(store, make_mention("Customers say the Acme recall was handled badly."))
        (hit,) = store.search(SearchRequest(query=Phrase(("acme", "recall")))).hits
        assert "[[Acme]] [[recall]]" in hit.snippet
        assert "[[" not in hit.snippet.replace("[[Acme]] [[recall]]", "")

    def test_the_snippet_is_a_short_excerpt_around_the_first_match(self, store: MentionStore) -> None:
        filler = " ".join(f"word{i}" for i in range(300))
        self.stored(store, make_mention(f"{filler} the acme thing {filler}"))
        (hit,) = store.search(SearchRequest(query=Term("acme"))).hits
        assert "[[acme]]" in hit.snippet
        assert len(hit.snippet) < 400

    def test_brackets_in_the_text_cannot_forge_a_highlight(self, store: MentionStore) -> None:
        self.stored(store, make_mention("[[fake]] acme ]] [[ [[[x]]]"))
        (hit,) = store.search(SearchRequest(query=Term("acme"))).hits
        assert hit.snippet.count("[[") == hit.snippet.count("]]") == 1
        assert "[[acme]]" in hit.snippet

    def test_a_mention_found_by_field_alone_gets_the_start_of_its_text(self, store: MentionStore) -> None:
        self.stored(store, make_mention("Plain words here", author="jane"))
        (hit,) = store.search(SearchRequest(query=Field("author", "jane"))).hits
        assert hit.snippet.startswith("Plain words") and "[[" not in hit.snippet

    # --- unicode ------------------------------------------------------------------------------

    def test_unicode_text_round_trips_and_is_searchable(self, store: MentionStore) -> None:
        text = "Café Acme 🚀 — שלום עולם — naïve ÅNGSTRÖM"
        (mention,) = self.stored(store, make_mention(text, title="Ünïcödé 🚀"))
        assert store.get(mention.id) == mention
        for word in ("café", "שלום", "ångström", "naïve"):
            assert self.find(store, Term(word)) == [text], word
        assert self.find(store, Term("cafe")) == []

    # --- aggregates ---------------------------------------------------------------------------

    def test_the_histogram_counts_each_bucket_by_sentiment_in_time_order(self, store: MentionStore) -> None:
        hour = T0.replace(minute=0)
        self.stored(
            store,
            make_mention("acme a", published=hour + timedelta(minutes=5), label="negative"),
            make_mention("acme b", published=hour + timedelta(minutes=50), label="negative"),
            make_mention("acme c", published=hour + timedelta(minutes=59), label="positive"),
            make_mention("acme d", published=hour + timedelta(hours=2, minutes=1), label="neutral"),
            make_mention("other", published=hour + timedelta(minutes=7), label="negative"),
        )
        buckets = store.histogram(SearchRequest(query=Term("acme")), 3600)
        assert [b.start for b in buckets] == [hour, hour + timedelta(hours=2)]
        assert buckets[0].counts["negative"] == 2 and buckets[0].counts["positive"] == 1
        assert buckets[1].counts["neutral"] == 1 and buckets[1].counts["negative"] == 0

    def test_histogram_buckets_align_to_the_epoch_not_to_the_data(self, store: MentionStore) -> None:
        self.stored(store, make_mention("acme", published=datetime(2024, 5, 1, 12, 40, tzinfo=UTC)))
        (bucket,) = store.histogram(SearchRequest(), 900)
        assert bucket.start == datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
        assert bucket.start.timestamp() % 900 == 0

    def test_a_bucket_must_be_a_positive_number_of_seconds(self, store: MentionStore) -> None:
        with pytest.raises(ValueError, match="bucket"):
            store.histogram(SearchRequest(), 0)

    def test_counts_per_sentiment_follow_the_query_and_filters(self, store: MentionStore) -> None:
        counts = getattr(store, "counts", None)
        if counts is None:
            pytest.skip("this engine has no counts()")
        self.stored(
            store,
            make_mention("acme a", label="negative"),
            make_mention("acme b", label="negative"),
            make_mention("acme c", label="positive"),
            make_mention("acme d", label="positive", brand="globex"),
        )
        got = counts(SearchRequest(query=Term("acme"), brand="acme"))
        assert (got["negative"], got["positive"], got["neutral"]) == (2, 1, 0)

    # --- top values (the dashboard's "who is talking") ----------------------------------------

    def test_top_sources_sites_and_authors_follow_the_query_and_filters(self, store: MentionStore) -> None:
        top_values = store.top_values
        self.stored(
            store,
            make_mention("acme a", source="acme-news", site="news.example.com", author="Dana"),
            make_mention("acme b", source="acme-news", site="news.example.com", author="@dana"),
            make_mention("acme c", source="acme-news", site="blog.example.org", author="lee"),
            make_mention("acme d", source="Forum", site="forum.example.net", author="kim"),
            make_mention("acme e", source="forum", site="forum.example.net"),  # no author
            make_mention("acme f", source="forum", site="blog.example.org", author="lee", brand="globex"),
            make_mention(
                "acme g",
                source="zeta",
                site="zeta.example.com",
                author="ray",
                published=T0 - timedelta(days=9),
            ),
            make_mention("other", source="other", site="other.example.com", author="ola"),
        )
        request = SearchRequest(query=Term("acme"), brand="acme", since=T0 - timedelta(days=1), limit=0)
        # Values in the matcher's normal form (case, @handles), most frequent first, ties by value.
        assert top_values(request, "source") == [("acme-news", 3), ("forum", 2)]
        assert top_values(request, "site") == [
            ("forum.example.net", 2),
            ("news.example.com", 2),
            ("blog.example.org", 1),
        ]
        assert top_values(request, "author") == [("dana", 2), ("kim", 1), ("lee", 1)]  # no empty row
        assert top_values(request, "author", 1) == [("dana", 2)]
        assert top_values(SearchRequest(query=Term("nothing"), limit=0), "site") == []

    # --- retention ----------------------------------------------------------------------------

    def test_retention_deletes_only_what_was_published_before_the_cutoff(self, store: MentionStore) -> None:
        old = make_mention("acme old", published=T0 - timedelta(days=400))
        new = make_mention("acme new", published=T0)
        self.stored(store, old, new)
        assert store.delete_older_than(T0 - timedelta(days=365)) == 1
        self.settle(store)
        assert store.get(old.id) is None and store.get(new.id) == new
        assert self.find(store, Term("acme")) == ["acme new"]
        assert self.find(store, Term("old")) == []
        assert store.delete_older_than(T0 - timedelta(days=365)) == 0

    # --- reading everything out (reindex) -----------------------------------------------------

    def test_a_scan_reads_every_mention_once_in_bounded_batches(self, store: MentionStore) -> None:
        written = self.stored(store, *(make_mention(f"acme {i}", key=f"s{i}") for i in range(7)))
        batches = list(store.scan(3))
        assert all(1 <= len(batch) <= 3 for batch in batches)
        scanned = [m for batch in batches for m in batch]
        assert sorted(m.id for m in scanned) == sorted(m.id for m in written)
        assert {m.id: m for m in scanned} == {m.id: m for m in written}

    def test_a_scan_of_an_empty_store_yields_nothing(self, store: MentionStore) -> None:
        assert list(store.scan(100)) == []
