"""Evaluate watch queries on documents, fast enough for thousands of queries.

`evaluate` is the reference semantics: a direct walk of the AST over a
prepared view of one document. `Matcher` gives the same answers for many
queries at once: every query gets an *anchor set* (words, or field values,
at least one of which any match must contain); one Aho-Corasick pass over the
document finds the anchors present, and only the queries they name are
evaluated. Queries that cannot be anchored (`NOT acme` alone) are evaluated on
every document.

The automaton runs over the normalised text, and each hit is kept only if it
starts a word (and, for an exact word, ends one), using `str.isalnum`, which
is exactly the tokeniser's word class: `acme` never anchors on `acmeville`.
The document is tokenised only when some query is a candidate, which is rare.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Generic, TypeVar

import ahocorasick

from listener.query.ast import And, Field, FieldName, Near, Node, Not, Or, Phrase, Term
from listener.query.tokens import WORD, normalise

if TYPE_CHECKING:
    from listener.records import Document

__all__ = [
    "Anchor",
    "DocView",
    "Matcher",
    "anchors",
    "evaluate",
    "normalise_field",
    "prepare",
    "prepare_document",
    "word_anchors",
]

K = TypeVar("K", bound=Hashable)

Anchor = tuple[str, str]
"""`("word", w)`, `("prefix", w)`, or `(field name, value)`."""

_STOPWORD_TEXT = """
a an and are as at be but by for from has have i in is it its me my no not of on or our so that
the their this to was we were what will with you your
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_FIELD_COST = {"author": 2.0, "site": 10.0, "source": 30.0, "lang": 100.0}


def normalise_field(name: FieldName, value: str) -> str:
    """One normal form for field values, used for queries and documents alike.

    Case-insensitive everywhere; `author` ignores a leading `@` (social handles)
    and `lang` reads `en_US` as `en-us` so that `lang:en` can match it.
    """
    text = " ".join(normalise(value).split())
    if name == "site":
        return text.rstrip(".")
    if name == "author":
        return text.removeprefix("@")
    if name == "lang":
        return text.replace("_", "-")
    return text


@dataclass(frozen=True, slots=True)
class DocView:
    """One document as the evaluator sees it: tokens, where each occurs, and normalised fields.

    An empty-string token separates title from body so that a phrase never
    spans the two.
    """

    tokens: Sequence[str]
    positions: dict[str, list[int]] = field(repr=False)
    site: str | None = None
    author: str | None = None
    lang: str | None = None
    source: str | None = None

    @classmethod
    def from_tokens(
        cls,
        tokens: Sequence[str],
        *,
        site: str | None = None,
        author: str | None = None,
        lang: str | None = None,
        source: str | None = None,
    ) -> DocView:
        positions: dict[str, list[int]] = {}
        for i, token in enumerate(tokens):
            positions.setdefault(token, []).append(i)
        return cls(tokens, positions, *_doc_fields(site, author, lang, source))


def _doc_fields(
    site: str | None, author: str | None, lang: str | None, source: str | None
) -> tuple[str | None, str | None, str | None, str | None]:
    return (
        None if site is None else _cached_field("site", site),
        None if author is None else _cached_field("author", author),
        None if lang is None else _cached_field("lang", lang),
        None if source is None else _cached_field("source", source),
    )


@lru_cache(maxsize=8192)
def _cached_field(name: FieldName, value: str) -> str:
    """Sites, languages, sources and prolific authors repeat endlessly; normalise each once."""
    return normalise_field(name, value)


def _tokens(texts: Iterable[str]) -> list[str]:
    """Tokens of already normalised segments, with an empty token between segments."""
    tokens: list[str] = []
    for text in texts:
        if tokens:
            tokens.append("")
        tokens.extend(WORD.findall(text))
    return tokens


def prepare(
    text: str | Sequence[str],
    *,
    site: str | None = None,
    author: str | None = None,
    lang: str | None = None,
    source: str | None = None,
) -> DocView:
    """Tokenises text (one string, or segments such as title and body) for `evaluate`."""
    segments = [text] if isinstance(text, str) else list(text)
    tokens = _tokens(normalise(s) for s in segments if s)
    return DocView.from_tokens(tokens, site=site, author=author, lang=lang, source=source)


def prepare_document(doc: Document) -> DocView:
    return prepare(
        [doc.title or "", doc.text], site=doc.site, author=doc.author, lang=doc.language, source=doc.source
    )


