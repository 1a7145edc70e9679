"""The watch-term query AST: one tree, several back ends.

The parser produces these nodes; the stream matcher evaluates them on
documents and the embedded store compiles them to SQLite FTS5. Words are
stored already case-folded, in the tokeniser's form (see `tokens.py`), so every
back end sees the same normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["FIELDS", "And", "Field", "FieldName", "Near", "Node", "Not", "Or", "Phrase", "Term"]

FieldName = Literal["site", "author", "lang", "source"]
FIELDS: tuple[FieldName, ...] = ("site", "author", "lang", "source")


@dataclass(frozen=True, slots=True)
class Term:
    """One word; `prefix` for `word*`."""

    word: str
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Phrase:
    """Consecutive words, `"like this"`; the last one may be a prefix."""

    words: tuple[str, ...]
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Field:
    """`site:example.com`, `author:jane`, `lang:en`, `source:acme-news`."""

    name: FieldName
    value: str


@dataclass(frozen=True, slots=True)
class Near:
    """`a NEAR/n b`: both operands within n words of each other, in either order."""

    left: Term | Phrase
    right: Term | Phrase
    distance: int


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


Node = Term | Phrase | Field | Near | And | Or | Not
