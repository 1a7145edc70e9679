"""The embedded store: the shared contract, plus what only a SQLite file can promise."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from store_contract import T0, StoreContract, make_mention

from listener.errors import StoreError
from listener.query.ast import And, Field, Near, Node, Not, Or, Phrase, Term
from pipelines import store_plan
from pipelines.fts import compile_query
from pipelines.store import SearchRequest
from pipelines.store_sqlite import EmbeddedStore


class TestEmbeddedStoreContract(StoreContract):
    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> Callable[[], EmbeddedStore]:
        return lambda: EmbeddedStore(tmp_path / "store.db")


class TestEmbeddedStoreContractDrivenByIndexes(StoreContract):
    """The contract again with every word search over the threshold, as at a million mentions:
    pages are found through the mentions indexes and the MATCH only probed."""

    @pytest.fixture
    def store_factory(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], EmbeddedStore]:
        monkeypatch.setattr(store_plan, "FTS_FIRST_MAX", -1)
        return lambda: EmbeddedStore(tmp_path / "store.db")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "store.db"


@pytest.fixture
def store(path: Path) -> Iterator[EmbeddedStore]:
    with EmbeddedStore(path) as store:
        yield store


def found(store: EmbeddedStore, query: Node) -> list[str]:
    return sorted(hit.mention.text for hit in store.search(SearchRequest(query=query, limit=100)).hits)


def table_rows(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


# --- hostile input ----------------------------------------------------------------------------

HOSTILE_WORDS = [
    '"',
    'acme" OR "zzz',
    "NEAR(",
    "NEAR(acme recall, 99)",
    "*",
    "acme*",
    "OR",
    "AND NOT",
    "'); DROP TABLE mentions; --",
    "title:acme",
    "^acme",
    "{title body}: acme",
    "\x00",
]


@pytest.mark.parametrize("word", HOSTILE_WORDS)
def test_hostile_query_words_are_only_ever_words(store: EmbeddedStore, path: Path, word: str) -> None:
    store.upsert([make_mention("acme recall or near drop table mentions"), make_mention("zzz")])
    for query in (Term(word), Term(word, prefix=True), Phrase((word, "recall")), Not(Term(word))):
        store.search(SearchRequest(query=query))
    for name in ("site", "author", "lang", "source"):
        assert found(store, Field(name, word)) == []
    assert table_rows(path, "mentions") == 2


def test_a_quote_inside_a_word_does_not_open_fts_syntax(store: EmbeddedStore) -> None:
    store.upsert([make_mention("acme or zzz"), make_mention("zzz"), make_mention("acme")])
    assert found(store, Term('acme" OR "zzz')) == ["acme or zzz"]
    assert found(store, Term("NEAR(acme zzz, 99)")) == []


def test_hostile_mention_text_is_stored_verbatim_and_harmless(store: EmbeddedStore) -> None:
    text = "acme \"NEAR( * OR'); DROP TABLE mentions; -- \x1b[31m [[x]] \u202e"
    (mention,) = [make_mention(text, title='" OR *')]
    store.upsert([mention])
    assert store.get(mention.id) == mention
    (hit,) = store.search(SearchRequest(query=Term("drop"))).hits
    assert "\x1b" not in hit.snippet and "\u202e" not in hit.snippet
    assert hit.snippet.count("[[") == 1 and "[[DROP]]" in hit.snippet


# --- files, threads and processes -------------------------------------------------------------


def test_a_second_store_on_the_same_file_sees_committed_upserts(path: Path) -> None:
    with EmbeddedStore(path) as writer, EmbeddedStore(path) as reader:
        assert reader.search(SearchRequest()).total == 0
        writer.upsert([make_mention("acme one")])
        assert found(reader, Term("acme")) == ["acme one"]
        writer.upsert([make_mention("acme two")])
        assert reader.search(SearchRequest(query=Term("acme"))).total == 2


def test_another_process_can_search_while_the_monitor_holds_the_store(
    store: EmbeddedStore, path: Path
) -> None:
    store.upsert([make_mention("acme from the monitor")])
    script = textwrap.dedent(
        f"""
        from listener.query.ast import Term
        from pipelines.store import SearchRequest
        from pipelines.store_sqlite import EmbeddedStore
        with EmbeddedStore({str(path)!r}) as store:
            print(store.search(SearchRequest(query=Term("monitor"))).total)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"