# --- evaluation -------------------------------------------------------------------------------


def evaluate(node: Node, doc: DocView) -> bool:
    """The reference semantics of a query on one document."""
    if isinstance(node, Term):
        if node.prefix:
            return any(t.startswith(node.word) for t in doc.positions)
        return node.word in doc.positions
    if isinstance(node, Phrase):
        return bool(_starts(node, doc))
    if isinstance(node, And):
        return all(evaluate(child, doc) for child in node.children)
    if isinstance(node, Or):
        return any(evaluate(child, doc) for child in node.children)
    if isinstance(node, Not):
        return not evaluate(node.child, doc)
    if isinstance(node, Near):
        return _near(node, doc)
    return _field_matches(node, doc)


def _field_matches(node: Field, doc: DocView) -> bool:
    value = getattr(doc, node.name)
    if value is None:
        return False
    if node.name == "site":
        return bool(value == node.value or value.endswith("." + node.value))
    if node.name == "lang":
        return bool(value == node.value or value.startswith(node.value + "-"))
    return bool(value == node.value)


def _starts(leaf: Term | Phrase, doc: DocView) -> list[int]:
    """Sorted positions where `leaf` begins in the document."""
    if isinstance(leaf, Term):
        if not leaf.prefix:
            return doc.positions.get(leaf.word, [])
        return sorted(i for t, ps in doc.positions.items() if t.startswith(leaf.word) for i in ps)
    words, tokens = leaf.words, doc.tokens
    last = len(words) - 1
    found = []
    for p in doc.positions.get(words[0], []):
        if p + last >= len(tokens):
            break
        if all(tokens[p + k] == words[k] for k in range(1, last)) and (
            tokens[p + last].startswith(words[last]) if leaf.prefix else tokens[p + last] == words[last]
        ):
            found.append(p)
    return found


def _width(leaf: Term | Phrase) -> int:
    return 1 if isinstance(leaf, Term) else len(leaf.words)


def _near(node: Near, doc: DocView) -> bool:
    """At most `distance` words between the two operands, either order, without overlap."""
    lefts, rights = _starts(node.left, doc), _starts(node.right, doc)
    if not lefts or not rights:
        return False
    lw, rw, n = _width(node.left), _width(node.right), node.distance
    for a in lefts:
        # right after left: b in [a + lw, a + lw + n]; right before left: b in [a - n - rw, a - rw]
        for lo, hi in ((a + lw, a + lw + n), (a - n - rw, a - rw)):
            i = bisect_left(rights, lo)
            if i < len(rights) and rights[i] <= hi:
                return True
    return False


# --- anchors ----------------------------------------------------------------------------------


def _cost(anchor: Anchor) -> float:
    """A guess at how often an anchor occurs; cheaper anchors mean fewer evaluations."""
    kind, value = anchor
    if kind in _FIELD_COST:
        return _FIELD_COST[kind]
    cost = 1.0 + 2.0 / len(value) + (20.0 if value in _STOPWORDS else 0.0)
    return cost * (1.0 + 6.0 / len(value)) if kind == "prefix" else cost


def _set_cost(anchor_set: frozenset[Anchor]) -> float:
    return sum(_cost(a) for a in anchor_set)


def _leaf_anchors(leaf: Term | Phrase) -> frozenset[Anchor]:
    if isinstance(leaf, Term):
        return frozenset({("prefix" if leaf.prefix else "word", leaf.word)})
    options: list[Anchor] = [("word", w) for w in leaf.words[:-1]]
    options.append(("prefix" if leaf.prefix else "word", leaf.words[-1]))
    return frozenset({min(options, key=_cost)})


def anchors(node: Node, *, fields: bool = True) -> frozenset[Anchor] | None:
    """A set such that every document the query matches contains one of its members.

    None means no such set exists (a bare NOT), so the query has to be evaluated
    on every document. With `fields=False` only words count as anchors.
    """
    if isinstance(node, Term | Phrase):
        return _leaf_anchors(node)
    if isinstance(node, Near):
        return min(_leaf_anchors(node.left), _leaf_anchors(node.right), key=_set_cost)
    if isinstance(node, Field):
        return frozenset({(node.name, node.value)}) if fields else None
    if isinstance(node, Or):
        union: set[Anchor] = set()
        for child in node.children:
            sub = anchors(child, fields=fields)
            if sub is None:
                return None
            union |= sub
        return frozenset(union)
    if isinstance(node, And):
        subs = [s for s in (anchors(c, fields=fields) for c in node.children) if s is not None]
        return min(subs, key=_set_cost) if subs else None
    return None


