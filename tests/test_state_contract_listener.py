"""The web app's and the index stage's state behaves the same on SQLite and on PostgreSQL.

Accounts, brand and watch-term versions, feedback and stories are shared by
every web process and stage copy of a deployment. Each test runs over both
engines; the ones about two processes hold two handles on one database
(`state_db_pair`), as a stage and the web app do.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import pytest
from state_engines import migrated

from listener import brand_settings, stories, watch_versions
from listener.brand_settings import BrandSettingsStore, BrandsWatcher, LiveBrands, effective_brands
from listener.config import AlertRule, BrandConfig
from listener.errors import ClassifierError
from listener.records import (
    Document,
    Mention,
    ScoredMention,
    Sentiment,
    SentimentLabel,
    document_id,
    mention_id,
)
from listener.stages import LiveMatchStage
from listener.statedb import StateDB
from listener.stories import StoryIndex
from listener.watch_versions import WatchTermStore
from listener.web import accounts, feedback
from listener.web.accounts import AccountError, AccountStore, User
from listener.web.feedback import FeedbackIn, MentionFeedback
from models import feedback as training
from models.feedback import Correction, FeedbackStore

T = TypeVar("T")
PASSWORD = "correct horse battery"
Pair = tuple[StateDB, StateDB]


def at_once(*jobs: Callable[[], T]) -> list[T]:
    """Runs the jobs in threads released together; their results, in order."""
    results: dict[int, T] = {}
    start = threading.Barrier(len(jobs))

    def run(i: int) -> None:
        start.wait()
        results[i] = jobs[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [results[i] for i in range(len(jobs))]


# --- accounts ------------------------------------------------------------------------------------


def account_stores(pair: Pair) -> tuple[AccountStore, AccountStore]:
    first, second = pair
    return AccountStore(migrated(first, "accounts", accounts.MIGRATIONS)), AccountStore(second)


def test_a_session_opened_by_one_web_process_is_honoured_and_ended_by_another(state_db_pair: Pair) -> None:
    web1, web2 = account_stores(state_db_pair)
    ana = web1.add_user("Ana", "editor", PASSWORD, ("Acme",))
    assert ana == User("ana", "editor", ("Acme",))
    web1.add_user("bo", "viewer", PASSWORD)
    assert web2.user("ana") == ana and web2.user("nobody") is None
    assert [u.name for u in web2.users()] == ["ana", "bo"]
    assert web2.authenticate(" ANA ", PASSWORD) == ana
    assert web2.authenticate("ana", "wrong password!") is None
    assert web2.authenticate("nobody", PASSWORD) is None
    sid, session = web1.open_session(ana)
    assert web2.session(sid) == session and session.user == ana
    web2.close_session(sid)
    assert web1.session(sid) is None


def test_user_names_are_unique_and_names_roles_and_passwords_are_checked(state_db: StateDB) -> None:
    store = AccountStore(migrated(state_db, "accounts", accounts.MIGRATIONS))
    store.add_user("ana", "admin", PASSWORD)
    for name, role, password, problem in [
        ("ANA", "viewer", PASSWORD, "already exists"),
        ("a b", "viewer", PASSWORD, "user name"),
        ("cy", "owner", PASSWORD, "role must be"),
        ("cy", "viewer", "short", "at least 10"),
    ]:
        with pytest.raises(AccountError, match=problem):
            store.add_user(name, role, password)
    assert [u.name for u in store.users()] == ["ana"]


def test_passwords_sessions_tokens_and_links_are_stored_only_hashed(state_db: StateDB) -> None:
    store = AccountStore(migrated(state_db, "accounts", accounts.MIGRATIONS))
    ana = store.add_user("ana", "responder", PASSWORD)
    token = store.issue_token("ana", "nightly export")
    assert store.token_user(token) == ana and store.token_user("lst_guessed") is None
    sid, _ = store.open_session(ana)
    link = store.issue_login_link("ana")
    with pytest.raises(AccountError, match="no user"):
        store.issue_token("nobody")
    with pytest.raises(AccountError, match="no user"):
        store.issue_login_link("nobody")
    stored = repr(
        [
            state_db.execute(f"SELECT * FROM {table}").rows
            for table in ("users", "sessions", "tokens", "login_links")
        ]
    )
    for secret in (PASSWORD, token, sid, link):
        assert secret not in stored


def test_a_login_link_works_once_and_not_after_it_expires(state_db: StateDB) -> None:
    store = AccountStore(migrated(state_db, "accounts", accounts.MIGRATIONS))
    ana = store.add_user("ana", "viewer", PASSWORD)
    link = store.issue_login_link("ana")
    assert store.redeem_login_link(link) == ana
    assert store.redeem_login_link(link) is None
    stale = store.issue_login_link("ana", ttl_s=-1)
    assert store.redeem_login_link(stale) is None
    assert state_db.execute("SELECT count(*) FROM login_links").scalar() == 0  # spent either way


def test_expired_sessions_are_refused_and_swept_when_the_next_one_opens(state_db: StateDB) -> None:
    store = AccountStore(migrated(state_db, "accounts", accounts.MIGRATIONS))
    ana = store.add_user("ana", "viewer", PASSWORD)
    old, _ = store.open_session(ana)
    state_db.execute("UPDATE sessions SET expires = ?", (datetime.now(UTC).timestamp() - 1,))
    assert store.session(old) is None
    fresh, _ = store.open_session(ana)
    assert store.session(fresh) is not None
    assert state_db.execute("SELECT count(*) FROM sessions").scalar() == 1


def test_two_web_processes_redeeming_one_login_link_let_one_person_in(state_db_pair: Pair) -> None:
    web1, web2 = account_stores(state_db_pair)
    web1.add_user("ana", "admin", PASSWORD)
    for _ in range(5):
        link = web1.issue_login_link("ana")
        results = at_once(*(partial(web.redeem_login_link, link) for web in (web1, web2)))
        assert sorted(r is None for r in results) == [False, True]


# --- brand settings and watch-term versions ------------------------------------------------------


def version_stores(db: StateDB) -> tuple[WatchTermStore, BrandSettingsStore]:
    migrated(db, "watch_versions", watch_versions.MIGRATIONS)
    migrated(db, "brand_settings", brand_settings.MIGRATIONS)
    return WatchTermStore(db), BrandSettingsStore(db)


def test_brand_setting_versions_number_up_and_read_back_newest_first(state_db: StateDB) -> None:
    _, settings = version_stores(state_db)
    assert (settings.latest_seq(), settings.saved(), settings.history("Acme")) == (0, 0, [])
    rule = {**AlertRule().model_dump(), "min_count": 9}
    first = settings.save("Acme", "alert", rule, "ana")
    second = settings.save("acme", "channel", {"slack_channel": "#acme"}, "bo")
    added = settings.save("Zephyro", "brand", {"name": "Zephyro", "queries": ["zephyro"]}, "ana")
    assert first.seq < second.seq < added.seq == settings.latest_seq()
    assert settings.saved() == 3
    assert [(c.part, c.author) for c in settings.history("ACME")] == [("channel", "bo"), ("alert", "ana")]
    assert settings.latest("Acme", "alert") == rule and settings.latest("Acme", "oncall") is None
    assert settings.newest()[("acme", "channel")] == {"slack_channel": "#acme"}
    assert settings.added_brands() == [{"name": "Zephyro", "queries": ["zephyro"]}]
    assert second.at <= datetime.now(UTC)


def test_watch_term_versions_keep_their_history_and_fall_back_to_watch_yaml(state_db: StateDB) -> None:
    terms, _ = version_stores(state_db)
    assert terms.db is state_db
    assert terms.effective("Acme", ["acme"]) == ["acme"] and terms.latest_seq() == 0
    terms.save("Acme", ["acme phone"], "ana")
    terms.save("ACME", ['acme OR "acme corp"'], "bo")
    assert terms.effective("acme", ["acme"]) == ['acme OR "acme corp"']
    assert [(v.queries, v.author) for v in terms.history("Acme")] == [
        (['acme OR "acme corp"'], "bo"),
        (["acme phone"], "ana"),
    ]
    assert terms.saved() == 2 and terms.latest_seq() >= 2


def doc(text: str) -> Document:
    now = datetime.now(UTC)
    return Document(
        id=document_id("feed", text), source="feed", source_type="feed", text=text, published=now, fetched=now
    )


def test_the_running_match_stage_follows_a_brand_added_by_the_web_app_in_another_process(
    state_db_pair: Pair,
) -> None:
    stage_db, web_db = state_db_pair
    version_stores(stage_db)
    stage = LiveMatchStage([BrandConfig(name="Acme", queries=["acme"])], stage_db, check_every_s=0.0)
    assert stage.handle([doc("zephyro fiber is down again")]) == []
    terms, settings = version_stores(web_db)
    settings.save("Zephyro", "brand", {"name": "Zephyro", "queries": ["zephyro"]}, "ana")
    matched = stage.handle([doc("zephyro fiber is down again")])
    assert [o.record.brand for o in matched if isinstance(o.record, Mention)] == ["Zephyro"]
    terms.save("Zephyro", ["zephyro AND outage"], "ana")
    assert stage.handle([doc("zephyro fiber is down again, third time")]) == []


def test_live_brands_apply_a_channel_or_archive_saved_in_another_process_at_the_next_lookup(
    state_db_pair: Pair,
) -> None:
    stage_db, web_db = state_db_pair
    version_stores(stage_db)
    configured = [BrandConfig(name="Acme", queries=["acme"]), BrandConfig(name="Globex", queries=["globex"])]
    live = LiveBrands(configured, stage_db)
    assert live.channel("Acme") is None
    _, settings = version_stores(web_db)
    settings.save("Acme", "channel", {"slack_channel": "#acme-alerts"}, "ana")
    assert live.channel("acme") == "#acme-alerts"
    settings.save("Globex", "archived", {"archived": True}, "ana")
    assert live.get("Globex") is None
    assert [b.name for b in effective_brands(configured, stage_db)] == ["Acme"]
    assert [b.name for b in effective_brands(configured, stage_db, archived=True)] == ["Acme", "Globex"]


def test_saves_racing_from_two_processes_are_all_kept_and_the_watcher_sees_each(state_db_pair: Pair) -> None:
    stage_db = state_db_pair[0]
    version_stores(stage_db)
    watcher = BrandsWatcher([BrandConfig(name="Acme", queries=["acme"])], stage_db, check_every_s=0.0)
    assert watcher.changed() is not None and watcher.changed() is None  # first look, then quiet
    stores = [version_stores(db)[1] for db in state_db_pair]

    def save_many(store: BrandSettingsStore) -> list[int]:
        return [store.save("Acme", "channel", {"slack_channel": f"#c{i}"}, "ana").seq for i in range(20)]

    seqs = at_once(lambda: save_many(stores[0]), lambda: save_many(stores[1]))
    every = [seq for found in seqs for seq in found]
    assert len(set(every)) == 40 and stores[0].saved() == 40
    assert watcher.version() == (0, 40)
    assert watcher.changed() is not None and watcher.changed() is None


# --- feedback ------------------------------------------------------------------------------------


def scored(mention_id: str = "m1", text: str = "acme support hung up on me") -> ScoredMention:
    now = datetime.now(UTC)
    sentiment = Sentiment(label=SentimentLabel.POSITIVE, model_id="demo", model_version="1")
    return ScoredMention(
        id=mention_id, document_id=mention_id, brand="Acme", source="forum", source_type="feed",
        text=text, published=now, fetched=now, sentiment=sentiment,
    )  # fmt: skip


def test_mention_feedback_keeps_each_persons_latest_word_and_feeds_training(state_db: StateDB) -> None:
    store = MentionFeedback(
        migrated(state_db, "mention_feedback", feedback.MIGRATIONS),
        migrated(state_db, "sentiment_feedback", training.MIGRATIONS),
    )
    mention = scored()
    store.record(mention, FeedbackIn(kind="wrong_sentiment", label="neutral"), "ana")
    store.record(mention, FeedbackIn(kind="wrong_sentiment", label="negative", note="clearly angry"), "ana")
    store.record(mention, FeedbackIn(kind="not_about_brand", note="a different Acme"), "bo")
    given = store.for_mention("m1")
    assert [(g["kind"], g["label"], g["user"], g["model_label"]) for g in given] == [
        ("wrong_sentiment", "negative", "ana", "positive"),
        ("not_about_brand", None, "bo", "positive"),
    ]
    assert given[0]["note"] == "clearly angry" and store.for_mention("m2") == []
    (correction,) = FeedbackStore(state_db).corrections()
    assert (correction.label, correction.corrected_by, correction.model_id) == ("negative", "ana", "demo")


def test_sentiment_corrections_replace_earlier_ones_and_export_as_training_data(state_db: StateDB) -> None:
    store = FeedbackStore(migrated(state_db, "sentiment_feedback", training.MIGRATIONS))
    store.record(
        Correction("m1", "Acme", "acme is fine I guess", "neutral", corrected_at="2026-01-01T00:00:00")
    )
    store.record(
        Correction("m1", "Acme", "acme is fine I guess", "positive", corrected_at="2026-01-02T00:00:00")
    )
    store.record(Correction("m2", "Globex", "globex lost my parcel", "negative", model_label="positive"))
    with pytest.raises(ClassifierError, match="not one of"):
        store.record(Correction("m3", "Acme", "text", "angry"))
    with pytest.raises(ClassifierError, match="text"):
        store.record(Correction("m3", "Acme", "  ", "negative"))
    assert [(c.mention_id, c.label) for c in store.corrections()] == [("m1", "positive"), ("m2", "negative")]
    assert [c.mention_id for c in store.corrections("Globex")] == ["m2"]
    lines = io.StringIO()
    assert store.export(lines) == 2
    assert json.loads(lines.getvalue().splitlines()[1])["model_label"] == "positive"
    table = io.StringIO()
    assert store.export(table, fmt="csv", brand="Acme") == 1
    assert next(csv.DictReader(io.StringIO(table.getvalue())))["label"] == "positive"


# --- stories -------------------------------------------------------------------------------------

ARTICLE = (
    "Zephyro Fiber confirms a core network failure that left customers in Eastgate and Millbrook"
    " without service for most of Tuesday, and promises bill credits within two weeks"
)
ROUNDS = (
    ARTICLE,
    "Regulator opens an inquiry into Zephyro Fiber billing after thousands of customers were charged"
    " twice in November, with a hearing set for the spring",
    "Zephyro Fiber names a new chief executive as the board reviews the network outage and promises"
    " an independent report on what went wrong",
)
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def copy(
    n: int, *, text: str = ARTICLE, brand: str = "Zephyro Fiber", minutes: int = 0, **extra: Any
) -> Mention:
    """Outlet `n`'s copy of `text` (the original when n is 0), as a mention of `brand`."""
    doc = document_id(f"news-{n}", f"{text}|{n}")
    when = T0 + timedelta(minutes=minutes)
    body = text if n == 0 else f"(Outlet {n}) {text}"
    return Mention(id=mention_id(doc, brand), document_id=doc, brand=brand, source=f"news-{n}",
                   source_type="feed", text=body, published=when, fetched=when, **extra)  # fmt: skip