def test_readers_in_other_threads_never_see_a_half_written_batch(store: EmbeddedStore) -> None:
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                total = store.search(SearchRequest(query=Term("batch"), limit=0)).total
                assert total % 50 == 0, total
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for thread in readers:
        thread.start()
    for batch in range(20):
        store.upsert([make_mention(f"batch {batch} item {i}") for i in range(50)])
    stop.set()
    for thread in readers:
        thread.join()
    assert errors == []
    assert store.search(SearchRequest(query=Term("batch"))).total == 1000


def test_a_reader_opens_and_searches_while_a_writer_holds_the_lock(store: EmbeddedStore, path: Path) -> None:
    store.upsert([make_mention("acme before")])
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("DELETE FROM mentions")
        with EmbeddedStore(path, busy_timeout_s=0.5) as reader:
            assert found(reader, Term("acme")) == ["acme before"]
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_the_file_is_in_wal_mode(store: EmbeddedStore, path: Path) -> None:
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_file_from_a_future_version_is_refused_and_left_alone(path: Path) -> None:
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="schema version 99"):
        EmbeddedStore(path)


def test_a_closed_store_says_so(path: Path) -> None:
    store = EmbeddedStore(path)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.search(SearchRequest())


def test_a_failed_batch_writes_nothing(store: EmbeddedStore) -> None:
    good = make_mention("acme fine")
    with pytest.raises(TypeError, match="ScoredMention"):
        store.upsert([good, "not a mention"])  # type: ignore[list-item]
    assert store.get(good.id) is None


# --- index stays in step with the table -------------------------------------------------------


def test_updates_and_retention_keep_the_text_index_in_step(store: EmbeddedStore, path: Path) -> None:
    old = make_mention("acme old", published=T0 - timedelta(days=30), key="old")
    store.upsert([old, make_mention("acme new", key="new")])
    store.upsert([make_mention("acme rewritten", key="new")] * 3)
    assert table_rows(path, "mention_fts") == table_rows(path, "mentions") == 2
    assert found(store, Term("new")) == []
    assert store.delete_older_than(T0 - timedelta(days=1)) == 1
    assert table_rows(path, "mention_fts") == table_rows(path, "mentions") == 1


def test_retention_works_through_many_batches(store: EmbeddedStore) -> None:
    store.upsert([make_mention(f"m{i}", published=T0 - timedelta(days=2)) for i in range(25)])
    assert store.delete_older_than(T0, batch=10) == 25
    assert store.search(SearchRequest()).total == 0


def test_the_index_uses_the_shared_tokeniser(store: EmbeddedStore) -> None:
    """NFKC and full case folding, as the stream matcher sees words, not as SQLite would."""
    store.upsert([make_mention("Die Straße"), make_mention("ＡＣＭＥ launch"), make_mention("the ﬁnal word")])
    assert found(store, Term("strasse")) == ["Die Straße"]
    assert found(store, Term("acme")) == ["ＡＣＭＥ launch"]
    assert found(store, Term("final")) == ["the ﬁnal word"]


def test_snake_case_splits_into_words_as_the_tokeniser_says(store: EmbeddedStore) -> None:
    store.upsert([make_mention("see acme_corp docs")])
    assert found(store, Term("acme")) == ["see acme_corp docs"]
    assert found(store, Phrase(("acme", "corp"))) == ["see acme_corp docs"]


# --- compilation --------------------------------------------------------------------------------


def test_a_text_query_drives_the_search_from_the_index() -> None:
    compiled = compile_query(And((Term("acme"), Not(Term("boring")), Field("lang", "en"))))
    assert compiled.match is not None
    assert compiled.match.replace("(", "").replace(")", "") == '"acme" NOT "boring"'
    assert "m.lang" in compiled.where


def test_a_lone_not_is_compiled_as_a_predicate_not_a_match() -> None:
    compiled = compile_query(Not(Phrase(("b", "c"), prefix=True)))
    assert compiled.match is None
    assert compiled.where.startswith("NOT") and compiled.params == ('"b c" *',)


