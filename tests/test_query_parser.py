"""A brand team writes watch queries; the parser understands them or says exactly where they went wrong."""

from __future__ import annotations

import time

import pytest

from listener.errors import QuerySyntaxError
from listener.query.ast import And, Field, Near, Not, Or, Phrase, Term
from listener.query.parser import MAX_DEPTH, MAX_QUERY_LENGTH, parse, parse_watch_query
from listener.query.render import render

acme, beta, gamma = Term("acme"), Term("beta"), Term("gamma")


def syntax_error(query: str) -> QuerySyntaxError:
    with pytest.raises(QuerySyntaxError) as caught:
        parse(query)
    return caught.value


# --- grammar -------------------------------------------------------------------------------------


def test_a_single_brand_name_is_one_case_folded_term() -> None:
    assert parse("ACME") == acme


def test_or_binds_looser_than_and() -> None:
    assert parse("acme OR beta AND gamma") == Or((acme, And((beta, gamma))))
    assert parse("acme AND beta OR gamma") == Or((And((acme, beta)), gamma))


def test_words_side_by_side_mean_and() -> None:
    assert parse("acme beta gamma") == parse("acme AND beta AND gamma") == And((acme, beta, gamma))


def test_implicit_and_also_binds_tighter_than_or() -> None:
    assert parse("acme beta OR gamma") == Or((And((acme, beta)), gamma))


def test_not_binds_tightest() -> None:
    assert parse("NOT acme beta") == And((Not(acme), beta))
    assert parse("NOT acme OR beta") == Or((Not(acme), beta))
    assert parse("acme NOT beta") == And((acme, Not(beta)))


def test_near_binds_tighter_than_and_and_or() -> None:
    near = Near(acme, beta, 3)
    assert parse("acme NEAR/3 beta gamma") == And((near, gamma))
    assert parse("gamma OR acme NEAR/3 beta") == Or((gamma, near))


def test_parentheses_override_precedence() -> None:
    assert parse("(acme OR beta) gamma") == And((Or((acme, beta)), gamma))
    assert parse("NOT (acme OR beta)") == Not(Or((acme, beta)))


def test_nested_groups_of_the_same_operator_are_flattened() -> None:
    assert parse("acme AND (beta AND gamma)") == And((acme, beta, gamma))
    assert parse("(acme OR beta) OR gamma") == Or((acme, beta, gamma))


def test_lowercase_operators_are_ordinary_words() -> None:
    assert parse("rock and roll") == And((Term("rock"), Term("and"), Term("roll")))
    assert parse("acme or not") == And((acme, Term("or"), Term("not")))
    assert parse("NEARBY acme") == And((Term("nearby"), acme))


def test_a_quoted_phrase_keeps_its_words_in_order() -> None:
    assert parse('"Acme Air"') == Phrase(("acme", "air"))
    assert parse('"acme"') == acme


def test_a_bare_word_with_punctuation_inside_becomes_a_phrase() -> None:
    assert parse("acme-air") == Phrase(("acme", "air"))
    assert parse("acme.com") == Phrase(("acme", "com"))
    assert parse("acme's") == Phrase(("acme", "s"))


def test_hashtags_and_handles_are_the_plain_word() -> None:
    assert parse("#acme") == acme
    assert parse("@acme") == acme
    assert parse("#Acme OR @ACME") == Or((acme, acme))


def test_prefix_wildcards() -> None:
    assert parse("acm*") == Term("acm", prefix=True)
    assert parse("ac*") == Term("ac", prefix=True)
    assert parse('"acme ai*"') == Phrase(("acme", "ai"), prefix=True)
    assert parse("acme-ai*") == Phrase(("acme", "ai"), prefix=True)


def test_near_with_an_or_group_means_near_any_of_them() -> None:
    delay, refund = Term("delay", True), Term("refund")
    assert parse("acme NEAR/3 (delay* OR refund)") == Or((Near(acme, delay, 3), Near(acme, refund, 3)))
    assert parse("(acme OR beta) NEAR/1 refund") == Or((Near(acme, refund, 1), Near(beta, refund, 1)))
    assert parse("gamma OR acme NEAR/3 (delay* OR refund)") == Or(
        (gamma, Near(acme, delay, 3), Near(acme, refund, 3))
    )


