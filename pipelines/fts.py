"""Compiling the watch-term query AST to SQLite: FTS5 MATCH expressions plus SQL predicates.

Text nodes become FTS5 expressions in which every word is a quoted FTS5 string,
so nothing a user types can reach FTS5's own syntax. FTS5 has no unary NOT and
knows nothing of our fields, so a query is compiled in two layers:

* the largest text-only conjunction at the root becomes one MATCH that drives
  the query (and gives bm25 relevance);
* everything else becomes SQL predicates over the `mentions` row `m`, where a
  text sub-tree is `m.seq IN (SELECT rowid FROM mention_fts WHERE ... MATCH ?)`.

Words are run through the shared tokeniser before quoting, and the index holds
the tokeniser's output, so the store sees the same words as the stream matcher.

`a NEAR/n b` means at most n words between the operands, either order, without
overlap, and title and body read as one text with a gap between. FTS5's
`NEAR(a b, n)` means the same within one column, except that it lets the
operands share words. So where no word can match both operands, FTS5's NEAR
decides alone (positions are the shared tokeniser's, as for phrases), and only
the rows with one operand in the title and the other in the body are decided
by `near_matches`, an SQL function each store connection registers as
`listener_near`; where the operands can overlap, FTS5's NEAR (or the two
columns) is the prefilter and `near_matches` decides every row. Deciding NEAR
in Python for every row holding both operands cost seconds at a million mentions.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

from listener.query.ast import And, Field, FieldName, Near, Node, Not, Or, Phrase, Term
from listener.query.matcher import normalise_field
from listener.query.tokens import tokenize

__all__ = [
    "FTS_TABLE",
    "NEAR_FUNCTION",
    "Compiled",
    "Pattern",
    "compile_query",
    "field_key",
    "fts_string",
    "near_matches",
]

FTS_TABLE = "mention_fts"
NEAR_FUNCTION = "listener_near"
_IN_FTS = f"m.seq IN (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH ?)"
_CHECKED = (
    f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH ?"
    f" AND {NEAR_FUNCTION}({FTS_TABLE}.title, {FTS_TABLE}.body, ?)"
)
_IN_NEAR = f"m.seq IN ({_CHECKED})"
_IN_NEAR_EXACT = f"m.seq IN (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH ? UNION {_CHECKED})"


@dataclass(frozen=True, slots=True)
class Pattern:
    """A run of words to highlight in a snippet; the last one may be a prefix."""

    words: tuple[str, ...]
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Compiled:
    """A query ready for SQL.

    `match` drives the query from the FTS table when the root has a text part;
    `where` (with `params`) filters rows of `mentions AS m`; `rank` is an FTS5
    expression for relevance when text only appears below an OR with fields.
    """

    match: str | None
    where: str
    params: tuple[object, ...]
    rank: str | None
    highlights: tuple[Pattern, ...]


# --- intermediate form ----------------------------------------------------------------------
# Constants fold away words that tokenise to nothing (`*`, `'`), so the SQL never sees them.


@dataclass(frozen=True, slots=True)
class _Const:
    value: bool


@dataclass(frozen=True, slots=True)
class _Text:
    expr: str
    pattern: tuple[Pattern, ...]


@dataclass(frozen=True, slots=True)
class _Near:
    """NEAR: rows FTS5 decides alone (`exact`, if any), rows `near_matches` decides on `spec`
    (`check`), and both operands present (`expr`, which ranks as before)."""

    expr: str
    spec: str
    pattern: tuple[Pattern, ...]
    exact: str | None
    check: str


@dataclass(frozen=True, slots=True)
class _Pred:
    sql: str
    params: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class _And:
    children: tuple[_IR, ...]


@dataclass(frozen=True, slots=True)
class _Or:
    children: tuple[_IR, ...]


@dataclass(frozen=True, slots=True)
class _Not:
    child: _IR


_IR = _Const | _Text | _Near | _Pred | _And | _Or | _Not
_TRUE, _FALSE = _Const(True), _Const(False)


def fts_string(words: Sequence[str]) -> str:
    """One FTS5 string (a phrase); doubling quotes is FTS5's only escape inside strings."""
    return '"' + " ".join(words).replace('"', '""') + '"'


def field_key(name: str, value: str) -> str:
    """The stream matcher's normal form for field values, so a search shows what the watch
    terms would alert on (case-insensitive, `@handle` = `handle`, `en_US` = `en-us`)."""
    return normalise_field(cast(FieldName, name), value)