def test_near_is_decided_by_the_index_where_the_operands_cannot_overlap() -> None:
    compiled = compile_query(Near(Term("a"), Phrase(("b", "c"), prefix=True), 2))
    assert "listener_near" in compiled.where
    exact, across, _spec = compiled.params
    assert exact == 'NEAR("a" "b c" *, 2)'
    # Only one operand in the title and the other in the body is left to the exact check.
    assert across == '({title} : "a" AND {body} : "b c" *) OR ({title} : "b c" * AND {body} : "a")'
    assert len(compile_query(Near(Term("x"), Phrase(("y", "xy")), 1)).params) == 3


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (Term("acme"), Term("acme")),
        (Term("ac", prefix=True), Term("acme")),
        (Phrase(("big", "acme")), Phrase(("acme", "x"))),
        (Term("ac", prefix=True), Term("a", prefix=True)),
        (Phrase(("y", "xy")), Term("x", prefix=True)),
    ],
)
def test_near_operands_that_may_share_a_word_are_all_decided_exactly(left: Term, right: Node) -> None:
    compiled = compile_query(Near(left, right, 3))  # type: ignore[arg-type]
    check, _spec = compiled.params
    assert check.startswith("(NEAR(") and "listener_near" in compiled.where


def test_a_negative_near_distance_is_refused() -> None:
    with pytest.raises(ValueError, match="NEAR"):
        compile_query(Near(Term("a"), Term("b"), -1))


def test_or_with_a_field_is_still_ranked_by_its_words(store: EmbeddedStore) -> None:
    store.upsert(
        [
            make_mention("nothing here", site="blog.test", published=T0 + timedelta(days=1)),
            make_mention("acme acme", site="other.test", published=T0),
        ]
    )
    query = Or((Term("acme"), Field("site", "blog.test")))
    hits = store.search(SearchRequest(query=query, order="relevance")).hits
    assert [h.mention.text for h in hits] == ["acme acme", "nothing here"]
    assert hits[0].score > hits[1].score == 0.0


def test_near_operands_may_not_share_words(store: EmbeddedStore) -> None:
    store.upsert(
        [make_mention("acme alone"), make_mention("acme then acme"), make_mention("big acme x y acme")]
    )
    assert found(store, Near(Term("acme"), Term("acme"), 1)) == ["acme then acme"]
    assert found(store, Near(Phrase(("big", "acme")), Term("acme"), 1)) == []
    assert found(store, Near(Phrase(("big", "acme")), Term("acme"), 2)) == ["big acme x y acme"]


def test_near_reads_title_and_body_as_one_text_with_a_gap(store: EmbeddedStore) -> None:
    store.upsert([make_mention("recall announced", title="Acme"), make_mention("x recall", title="Acme")])
    assert found(store, Near(Term("acme"), Term("recall"), 1)) == ["recall announced"]


def _random_query(rng: random.Random, depth: int = 0) -> Node:
    words = ["a", "b", "c", "d", "ab", "abc"]

    def leaf() -> Term | Phrase:
        if rng.random() < 0.5:
            return Term(rng.choice(words), prefix=rng.random() < 0.2)
        return Phrase(tuple(rng.choice(words) for _ in range(rng.randint(2, 3))), prefix=rng.random() < 0.2)

    roll = rng.random()
    if depth > 2 or roll < 0.35:
        return leaf()
    if roll < 0.45:
        return Near(leaf(), leaf(), rng.randint(0, 3))
    if roll < 0.55:
        return rng.choice(
            [Field("site", "x.com"), Field("lang", "en"), Field("author", "jane"), Field("source", "s1")]
        )
    if roll < 0.65:
        return Not(_random_query(rng, depth + 1))
    children = tuple(_random_query(rng, depth + 1) for _ in range(rng.randint(2, 3)))
    return And(children) if roll < 0.85 else Or(children)