def test_near_takes_terms_and_phrases_in_either_position() -> None:
    assert parse('"acme air" NEAR/5 delay*') == Near(Phrase(("acme", "air")), Term("delay", True), 5)
    assert parse('refund NEAR/0 "acme air"') == Near(Term("refund"), Phrase(("acme", "air")), 0)


def test_field_filters_are_normalised() -> None:
    assert parse("site:News.Example.COM") == Field("site", "news.example.com")
    assert parse('author:"Jane   Doe"') == Field("author", "jane doe")
    assert parse("author:@JaneDoe") == Field("author", "janedoe")
    assert parse("lang:en_GB") == Field("lang", "en-gb")
    assert parse("source:Acme-News") == Field("source", "acme-news")


def test_fields_combine_with_words() -> None:
    assert parse("acme site:example.com NOT lang:fr") == And(
        (acme, Field("site", "example.com"), Not(Field("lang", "fr")))
    )


def test_unicode_words_are_case_folded() -> None:
    assert parse("ÄCME") == Term("äcme")
    assert parse("Straße") == Term("strasse")
    assert parse("ＡＣＭＥ") == acme  # full-width letters, NFKC


@pytest.mark.parametrize(
    "query",
    [
        "acme",
        "acme OR beta AND gamma",
        "(acme OR beta) NOT (gamma OR delta*)",
        '"acme air" NEAR/4 refund* OR acme NEAR/0 beta',
        'author:"jane doe" site:example.com lang:en source:acme-news',
        "NOT NOT acme",
        "NOT (acme NEAR/2 beta) gamma",
        "(acme OR beta) NEAR/2 (gamma OR delta) site:example.com",
    ],
)
def test_rendering_a_query_gives_text_that_parses_back_to_the_same_query(query: str) -> None:
    node = parse(query)
    assert parse(render(node)) == node


# --- errors, each pointing at the spot to fix -----------------------------------------------------


@pytest.mark.parametrize(
    ("query", "column", "says"),
    [
        ("", 1, "empty"),
        ("   ", 1, "empty"),
        ("(acme OR beta", 1, "never closed"),
        ("acme (beta OR (gamma)", 6, "never closed"),
        ("acme OR beta)", 13, "no matching ("),
        ("()", 1, "empty"),
        ('acme "air', 6, "quote is never closed"),
        ("acme AND", 9, "after AND"),
        ("OR acme", 1, "OR needs"),
        ("acme OR", 8, "after OR"),
        ("acme AND OR beta", 10, "OR cannot follow AND"),
        ("acme NOT", 9, "after NOT"),
        ("(acme AND) beta", 10, "after AND"),
        ("acme NEAR beta", 6, "NEAR needs a distance"),
        ("acme NEAR/x beta", 11, "whole number"),
        ("acme NEAR/ beta", 11, "whole number"),
        ("acme NEAR/1000 beta", 11, "whole number"),
        ("acme NEAR/3", 12, "after NEAR/3"),
        ("NEAR/3 acme", 1, "NEAR/3 needs"),
        ("acme NEAR/3 (beta AND gamma)", 13, "word, a phrase or an OR-group"),
        ("(acme OR site:example.com) NEAR/3 gamma", 1, "word, a phrase or an OR-group"),
        ("acme NEAR/3 site:example.com", 13, "word, a phrase or an OR-group"),
        ("(acme NEAR/2 beta) NEAR/3 gamma", 1, "word, a phrase or an OR-group"),
        ("acme NEAR/3 beta NEAR/2 gamma", 18, "cannot be chained"),
        ("NOT acme NEAR/3 beta", 1, "write NOT (a NEAR/n b)"),
        ("acme NEAR/3 NOT beta", 13, "write NOT (a NEAR/n b)"),
        ("foo:bar", 1, "unknown field 'foo:'"),
        ("acme Site:example.com", 6, "unknown field"),
        ("site:", 6, "needs a value"),
        ("acme author:", 13, "needs a value"),
        ('author:""', 8, "needs a value"),
        ('author:"jane', 8, "quote is never closed"),
        ("site:https://example.com", 6, "host name"),
        ("site:*.example.com", 6, "not allowed"),
        ("*acme", 1, "only allowed at the end"),
        ("ac*me", 3, "only allowed at the end"),
        ("a*", 2, "at least 2"),
        ("*", 1, "at least 2"),
        ("acme!*", 6, "at least 2"),
        ('"acme* air"', 6, "only allowed at the end"),
        ('acme ""', 6, "no words"),
        ('"!!!"', 1, "no words"),
        ("acme & beta", 6, "no letters or digits"),
        ("-beta", 1, "NOT beta"),
    ],
)
def test_a_bad_query_names_the_column_to_fix(query: str, column: int, says: str) -> None:
    error = syntax_error(query)
    assert error.column == column
    assert says in error.message
    assert error.query == query