def _words(leaf: Term | Phrase) -> tuple[str, ...]:
    raw = (leaf.word,) if isinstance(leaf, Term) else leaf.words
    return tuple(token for word in raw for token in tokenize(word))


def _leaf(leaf: Term | Phrase) -> _IR:
    words = _words(leaf)
    if not words:
        return _FALSE
    star = " *" if leaf.prefix else ""
    return _Text(fts_string(words) + star, (Pattern(words, leaf.prefix),))


def _near(node: Near) -> _IR:
    if isinstance(node.distance, bool) or not isinstance(node.distance, int) or node.distance < 0:
        raise ValueError(f"NEAR distance must be a non-negative integer, not {node.distance!r}")
    left, right = _leaf(node.left), _leaf(node.right)
    if not isinstance(left, _Text) or not isinstance(right, _Text):
        return _FALSE
    (lp,), (rp,) = left.pattern, right.pattern
    spec = json.dumps([lp.words, lp.prefix, rp.words, rp.prefix, node.distance])
    within = f"NEAR({left.expr} {right.expr}, {node.distance})"
    across = " OR ".join(
        f"({{title}} : {a} AND {{body}} : {b})" for a, b in ((left.expr, right.expr), (right.expr, left.expr))
    )
    if _may_overlap(lp, rp):
        exact, check = None, f"({within}) OR {across}"
    else:
        exact, check = within, across
    return _Near(f"({left.expr}) AND ({right.expr})", spec, (lp, rp), exact, check)


def _may_overlap(left: Pattern, right: Pattern) -> bool:
    """Whether one word could match a word of each operand, which FTS5's NEAR would allow."""

    def both(a: Pattern, b: Pattern) -> bool:
        """A's prefix word could be one of b's whole words."""
        whole = b.words[:-1] if b.prefix else b.words
        return a.prefix and any(w.startswith(a.words[-1]) for w in whole)

    if set(left.words) & set(right.words) or both(left, right) or both(right, left):
        return True
    if left.prefix and right.prefix:
        lo, ro = left.words[-1], right.words[-1]
        return lo.startswith(ro) or ro.startswith(lo)
    return False


def _field(node: Field) -> _IR:
    value = field_key(node.name, node.value)
    if not value:
        return _FALSE
    if node.name == "site":
        return _Pred("(m.site = ? OR substr(m.site, -?) = ?)", (value, len(value) + 1, "." + value))
    if node.name == "lang":
        return _Pred("(m.lang = ? OR substr(m.lang, 1, ?) = ?)", (value, len(value) + 1, value + "-"))
    if node.name == "author":
        return _Pred("m.author_key = ?", (value,))
    if node.name == "source":
        return _Pred("m.source_key = ?", (value,))
    raise ValueError(f"unknown field {node.name!r}")


def _lower(node: Node) -> _IR:
    """The AST in intermediate form, with constants folded."""
    if isinstance(node, Term | Phrase):
        return _leaf(node)
    if isinstance(node, Near):
        return _near(node)
    if isinstance(node, Field):
        return _field(node)
    if isinstance(node, Not):
        child = _lower(node.child)
        return _Const(not child.value) if isinstance(child, _Const) else _Not(child)
    if isinstance(node, And | Or):
        return _junction(node)
    raise ValueError(f"not a query node: {type(node).__name__}")


def _junction(node: And | Or) -> _IR:
    absorbing = isinstance(node, Or)  # TRUE absorbs an OR, FALSE absorbs an AND
    kept: list[_IR] = []
    for child in map(_lower, node.children):
        if isinstance(child, _Const):
            if child.value is absorbing:
                return child
            continue
        kept.extend(child.children if isinstance(child, _And | _Or) and _same(child, node) else (child,))
    if not kept:
        return _Const(not absorbing)
    if len(kept) == 1:
        return kept[0]
    return _Or(tuple(kept)) if absorbing else _And(tuple(kept))


def _same(child: _And | _Or, node: And | Or) -> bool:
    return isinstance(child, _And) == isinstance(node, And)


# --- FTS5 expressions -------------------------------------------------------------------------


def _to_fts(ir: _IR) -> str | None:
    """One FTS5 expression for a text-only sub-tree, or None when FTS5 cannot say it."""
    if isinstance(ir, _Text):
        return ir.expr
    if isinstance(ir, _Or):
        parts = [_to_fts(child) for child in ir.children]
        return None if None in parts else " OR ".join(f"({p})" for p in parts)
    if isinstance(ir, _And):
        return _and_fts(ir.children)
    return None


