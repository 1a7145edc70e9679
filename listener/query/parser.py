"""Parse watch-term queries into the shared AST.

The language is the one brand teams already know from commercial listening
tools: words, `"exact phrases"`, `AND` / `OR` / `NOT` (upper-case only, so
that `and` in a phrase like `rock and roll` stays a word), parentheses,
`a NEAR/n b`, prefix wildcards `word*` and the field filters `site:`,
`author:`, `lang:` and `source:`. Adjacent operands mean AND. NOT binds
tightest, then NEAR, then AND, then OR. Either side of NEAR may be an
OR-group of words and phrases, which distributes: `a NEAR/3 (b OR c)` is
`a NEAR/3 b OR a NEAR/3 c`.

`NEAR/n` allows at most n words *between* its two operands (either order), the
same rule as SQLite FTS5's `NEAR(a b, n)` and Elasticsearch's span slop, so all
back ends agree.

Every error is a `QuerySyntaxError` whose 1-based column points at the part of
the query the user has to fix; the config loader shows it with a caret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from listener.errors import QuerySyntaxError
from listener.query.ast import FIELDS, And, Field, Near, Node, Not, Or, Phrase, Term
from listener.query.matcher import normalise_field, word_anchors
from listener.query.tokens import WORD, normalise

__all__ = ["MAX_DEPTH", "MAX_NEAR", "MAX_QUERY_LENGTH", "parse", "parse_watch_query"]

MAX_QUERY_LENGTH = 20_000
"""Longer than any sane watch query; stops a pasted document from becoming one."""
MAX_DEPTH = 100
"""Nesting of parentheses and NOTs; deeper input gets an error, never a RecursionError."""
MAX_NEAR = 100
"""Proximity beyond this many words says nothing useful about a mention."""

_OPERAND_HINT = "a term, phrase, field or '('"

Kind = Literal["(", ")", "AND", "OR", "NOT", "NEAR", "WORD", "PHRASE", "FIELD", "END"]


@dataclass(frozen=True, slots=True)
class _Token:
    kind: Kind
    column: int
    text: str = ""
    node: Node | None = None
    distance: int = 0


class _Lexer:
    """Turns the query text into tokens; words and phrases become AST leaves here."""

    def __init__(self, query: str) -> None:
        self.query = query
        self.pos = 0

    def error(self, message: str, index: int) -> QuerySyntaxError:
        return QuerySyntaxError(message, self.query, index + 1)

    def tokens(self) -> list[_Token]:
        out: list[_Token] = []
        q = self.query
        while True:
            while self.pos < len(q) and q[self.pos].isspace():
                self.pos += 1
            if self.pos >= len(q):
                out.append(_Token("END", len(q) + 1))
                return out
            ch = q[self.pos]
            if ch in "()":
                out.append(_Token("(" if ch == "(" else ")", self.pos + 1, ch))
                self.pos += 1
            elif ch == '"':
                start = self.pos
                content = self._quoted()
                out.append(_Token("PHRASE", start + 1, content, _phrase(self, content, start + 1)))
            else:
                out.append(self._bare())

    def _quoted(self) -> str:
        """Reads `"..."` starting at the quote; returns the inside."""
        start = self.pos
        end = self.query.find('"', start + 1)
        if end < 0:
            raise self.error("this quote is never closed", start)
        self.pos = end + 1
        return self.query[start + 1 : end]

    def _bare(self) -> _Token:
        q = self.query
        start = self.pos
        while self.pos < len(q) and not q[self.pos].isspace() and q[self.pos] not in '()":':
            self.pos += 1
        text = q[start : self.pos]
        if self.pos < len(q) and q[self.pos] == ":" and text.isascii() and text.isalpha():
            return self._field(text, start)
        while self.pos < len(q) and not q[self.pos].isspace() and q[self.pos] not in '()"':
            self.pos += 1
        text = q[start : self.pos]
        if text in ("AND", "OR", "NOT"):
            return _Token(text, start + 1, text)  # type: ignore[arg-type]
        if text == "NEAR" or text.startswith("NEAR/"):
            return _Token("NEAR", start + 1, text, distance=self._distance(text, start))
        return _Token("WORD", start + 1, text, _word(self, text, start))

    def _distance(self, text: str, start: int) -> int:
        if text == "NEAR":
            raise self.error("NEAR needs a distance, like NEAR/3", start)
        digits = text[5:]
        if not (digits.isascii() and digits.isdigit()) or int(digits) > MAX_NEAR:
            raise self.error(f"NEAR/ needs a whole number of words from 0 to {MAX_NEAR}", start + 5)
        return int(digits)

    def _field(self, name: str, start: int) -> _Token:
        q = self.query
        if name not in FIELDS:
            known = ", ".join(f"{f}:" for f in FIELDS)
            raise self.error(f"unknown field '{name}:'; the fields are {known}", start)
        self.pos += 1  # the colon
        value_start = self.pos
        if self.pos < len(q) and q[self.pos] == '"':
            raw = self._quoted()
        else:
            while self.pos < len(q) and not q[self.pos].isspace() and q[self.pos] not in '()"':
                self.pos += 1
            raw = q[value_start : self.pos]
        star = raw.find("*")
        if star >= 0:
            offset = 1 if q[value_start : value_start + 1] == '"' else 0
            raise self.error(
                f"'{name}:' takes a plain value; * is not allowed here", value_start + offset + star
            )
        value = normalise_field(name, raw)
        if not value:
            raise self.error(f"'{name}:' needs a value, like {_FIELD_EXAMPLES[name]}", value_start)
        if name == "site" and ("/" in value or any(c.isspace() for c in value)):
            raise self.error(
                "'site:' takes a host name like example.com, without a scheme or path", value_start
            )
        node = Field(name, value)
        return _Token("FIELD", start + 1, q[start : self.pos], node)


_FIELD_EXAMPLES: dict[str, str] = {
    "site": "site:example.com",
    "author": 'author:"Jane Doe"',
    "lang": "lang:en",
    "source": "source:acme-news",
}


def _words(lexer: _Lexer, raw: str, index: int) -> tuple[list[str], bool]:
    """Tokenises `raw` (found at `index`) and checks the placement of `*`."""
    star = raw.find("*")
    prefix = False
    if star >= 0:
        if star != len(raw.rstrip()) - 1:
            raise lexer.error("a * is only allowed at the end of a word, as in acme*", index + star)
        base = normalise(raw[:star])
        ends_in_word = [m.end() for m in WORD.finditer(base)][-1:] == [len(base)]
        if not ends_in_word or len(WORD.findall(base)[-1]) < 2:
            raise lexer.error(
                "a * needs at least 2 letters or digits right before it, as in ac*", index + star
            )
        prefix = True
        raw = raw[:star]
    return WORD.findall(normalise(raw)), prefix


def _leaf(words: list[str], prefix: bool) -> Term | Phrase:
    if len(words) == 1:
        return Term(words[0], prefix)
    return Phrase(tuple(words), prefix)


def _word(lexer: _Lexer, raw: str, index: int) -> Term | Phrase:
    if raw.startswith("-") and len(raw) > 1 and WORD.match(normalise(raw[1:])):
        raise lexer.error(f"to leave a word out, write NOT {raw[1:]}", index)
    words, prefix = _words(lexer, raw, index)
    if not words:
        raise lexer.error(f"'{raw}' has no letters or digits to look for", index)
    return _leaf(words, prefix)


def _phrase(lexer: _Lexer, content: str, index: int) -> Term | Phrase:
    """`index` is where the content starts, one past the opening quote."""
    words, prefix = _words(lexer, content, index)
    if not words:
        raise lexer.error("this phrase has no words in it", index - 1)
    return _leaf(words, prefix)


class _Parser:
    """Recursive descent over the token list, one method per precedence level."""

    def __init__(self, query: str, tokens: list[_Token]) -> None:
        self.query = query
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    def error(self, message: str, column: int) -> QuerySyntaxError:
        return QuerySyntaxError(message, self.query, column)

    @property
    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.or_()
        tok = self.peek
        if tok.kind == ")":
            raise self.error("this ) has no matching (", tok.column)
        if tok.kind != "END":  # pragma: no cover - every other token starts or joins an operand
            raise self.error(f"unexpected {tok.text}", tok.column)
        return node

    def or_(self) -> Node:
        children = [self.and_()]
        while self.peek.kind == "OR":
            op = self.take()
            children.append(self.and_(after=op))
        return _join(Or, children)

    def and_(self, after: _Token | None = None) -> Node:
        children = [self.near(after)]
        while True:
            tok = self.peek
            if tok.kind == "AND":
                children.append(self.near(after=self.take()))
            elif tok.kind in ("WORD", "PHRASE", "FIELD", "(", "NOT"):
                children.append(self.near())
            else:
                return _join(And, children)

    def near(self, after: _Token | None = None) -> Node:
        start = self.peek.column
        left = self.unary(after)
        if self.peek.kind != "NEAR":
            return left
        op = self.take()
        right_start = self.peek.column
        right = self.unary(after=op)
        if self.peek.kind == "NEAR":
            raise self.error("NEAR cannot be chained; join two NEARs with AND", self.peek.column)
        lefts, rights = self._near_operand(left, start), self._near_operand(right, right_start)
        return _join(Or, [Near(a, b, op.distance) for a in lefts for b in rights])

    def _near_operand(self, node: Node, column: int) -> tuple[Term | Phrase, ...]:
        """A word, a phrase, or an OR-group of them: `acme NEAR/3 (delay* OR refund)`."""
        if isinstance(node, Term | Phrase):
            return (node,)
        if isinstance(node, Or) and all(isinstance(c, Term | Phrase) for c in node.children):
            return tuple(c for c in node.children if isinstance(c, Term | Phrase))
        if isinstance(node, Not):
            raise self.error("NOT binds tighter than NEAR; write NOT (a NEAR/n b)", column)
        raise self.error("NEAR needs a word, a phrase or an OR-group of them on each side", column)

    def unary(self, after: _Token | None = None) -> Node:
        tok = self.peek
        if tok.kind != "NOT":
            return self.primary(after)
        self.take()
        self._enter(tok)
        child = self.unary(after=tok)
        self.depth -= 1
        return Not(child)

    def _enter(self, tok: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"the query nests more than {MAX_DEPTH} levels deep", tok.column)

    def primary(self, after: _Token | None) -> Node:
        tok = self.peek
        if tok.node is not None:
            self.take()
            return tok.node
        if tok.kind == "(":
            self.take()
            self._enter(tok)
            if self.peek.kind == ")":
                raise self.error("these parentheses are empty", tok.column)
            node = self.or_()
            closing = self.take()
            if closing.kind != ")":
                raise self.error("this ( is never closed", tok.column)
            self.depth -= 1
            return node
        raise self._missing_operand(tok, after)

    def _missing_operand(self, tok: _Token, after: _Token | None) -> QuerySyntaxError:
        """Says what was expected where an operand is missing, and after which operator."""
        if after is not None and tok.kind in ("END", ")"):
            return self.error(f"expected {_OPERAND_HINT} after {after.text}", tok.column)
        if tok.kind == "END":
            return self.error("the query is empty", 1)
        if tok.kind == ")":
            return self.error("this ) has no matching (", tok.column)
        if after is not None:
            return self.error(f"{tok.text} cannot follow {after.text}", tok.column)
        return self.error(f"{tok.text} needs {_OPERAND_HINT} before it", tok.column)


def _join(cls: type[And] | type[Or], children: list[Node]) -> Node:
    """Flattens `a AND (b AND c)` so that every back end sees one level per operator."""
    if len(children) == 1:
        return children[0]
    flat: list[Node] = []
    for child in children:
        flat.extend(child.children if isinstance(child, cls) else (child,))
    return cls(tuple(flat))


def parse(text: str) -> Node:
    """Parses one query; raises `QuerySyntaxError` naming the column to fix."""
    if len(text) > MAX_QUERY_LENGTH:
        raise QuerySyntaxError(
            f"the query is {len(text):,} characters long; the limit is {MAX_QUERY_LENGTH:,}",
            text[:60] + "…",  # the whole text would flood the log
            1,
        )
    tokens = _Lexer(text).tokens()
    return _Parser(text, tokens).parse()


def parse_watch_query(text: str) -> Node:
    """Parses a brand's watch query, which must name at least one word every match contains.

    A query such as `NOT acme` or `site:example.com` alone would turn every
    unrelated document into a "mention" of the brand; analysts may search that
    way, but a watch query may not.
    """
    node = parse(text)
    if word_anchors(node) is None:
        raise QuerySyntaxError(
            "a watch query must require at least one word or phrase in every match "
            "(NOT or field filters alone would match unrelated documents)",
            text,
            1,
        )
    return node