def story_index(db: StateDB) -> StoryIndex:
    return StoryIndex(migrated(db, "stories", stories.MIGRATIONS))


def members(index: StoryIndex, story_id: str) -> int:
    """How many mentions the stored story holds (0 when it is not stored)."""
    story = index.get(story_id)
    return 0 if story is None else story.members


def test_syndicated_copies_fold_into_one_story_with_its_size_reach_and_first_seen(state_db: StateDB) -> None:
    index = story_index(state_db)
    first = index.add(copy(0, minutes=10, url="https://a.example/1", engagement={"likes": 5, "reposts": 2}))
    assert index.add_many([copy(n, minutes=n) for n in (1, 2, 3)]) == [first] * 3
    other = index.add(copy(9, text="Globex lost my parcel again and support never answered the phone"))
    elsewhere = index.add(copy(0, brand="Velmora Air"))
    assert len({first, other, elsewhere}) == 3  # brands never share a story
    story = index.get(first)
    assert story is not None and (story.members, story.reach) == (4, (1 + 5 + 2) + 3)
    assert (story.first_seen, story.last_seen) == (T0 + timedelta(minutes=1), T0 + timedelta(minutes=10))
    assert (story.representative, story.url, story.brand) == (ARTICLE, "https://a.example/1", "zephyro fiber")
    assert [s.id for s in index.stories("ZEPHYRO FIBER")] == [first, other]
    assert [s.id for s in index.stories("Zephyro Fiber", limit=1)] == [first]
    assert index.stories("Zephyro Fiber", since=T0 + timedelta(minutes=5)) == [story]
    assert index.story_of(copy(2).id) == first and index.story_of("unknown") is None
    assert index.get("unknown") is None