def _and_fts(children: Sequence[_IR]) -> str | None:
    """`(p1) AND (p2) NOT ((n1) OR (n2))`: FTS5's NOT is binary, so it needs a positive side."""
    positives = [_to_fts(c) for c in children if not isinstance(c, _Not)]
    negatives = [_to_fts(c.child) for c in children if isinstance(c, _Not)]
    if not positives or None in positives or None in negatives:
        return None
    expr = " AND ".join(f"({p})" for p in positives)
    if negatives:
        expr = f"({expr}) NOT ({' OR '.join(f'({n})' for n in negatives)})"
    return expr


# --- SQL predicates ---------------------------------------------------------------------------


def _to_sql(ir: _IR) -> tuple[str, tuple[object, ...]]:
    text = _to_fts(ir)
    if text is not None:
        return _IN_FTS, (text,)
    if isinstance(ir, _Const):
        return ("1" if ir.value else "0"), ()
    if isinstance(ir, _Pred):
        return ir.sql, ir.params
    if isinstance(ir, _Near):
        if ir.exact is None:
            return _IN_NEAR, (ir.check, ir.spec)
        return _IN_NEAR_EXACT, (ir.exact, ir.check, ir.spec)
    if isinstance(ir, _Not):
        sql, params = _to_sql(ir.child)
        return f"NOT ({sql})", params
    assert isinstance(ir, _And | _Or)
    parts = [_to_sql(child) for child in ir.children]
    joiner = " AND " if isinstance(ir, _And) else " OR "
    sql = joiner.join(f"({p})" for p, _ in parts)
    return f"({sql})", tuple(param for _, ps in parts for param in ps)


def _positive_texts(ir: _IR) -> list[_Text | _Near]:
    """Text leaves that a matching mention may contain (not under a NOT): for ranking and snippets."""
    if isinstance(ir, _Text | _Near):
        return [ir]
    if isinstance(ir, _And | _Or):
        return [text for child in ir.children for text in _positive_texts(child)]
    return []


def compile_query(node: Node | None) -> Compiled:
    """The query split into a driving MATCH (if any) and SQL predicates for the rest."""
    ir = _TRUE if node is None else _lower(node)
    texts = _positive_texts(ir)
    highlights = tuple(p for text in texts for p in text.pattern)
    rank = " OR ".join(f"({t.expr})" for t in texts) or None
    match = _to_fts(ir)
    if match is not None:
        return Compiled(match, "1", (), rank, highlights)
    if isinstance(ir, _And):
        drivable = [c for c in ir.children if _to_fts(c if not isinstance(c, _Not) else c.child) is not None]
        match = _and_fts(drivable)
        if match is not None:
            rest = [c for c in ir.children if c not in drivable]
            where, params = _to_sql(rest[0] if len(rest) == 1 else _And(tuple(rest)))
            return Compiled(match, where, params, rank, highlights)
    where, params = _to_sql(ir)
    return Compiled(None, where, params, rank, highlights)


# --- exact NEAR -------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _spec(spec: str) -> tuple[Pattern, Pattern, int]:
    lw, lp, rw, rp, distance = json.loads(spec)
    return Pattern(tuple(lw), lp), Pattern(tuple(rw), rp), distance


def _starts(tokens: Sequence[str], pattern: Pattern) -> list[int]:
    """Sorted positions where `pattern` begins."""
    words, last = pattern.words, len(pattern.words) - 1
    found = []
    for p in range(len(tokens) - last):
        if all(tokens[p + k] == words[k] for k in range(last)):
            tail = tokens[p + last]
            if tail == words[last] or (pattern.prefix and tail.startswith(words[last])):
                found.append(p)
    return found


def near_matches(title: str | None, body: str | None, spec: str) -> bool:
    """Whether the indexed title and body satisfy a compiled NEAR (see the module docstring)."""
    left, right, n = _spec(spec)
    tokens = (title or "").split()
    if tokens:
        tokens.append("")  # the gap between title and body is one position, as in the matcher
    tokens.extend((body or "").split())
    lefts, rights = _starts(tokens, left), _starts(tokens, right)
    lw, rw = len(left.words), len(right.words)
    for a in lefts:
        for lo, hi in ((a + lw, a + lw + n), (a - n - rw, a - rw)):
            i = bisect_left(rights, lo)
            if i < len(rights) and rights[i] <= hi:
                return True
    return False