@pytest.mark.parametrize("fts_first_max", [store_plan.FTS_FIRST_MAX, -1], ids=["fts-first", "index-first"])
def test_search_finds_exactly_what_the_stream_matcher_would_alert_on(
    store: EmbeddedStore, monkeypatch: pytest.MonkeyPatch, fts_first_max: int
) -> None:
    monkeypatch.setattr(store_plan, "FTS_FIRST_MAX", fts_first_max)
    matcher = pytest.importorskip("listener.query.matcher")
    rng = random.Random(20240501)
    words = ["a", "b", "c", "d", "ab", "abc"]
    mentions = [
        make_mention(
            " ".join(rng.choice(words) for _ in range(rng.randint(1, 12))),
            title=rng.choice([None, "a b", "d", "c abc"]),
            site=rng.choice(["x.com", "y.x.com", "z.com", None]),
            language=rng.choice(["en", "en-GB", "fr", None]),
            author=rng.choice(["Jane", "@jane", "bob", None]),
            source=rng.choice(["s1", "s2"]),
        )
        for _ in range(120)
    ]
    store.upsert(mentions)
    views = {m.id: matcher.prepare_document(m) for m in mentions}
    for _ in range(300):
        query = _random_query(rng)
        expected = {m.id for m in mentions if matcher.evaluate(query, views[m.id])}
        got = {hit.mention.id for hit in store.search(SearchRequest(query=query, limit=1000)).hits}
        assert got == expected, query


# --- through the parser -----------------------------------------------------------------------


def test_analyst_queries_parse_and_run(store: EmbeddedStore) -> None:
    parse = pytest.importorskip("listener.query.parser").parse
    store.upsert(
        [
            make_mention("Acme recall is a disaster", site="news.example.com", author="Jane"),
            make_mention("recall: acme again", site="blog.test"),
            make_mention("Acmeville fair", site="blog.test"),
            make_mention("Acme launches rockets", language="fr"),
        ]
    )
    assert found(store, parse('"acme recall"')) == ["Acme recall is a disaster"]
    assert found(store, parse("acme NEAR/2 recall AND NOT site:example.com")) == ["recall: acme again"]
    assert found(store, parse("acme* AND site:blog.test")) == ["Acmeville fair", "recall: acme again"]
    assert found(store, parse("(rockets OR disaster) AND NOT lang:fr")) == ["Acme recall is a disaster"]
    assert found(store, parse("author:jane")) == ["Acme recall is a disaster"]


# --- how a search is driven ---------------------------------------------------------------------


def _history(store: EmbeddedStore, count: int = 400) -> None:
    """Mentions with common and rare words over many days and brands, ties in time included."""
    rng = random.Random(7)
    words = ["outage", "refund", "app", "slow", "great", "zebra"]
    store.upsert(
        [
            make_mention(
                " ".join(rng.choice(words) for _ in range(rng.randint(2, 9))),
                title=rng.choice([None, "outage", "refund news"]),
                brand=rng.choice(["Acme", "Globex"]),
                label=rng.choice(["negative", "neutral", "positive"]),
                source=rng.choice(["s1", "s2"]),
                published=T0 + timedelta(hours=rng.randrange(0, 24 * 30, 3)),
                story_id=rng.choice([None, None, "story-a", "story-b", "story-c"]),
            )
            for _ in range(count)
        ]
    )


def _answer(store: EmbeddedStore, request: SearchRequest) -> tuple[object, ...]:
    result = store.search(request)
    hits = [(h.mention.id, round(h.score, 9), h.snippet, h.members) for h in result.hits]
    histogram = [(b.start, b.counts) for b in store.histogram(request, 86400)]
    return result.total, hits, histogram, store.counts(request)


DRIVEN_REQUESTS = [
    SearchRequest(query=Term("outage")),
    SearchRequest(query=Or((Term("outage"), Term("refund"))), brand="Acme", since=T0 + timedelta(days=20)),
    SearchRequest(query=And((Term("app"), Not(Term("slow")))), sentiment="negative", offset=20),
    SearchRequest(query=Term("zeb", prefix=True), until=T0 + timedelta(days=10), limit=7, offset=3),
    SearchRequest(query=And((Term("great"), Term("app"))), order="relevance"),
    SearchRequest(query=Near(Term("outage"), Term("refund"), 2), brand="Globex"),
    SearchRequest(query=Term("refund"), collapse_story=True),
    SearchRequest(query=Term("app"), brand="Globex", collapse_story=True, offset=5, limit=4),
    SearchRequest(query=Term("slow"), collapse_story=True, order="relevance"),
    SearchRequest(brand="Acme", collapse_story=True),
    SearchRequest(query=And((Term("outage"), Field("source", "s2")))),
]