def test_a_redelivered_mention_gets_its_old_story_back_even_after_a_restart(state_db: StateDB) -> None:
    index = story_index(state_db)
    first = index.add(copy(0))
    assert index.add_many([copy(1), copy(0), copy(1)]) == [first] * 3
    index.close()
    again = StoryIndex(state_db)
    assert again.add(copy(1)) == first and again.add(copy(2)) == first
    assert members(again, first) == 3


def test_two_index_copies_adding_copies_of_one_story_at_once_make_one_story(state_db_pair: Pair) -> None:
    one, two = story_index(state_db_pair[0]), StoryIndex(state_db_pair[1])
    for round_, text in enumerate(ROUNDS):
        base = round_ * 100
        # Both copies get mention base+0 (a redelivery during a rebalance) and copies of their own.
        batches = (
            [copy(base + n, text=text) for n in (0, 1, 2, 3)],
            [copy(base + n, text=text) for n in (0, 4, 5, 6)],
        )
        ids = at_once(partial(one.add_many, batches[0]), partial(two.add_many, batches[1]))
        assert len({sid for found in ids for sid in found}) == 1, ids
        assert members(one, ids[0][0]) == 7


def test_a_copy_joins_the_stories_another_copy_started_after_it_loaded(state_db_pair: Pair) -> None:
    one, two = story_index(state_db_pair[0]), StoryIndex(state_db_pair[1])
    started = two.add(copy(0))
    assert one.add(copy(1)) == started
    assert two.add(copy(2)) == started  # and back: each copy follows the other's joins and starts
    assert members(one, started) == 3


def test_a_batch_rolled_back_by_its_caller_leaves_no_phantom_story(state_db: StateDB) -> None:
    index = story_index(state_db)
    with pytest.raises(RuntimeError), state_db.transaction():
        index.add(copy(0))
        raise RuntimeError("the caller failed after the index had assigned")
    story = index.add(copy(1))
    assert members(index, story) == 1
    assert index.add(copy(0)) == story
