"""Compiling the watch-term query AST to the Elasticsearch query DSL.

The store indexes a `words` field that holds the shared tokeniser's output
(`listener.query.tokens`), analysed by the whitespace tokenizer only, so the
terms Elasticsearch sees are exactly the words the stream matcher and the
embedded store see: word boundaries, case folding and Unicode handling agree by
construction instead of by tuning an analyser. Title and body are two values of
`words` with a position gap of one, as in the matcher.

* a word is a `term`, `word*` a `prefix`;
* a phrase is a `span_near` of its words with slop 0, in order (its last word
  may be a prefix: `span_multi`);
* `a NEAR/n b` is a `span_near` of the two operands with slop n, in either order;
* fields match keyword fields that hold every suffix of the site (so `site:x.com`
  finds `news.x.com` but not `badx.com`) and every prefix of the language tag.
"""

from __future__ import annotations

from typing import Any

from listener.query.ast import And, Field, Near, Node, Not, Or, Phrase, Term
from listener.query.tokens import tokenize
from pipelines.fts import field_key

__all__ = ["WORDS_FIELD", "compile_es", "lang_keys", "site_keys"]

WORDS_FIELD = "words"
Query = dict[str, Any]
_NONE: Query = {"match_none": {}}
_ALL: Query = {"match_all": {}}


def site_keys(site: str | None) -> list[str]:
    """`news.example.com` -> itself, `example.com`, `com`: what `site:` may name."""
    key = field_key("site", site or "")
    parts = key.split(".") if key else []
    return [".".join(parts[i:]) for i in range(len(parts))]


def lang_keys(language: str | None) -> list[str]:
    """`en-gb` -> itself and `en`: `lang:en` covers the regional variants."""
    key = field_key("lang", language or "")
    parts = key.split("-") if key else []
    return ["-".join(parts[: i + 1]) for i in range(len(parts))]


def _words(leaf: Term | Phrase) -> list[str]:
    raw = (leaf.word,) if isinstance(leaf, Term) else leaf.words
    return [token for word in raw for token in tokenize(word)]


def _span(words: list[str], prefix: bool) -> Query:
    """A span for consecutive words; the last one a prefix when asked."""
    clauses: list[Query] = [{"span_term": {WORDS_FIELD: w}} for w in words[:-1]]
    last = words[-1]
    if prefix:
        clauses.append({"span_multi": {"match": {"prefix": {WORDS_FIELD: {"value": last}}}}})
    else:
        clauses.append({"span_term": {WORDS_FIELD: last}})
    if len(clauses) == 1:
        return clauses[0]
    return {"span_near": {"clauses": clauses, "slop": 0, "in_order": True}}


def _leaf(leaf: Term | Phrase) -> Query:
    words = _words(leaf)
    if not words:
        return _NONE
    if len(words) == 1:
        kind = "prefix" if leaf.prefix else "term"
        return {kind: {WORDS_FIELD: words[0]}}
    return _span(words, leaf.prefix)


def _near(node: Near) -> Query:
    if isinstance(node.distance, bool) or not isinstance(node.distance, int) or node.distance < 0:
        raise ValueError(f"NEAR distance must be a non-negative integer, not {node.distance!r}")
    left, right = _words(node.left), _words(node.right)
    if not left or not right:
        return _NONE
    clauses = [_span(left, node.left.prefix), _span(right, node.right.prefix)]
    return {"span_near": {"clauses": clauses, "slop": node.distance, "in_order": False}}


def _field(node: Field) -> Query:
    value = field_key(node.name, node.value)
    if not value:
        return _NONE
    if node.name == "site":
        return {"term": {"site_keys": value}}
    if node.name == "lang":
        return {"term": {"lang_keys": value}}
    if node.name in ("author", "source"):
        return {"term": {node.name: value}}
    raise ValueError(f"unknown field {node.name!r}")


def compile_es(node: Node | None) -> Query:
    """The query for `node` (match_all for None); words score, fields only filter."""
    if node is None:
        return _ALL
    if isinstance(node, Term | Phrase):
        return _leaf(node)
    if isinstance(node, Near):
        return _near(node)
    if isinstance(node, Field):
        return {"constant_score": {"filter": _field(node), "boost": 0.0}}
    if isinstance(node, Not):
        return {"bool": {"must_not": [compile_es(node.child)]}}
    if isinstance(node, And):
        return {"bool": {"must": [compile_es(child) for child in node.children]}}
    if isinstance(node, Or):
        return {"bool": {"should": [compile_es(c) for c in node.children], "minimum_should_match": 1}}
    raise ValueError(f"not a query node: {type(node).__name__}")