def test_the_unknown_field_error_lists_the_fields_that_exist() -> None:
    message = syntax_error("foo:bar").message
    for name in ("site:", "author:", "lang:", "source:"):
        assert name in message


def test_the_error_shows_a_caret_under_the_bad_spot() -> None:
    error = syntax_error("acme AND (beta OR")
    assert error.render().splitlines() == [
        "expected a term, phrase, field or '(' after OR (column 18)",
        "  acme AND (beta OR",
        "                   ^",
    ]
    assert str(error) == error.render()


def test_the_caret_for_an_unclosed_quote_sits_under_the_quote() -> None:
    lines = syntax_error('acme "air lines').render().splitlines()
    assert lines[1] == '  acme "air lines'
    assert lines[2] == "       ^"


# --- watch queries must name a word ---------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    ["NOT acme", "site:example.com", "lang:en NOT acme", "acme OR NOT beta", "author:jane OR source:x"],
)
def test_a_watch_query_that_could_match_without_any_of_its_words_is_refused(query: str) -> None:
    assert parse(query) is not None  # fine for an analyst's search
    with pytest.raises(QuerySyntaxError) as caught:
        parse_watch_query(query)
    assert caught.value.column == 1
    assert "at least one word" in caught.value.message


@pytest.mark.parametrize(
    "query", ["acme", "acme NOT beta", "site:example.com acme", "(acme OR beta) NOT lang:fr", "a NEAR/2 b"]
)
def test_a_watch_query_that_requires_a_word_is_accepted(query: str) -> None:
    assert parse_watch_query(query) == parse(query)


def test_watch_query_syntax_errors_still_name_their_column() -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse_watch_query("acme AND")
    assert caught.value.column == 9


# --- hostile input --------------------------------------------------------------------------------


def test_a_very_long_or_list_parses_quickly() -> None:
    words = [f"brand{i}" for i in range(1500)]
    start = time.perf_counter()
    node = parse(" OR ".join(words))
    assert time.perf_counter() - start < 2.0
    assert isinstance(node, Or)
    assert len(node.children) == len(words)


def test_a_query_beyond_the_length_limit_is_refused_with_a_clear_error() -> None:
    error = syntax_error("acme " * (MAX_QUERY_LENGTH // 5 + 1))
    assert "the limit is" in error.message
    assert error.column == 1
    assert len(error.render()) < 300


def test_nesting_up_to_the_limit_is_fine() -> None:
    assert parse("(" * MAX_DEPTH + "acme" + ")" * MAX_DEPTH) == acme


def test_deeply_nested_parentheses_give_an_error_not_a_recursion_error() -> None:
    depth = MAX_DEPTH * 50
    error = syntax_error("(" * depth + "acme" + ")" * depth)
    assert "nests more than" in error.message
    assert error.column == MAX_DEPTH + 1


def test_a_long_chain_of_nots_gives_an_error_not_a_recursion_error() -> None:
    error = syntax_error("NOT " * 1000 + "acme")
    assert "nests more than" in error.message


def test_tabs_and_newlines_separate_words_like_spaces() -> None:
    assert parse("acme\tbeta\nOR\r\ngamma") == Or((And((acme, beta)), gamma))


def test_an_emoji_on_its_own_is_not_a_word_to_look_for() -> None:
    error = syntax_error("acme 🚀")
    assert error.column == 6
    assert "no letters or digits" in error.message