@pytest.mark.parametrize("request_", DRIVEN_REQUESTS)
def test_either_drive_finds_the_same_page_in_the_same_order_with_the_same_scores(
    store: EmbeddedStore, monkeypatch: pytest.MonkeyPatch, request_: SearchRequest
) -> None:
    _history(store)
    fts_first = _answer(store, request_)
    monkeypatch.setattr(store_plan, "FTS_FIRST_MAX", -1)
    assert _answer(store, request_) == fts_first
    assert fts_first[0] > 0


def test_a_common_word_is_paged_from_the_indexes_and_a_rare_one_from_the_text_index(
    store: EmbeddedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _history(store)
    monkeypatch.setattr(store_plan, "FTS_FIRST_MAX", 20)
    conn = store._conn()
    common, rare = compile_query(Term("outage")), compile_query(Phrase(("zebra", "zebra", "zebra")))

    def drive(compiled: object, **fields: object) -> store_plan.Drive:
        return store_plan.choose_drive(conn, compiled, SearchRequest(**fields), page=True)  # type: ignore[arg-type]

    assert drive(common) is store_plan.Drive.INDEX
    assert drive(common, order="relevance") is store_plan.Drive.FTS  # bm25 lives in the FTS scan
    assert drive(rare) is store_plan.Drive.FTS
    request = SearchRequest(query=Term("outage"), brand="Acme", since=T0 + timedelta(days=25))
    plan = store_plan.Plan(common, request, store_plan.Drive.INDEX)
    sql, params = plan.page_sql(request)
    steps = " ".join(str(row) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    # The brand/time index bounds the rows; the MATCH is run once, not once per row.
    assert "mentions_brand_published" in steps and "LIST SUBQUERY" in steps


def test_near_within_the_title_or_the_body_is_decided_by_the_index(store: EmbeddedStore) -> None:
    store.upsert(
        [
            make_mention("nothing", title="Acme recall today"),
            make_mention("acme x y recall", title="unrelated"),
            make_mention("acme x y z recall"),
            make_mention("recalled x acme"),
        ]
    )
    assert found(store, Near(Term("acme"), Term("recall"), 2)) == ["acme x y recall", "nothing"]
    assert found(store, Near(Term("recall", prefix=True), Term("acme"), 1)) == ["nothing", "recalled x acme"]


@pytest.mark.parametrize("request_", [r for r in DRIVEN_REQUESTS if r.order == "newest"])
def test_one_hit_per_story_read_as_a_stream_equals_the_grouping_over_all_matches(
    store: EmbeddedStore, request_: SearchRequest
) -> None:
    _history(store)
    request_ = replace(request_, collapse_story=True)
    conn, compiled = store._conn(), compile_query(request_.query)
    for drive in (store_plan.Drive.FTS, store_plan.Drive.INDEX):
        grouped = conn.execute(*store_plan.Plan(compiled, request_, drive).page_sql(request_)).fetchall()
        assert store_plan.stories_page(conn, compiled, request_, drive) == grouped


def test_a_version_1_file_gains_its_stories_when_opened(path: Path) -> None:
    with EmbeddedStore(path) as store:
        store.upsert(
            [
                make_mention("acme outage", story_id="s1", published=T0),
                make_mention("acme outage again", story_id="s1", published=T0 + timedelta(hours=1)),
                make_mention("acme fine"),
            ]
        )
    with sqlite3.connect(path) as conn:  # the file as version 1 wrote it
        conn.execute("DROP TABLE mention_stories")
        conn.execute("PRAGMA user_version = 1")
    with EmbeddedStore(path) as store:
        result = store.search(SearchRequest(query=Term("acme"), collapse_story=True))
        assert result.total == 2
        assert [(h.mention.text, h.members) for h in result.hits] == [
            ("acme outage again", 2),
            ("acme fine", 1),
        ]
    assert table_rows(path, "mention_stories") == 3


def test_a_redelivered_mention_moves_to_its_new_story(store: EmbeddedStore) -> None:
    first = make_mention("acme outage", key="k1", story_id="s1")
    store.upsert([first, make_mention("acme outage too", story_id="s1")])
    store.upsert([first.model_copy(update={"story_id": "s2"})])  # same text: the story follows all the same
    result = store.search(SearchRequest(query=Term("acme"), collapse_story=True))
    assert result.total == 2 and sorted(h.members for h in result.hits) == [1, 1]
    store.delete_older_than(T0 + timedelta(days=1))
    assert table_rows(store.path, "mention_stories") == 0