def word_anchors(node: Node) -> frozenset[Anchor] | None:
    return anchors(node, fields=False)


# --- the matcher ------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _field_keys(name: FieldName, value: str) -> tuple[Anchor, ...]:
    """The field anchors a document's field satisfies: a site and each parent domain, a base language."""
    value = normalise_field(name, value)
    if not value:
        return ()
    if name == "site":
        labels = value.split(".")
        return tuple(("site", ".".join(labels[i:])) for i in range(len(labels)))
    if name == "lang" and "-" in value:
        return (("lang", value), ("lang", value.split("-", 1)[0]))
    return ((name, value),)


class Matcher(Generic[K]):
    """Matches a document against many queries, each named by a key (e.g. `(brand, query_text)`)."""

    def __init__(self, entries: Iterable[tuple[K, Node]]) -> None:
        self._keys: list[K] = []
        self._nodes: list[Node] = []
        patterns: dict[str, tuple[list[int], list[int]]] = {}
        self._by_field: dict[Anchor, list[int]] = {}
        self._always: list[int] = []
        for index, (key, node) in enumerate(entries):
            self._keys.append(key)
            self._nodes.append(node)
            self._index(index, node, patterns)
        self._automaton: ahocorasick.Automaton | None = None
        if patterns:
            self._automaton = ahocorasick.Automaton()
            for word, (exact, prefix) in patterns.items():
                self._automaton.add_word(word, (len(word), tuple(exact), tuple(prefix)))
            self._automaton.make_automaton()
        self._field_names = frozenset(name for name, _ in self._by_field)

    def _index(self, index: int, node: Node, patterns: dict[str, tuple[list[int], list[int]]]) -> None:
        anchor_set = anchors(node)
        if anchor_set is None:
            self._always.append(index)
            return
        for kind, value in anchor_set:
            if kind in ("word", "prefix"):
                exact, prefix = patterns.setdefault(value, ([], []))
                (exact if kind == "word" else prefix).append(index)
            else:
                self._by_field.setdefault((kind, value), []).append(index)

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def always_evaluated(self) -> int:
        """How many queries have no anchor and are evaluated on every document."""
        return len(self._always)

    def match(self, doc: Document) -> list[K]:
        """Keys of every query that matches the document's title and text and its fields."""
        return self._match(
            [doc.title, doc.text], site=doc.site, author=doc.author, lang=doc.language, source=doc.source
        )

    def match_text(
        self,
        text: str,
        *,
        site: str | None = None,
        author: str | None = None,
        lang: str | None = None,
        source: str | None = None,
    ) -> list[K]:
        return self._match([text], site=site, author=author, lang=lang, source=source)

    def _match(
        self,
        segments: list[str | None],
        *,
        site: str | None,
        author: str | None,
        lang: str | None,
        source: str | None,
    ) -> list[K]:
        texts = [normalise(s) for s in segments if s]
        candidates: set[int] = set(self._always)
        if self._automaton is not None:
            self._anchored("\n".join(texts), candidates)
        if self._by_field:
            by_field = self._by_field
            for name, value in (("site", site), ("author", author), ("lang", lang), ("source", source)):
                if value is not None and name in self._field_names:
                    for key in _field_keys(name, value):
                        candidates.update(by_field.get(key, ()))
        if not candidates:
            return []
        view = DocView.from_tokens(_tokens(texts), site=site, author=author, lang=lang, source=source)
        nodes, keys = self._nodes, self._keys
        hits = [keys[i] for i in sorted(candidates) if evaluate(nodes[i], view)]
        return list(dict.fromkeys(hits))

    def _anchored(self, text: str, found: set[int]) -> None:
        """Adds the queries whose anchors occur in `text` as whole words (or word starts, for prefixes).

        `str.isalnum` is exactly the tokeniser's word character class, so this
        boundary test agrees with `tokenize` without tokenising the document.
        """
        assert self._automaton is not None
        last = len(text) - 1
        for end, (length, exact, prefix) in self._automaton.iter(text):
            start = end - length + 1
            if start and text[start - 1].isalnum():
                continue
            if prefix:
                found.update(prefix)
            if exact and (end == last or not text[end + 1].isalnum()):
                found.update(exact)
