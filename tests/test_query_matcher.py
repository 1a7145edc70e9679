"""Brand queries find the documents that mention the brand, and only those."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from listener.query.matcher import Matcher, anchors, evaluate, prepare, prepare_document
from listener.query.parser import parse
from listener.query.tokens import tokenize
from listener.records import Document


def matches(query: str, text: str, **fields: str) -> bool:
    """Asks both the reference evaluator and the matcher, and insists they agree."""
    node = parse(query)
    direct = evaluate(node, prepare(text, **fields))
    via_matcher = Matcher([(query, node)]).match_text(text, **fields) == [query]
    assert direct == via_matcher, (query, text, fields)
    return direct


def document(text: str, *, title: str | None = None, **fields: str) -> Document:
    now = datetime(2024, 5, 1, tzinfo=UTC)
    return Document(
        id="doc-1",
        source=fields.get("source", "acme-news"),
        source_type="feed",
        site=fields.get("site"),
        author=fields.get("author"),
        language=fields.get("language"),
        title=title,
        text=text,
        published=now,
        fetched=now,
    )


# --- word boundaries -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Acme is down again",
        "I love ACME",
        "acme's new plane",
        "#acme fail",
        "@acme help",
        "(acme)",
        "x_acme_y",
    ],
)
def test_the_brand_name_is_found_as_a_word(text: str) -> None:
    assert matches("acme", text)


@pytest.mark.parametrize("text", ["welcome to acmeville", "myacme account", "acme2000 launch", "ac me"])
def test_the_brand_name_inside_another_word_is_not_a_mention(text: str) -> None:
    assert not matches("acme", text)


def test_unicode_case_folding_matches_across_cases() -> None:
    assert matches("ÄCME", "ich mag äcme sehr")
    assert matches("äcme", "ÄCME IST TOLL")
    assert not matches("äcme", "acme ist toll")
    assert matches("strasse", "die STRASSE") and matches("Straße", "die strasse")
    assert matches("acme", "ＡＣＭＥ rocks")  # full-width letters


def test_a_hashtag_query_matches_the_plain_word_and_the_hashtag() -> None:
    assert matches("#acme", "acme is great")
    assert matches("#acme", "so #ACME")


def test_a_prefix_matches_words_that_start_with_it_but_not_words_that_contain_it() -> None:
    assert matches("acm*", "welcome to acmeville")
    assert matches("acm*", "ACME")
    assert not matches("acm*", "myacme")
    assert not matches("acme*", "acm")


def test_a_phrase_needs_its_words_adjacent_and_in_order() -> None:
    assert matches('"acme air"', "flying acme-air today")
    assert matches('"acme air"', "ACME AIR!")
    assert not matches('"acme air"', "air acme")
    assert not matches('"acme air"', "acme new air")
    assert matches('"acme ai*"', "acme airlines lost my bag")
    assert not matches('"acme ai*"', "acme bairlines")


# --- operators -------------------------------------------------------------------------------------


def test_and_or_not_combine_as_written() -> None:
    query = "(acme OR acmeair) AND (delay* OR cancelled) NOT job*"
    assert matches(query, "acmeair flight delayed again")
    assert matches(query, "ACME cancelled my flight")
    assert not matches(query, "acme is great")
    assert not matches(query, "acme delays: jobs at risk")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("acme outage", True),
        ("outage acme", True),
        ("acme one two outage", True),  # two words between: the limit
        ("outage one two acme", True),
        ("acme one two three outage", False),  # one beyond
        ("outage one two three acme", False),
        ("acme", False),
    ],
)
def test_near_allows_at_most_n_words_between_in_either_order(text: str, expected: bool) -> None:
    assert matches("acme NEAR/2 outage", text) is expected


def test_near_an_or_group_matches_near_any_member() -> None:
    query = "acme NEAR/2 (flight* OR refund)"
    assert matches(query, "refund me, acme")
    assert matches(query, "acme cancelled my flights")
    assert not matches(query, "acme is great, but refund")


def test_near_measures_between_the_ends_of_phrases() -> None:
    assert matches('"acme air" NEAR/1 refund*', "acme air gave refunds")
    assert matches('"acme air" NEAR/1 refund*', "refund from acme air")
    assert not matches('"acme air" NEAR/1 refund*', "refund was not from acme air")


def test_near_zero_means_adjacent_and_the_same_word_twice_needs_two_occurrences() -> None:
    assert matches("acme NEAR/0 air", "air acme")
    assert not matches("acme NEAR/0 air", "acme x air")
    assert not matches("acme NEAR/3 acme", "acme once")
    assert matches("acme NEAR/3 acme", "acme and acme")


def test_near_with_many_occurrences_stays_correct() -> None:
    text = " ".join(["acme"] * 3000 + ["filler"] * 10 + ["outage"] * 3000)
    assert matches("acme NEAR/10 outage", text)
    assert not matches("acme NEAR/9 outage", text)


# --- fields ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("site", "expected"),
    [
        ("example.com", True),
        ("news.example.com", True),
        ("a.b.EXAMPLE.com", True),
        ("badexample.com", False),
        ("example.com.evil.org", False),
        ("example.org", False),
    ],
)
def test_site_matches_the_host_and_its_subdomains(site: str, expected: bool) -> None:
    assert matches("acme site:example.com", "acme news", site=site) is expected


def test_a_document_without_the_field_does_not_match_the_filter() -> None:
    assert not matches("acme site:example.com", "acme news")
    assert matches("acme NOT site:example.com", "acme news")


def test_author_is_compared_without_regard_to_case_spacing_or_at_sign() -> None:
    assert matches('acme author:"Jane Doe"', "acme", author="jane  DOE")
    assert matches("acme author:janedoe", "acme", author="@JaneDoe")
    assert not matches('acme author:"Jane Doe"', "acme", author="Jane Doe Jr")


def test_lang_matches_the_language_and_its_regional_variants() -> None:
    assert matches("acme lang:en", "acme", lang="en")
    assert matches("acme lang:en", "acme", lang="en_GB")
    assert matches("acme lang:en-gb", "acme", lang="en-GB")
    assert not matches("acme lang:en", "acme", lang="eng")
    assert not matches("acme lang:en-gb", "acme", lang="en")


def test_source_is_the_configured_source_name() -> None:
    assert matches("acme source:acme-news", "acme", source="Acme-News")
    assert not matches("acme source:acme-news", "acme", source="acme-news-2")


# --- the matcher over many queries -----------------------------------------------------------------


def test_a_document_is_matched_on_its_title_and_text_and_its_fields() -> None:
    matcher = Matcher(
        [
            (("acme", "acme"), parse("acme")),
            (("acme", "site"), parse("outage site:example.com")),
            (("beta", "beta"), parse("beta")),
            (("acme", "lang"), parse("acme lang:fr")),
        ]
    )
    doc = document("Everything is down", title="Acme outage", site="status.example.com", language="en")
    assert matcher.match(doc) == [("acme", "acme"), ("acme", "site")]


def test_a_phrase_does_not_run_from_the_title_into_the_text() -> None:
    matcher = Matcher([("p", parse('"acme air"'))])
    assert matcher.match(document("air traffic", title="Acme")) == []
    assert matcher.match(document("acme air traffic", title="Acme")) == ["p"]
    assert evaluate(parse('"acme air"'), prepare_document(document("air traffic", title="Acme"))) is False


def test_keys_come_back_once_and_in_the_order_the_queries_were_given() -> None:
    queries = ["zeta", "acme", "acme OR zeta", "acme"]
    matcher = Matcher((q, parse(q)) for q in queries)
    assert matcher.match_text("acme and zeta") == ["zeta", "acme", "acme OR zeta"]


def test_queries_without_a_word_anchor_are_still_matched() -> None:
    matcher = Matcher([("not", parse("NOT acme")), ("site", parse("site:example.com"))])
    assert matcher.always_evaluated == 1
    assert matcher.match_text("hello", site="www.example.com") == ["not", "site"]
    assert matcher.match_text("acme", site="example.org") == []


def test_an_empty_matcher_matches_nothing() -> None:
    assert Matcher([]).match_text("anything at all") == []


def test_an_and_query_is_anchored_on_its_rarest_part() -> None:
    assert anchors(parse("the AND acme")) == frozenset({("word", "acme")})
    assert anchors(parse("acme OR beta*")) == frozenset({("word", "acme"), ("prefix", "beta")})
    assert anchors(parse("NOT acme")) is None
    assert anchors(parse("lang:en acme")) == frozenset({("word", "acme")})
    assert anchors(parse("site:example.com NOT acme")) == frozenset({("site", "example.com")})


# --- agreement with direct evaluation --------------------------------------------------------------

VOCABULARY = ["acme", "acmeville", "air", "beta", "bet", "outage", "love", "café", "straße", "the", "x1"]
PREFIXES = ["ac", "acm", "be", "out", "caf", "str"]
FIELDS = ["site:example.com", "lang:en", "author:jane", "source:feed"]
SEPARATORS = [" ", " ", " ", "-", "'s ", "_", ", ", " #", " @", "! ", "\n", "🚀", "—"]


def random_operand(rng: random.Random, depth: int) -> str:
    roll = rng.random()
    if depth > 0 and roll < 0.25:
        return "(" + random_query(rng, depth - 1) + ")"
    if roll < 0.45:
        return rng.choice(VOCABULARY)
    if roll < 0.55:
        return rng.choice(PREFIXES) + "*"
    if roll < 0.65:
        return '"' + " ".join(rng.sample(VOCABULARY, rng.randint(2, 3))) + '"'
    if roll < 0.75:
        words = VOCABULARY + [p + "*" for p in PREFIXES]
        left, right = rng.choice(VOCABULARY), rng.choice(words)
        if rng.random() < 0.3:
            right = "(" + " OR ".join(rng.sample(words, 2)) + ")"
        return f"{left} NEAR/{rng.randint(0, 4)} {right}"
    if roll < 0.85:
        return rng.choice(FIELDS)
    inner = random_operand(rng, depth)
    needs_group = "NEAR/" in inner and not inner.startswith("(")
    return "NOT " + (f"({inner})" if needs_group else inner)


def random_query(rng: random.Random, depth: int = 2) -> str:
    parts = [random_operand(rng, depth)]
    for _ in range(rng.randint(0, 3)):
        parts.append(rng.choice([" AND ", " OR ", " "]))
        parts.append(random_operand(rng, depth))
    return "".join(parts)


def random_text(rng: random.Random) -> str:
    words = []
    for _ in range(rng.randint(0, 14)):
        word = rng.choice([*VOCABULARY, "noise", "ACME", "Café", "STRASSE", "acmé"])
        words.append(word.upper() if rng.random() < 0.1 else word)
        words.append(rng.choice(SEPARATORS))
    return "".join(words)


def random_fields(rng: random.Random) -> dict[str, str]:
    options = {
        "site": ["example.com", "news.example.com", "example.org"],
        "lang": ["en", "en-GB", "de"],
        "author": ["jane", "Jane", "joe"],
        "source": ["feed", "other"],
    }
    return {name: rng.choice(values) for name, values in options.items() if rng.random() < 0.6}


def test_the_matcher_agrees_with_evaluating_every_query_directly() -> None:
    rng = random.Random(20240501)
    texts = list(dict.fromkeys(random_query(rng) for _ in range(300)))
    entries = [(text, parse(text)) for text in texts]
    matcher = Matcher(entries)
    total_hits = 0
    for _ in range(300):
        text, fields = random_text(rng), random_fields(rng)
        view = prepare(text, **fields)
        expected = [key for key, node in entries if evaluate(node, view)]
        assert matcher.match_text(text, **fields) == expected, (text, fields)
        total_hits += len(expected)
    assert total_hits > 1000  # the generated cases really exercise matching


def test_the_matcher_sees_the_same_words_as_the_shared_tokeniser() -> None:
    rng = random.Random(7)
    for _ in range(300):
        text = random_text(rng)
        words = set(tokenize(text))
        matcher = Matcher((w, parse(w)) for w in sorted(words))
        assert set(matcher.match_text(text)) == words, text
        assert list(prepare(text).tokens) == tokenize(text)
