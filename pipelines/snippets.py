"""Search-result snippets: a short excerpt around the first match, matches wrapped in `[[ ]]`.

Computed in Python with the shared tokeniser rather than FTS5's `snippet()`, so
the highlighted words are exactly the words the query language means (the
index holds tokenised text, and rows found through field predicates get a
snippet too). Mention text is hostile: brackets in it are replaced by their
full-width forms so that `[[`/`]]` in a snippet always mean a highlight, and
control characters (terminal escapes, bidi overrides) are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from listener.query.tokens import WORD, tokenize
from pipelines.fts import Pattern

__all__ = ["CLOSE", "OPEN", "lead", "make_snippet"]

OPEN, CLOSE = "[[", "]]"
_SAFE = str.maketrans({"[": "［", "]": "］"})
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SPACE = re.compile(r"\s+")


def _clean(text: str) -> str:
    return _SPACE.sub(" ", _CONTROL.sub(" ", text)).translate(_SAFE)


def _words(text: str) -> tuple[list[tuple[int, int]], list[tuple[str, int]]]:
    """Word spans in the original text, and the tokens each span yields (NFKC may split one)."""
    spans: list[tuple[int, int]] = []
    tokens: list[tuple[str, int]] = []
    for match in WORD.finditer(text):
        index = len(spans)
        spans.append(match.span())
        word = match.group()
        # ASCII words need neither NFKC nor full case folding; long texts are mostly ASCII.
        tokens.extend((token, index) for token in ([word.lower()] if word.isascii() else tokenize(word)))
    return spans, tokens


def _hits(tokens: Sequence[str], pattern: Pattern) -> list[int]:
    """Token positions covered by occurrences of `pattern`."""
    words, last = pattern.words, len(pattern.words) - 1
    covered: list[int] = []
    for start in range(len(tokens) - last):
        if all(tokens[start + k] == words[k] for k in range(last)):
            tail = tokens[start + last]
            if tail == words[last] or (pattern.prefix and tail.startswith(words[last])):
                covered.extend(range(start, start + last + 1))
    return covered


def _marked(text: str, patterns: Sequence[Pattern]) -> tuple[list[tuple[int, int]], set[int]]:
    spans, tokens = _words(text)
    plain = [token for token, _ in tokens]
    marked = {tokens[i][1] for pattern in patterns if pattern.words for i in _hits(plain, pattern)}
    return spans, marked


def _end(spans: list[tuple[int, int]], begin: int, length: int, width: int) -> int:
    """Where an excerpt starting at `begin` stops: at most `width` characters, at a word's end."""
    end = min(length, begin + width)
    if end < length:
        fitting = [e for _, e in spans if begin < e <= end]
        end = fitting[-1] if fitting else end
    return end


def _window(spans: list[tuple[int, int]], first: int, length: int, width: int) -> tuple[int, int]:
    """Character bounds of the excerpt, snapped to word boundaries, the first match a third in."""
    begin = max(0, spans[first][0] - width // 3)
    if begin > 0:
        begin = next(s for s, _ in spans if s >= begin)
    return begin, _end(spans, begin, length, width)


def make_snippet(text: str, patterns: Sequence[Pattern], width: int = 200) -> str | None:
    """An excerpt of `text` with matched words marked, or None when no pattern occurs in it."""
    spans, marked = _marked(text, patterns)
    if not marked:
        return None
    begin, end = _window(spans, min(marked), len(text), width)
    out: list[str] = ["…"] if begin > 0 else []
    cursor = begin
    for index in sorted(marked):
        start, stop = spans[index]
        if start < begin or stop > end:
            continue
        out.append(_clean(text[cursor:start]) + OPEN + _clean(text[start:stop]) + CLOSE)
        cursor = stop
    out.append(_clean(text[cursor:end]))
    if end < len(text):
        out.append("…")
    return "".join(out).strip()


def lead(text: str, width: int = 200) -> str:
    """The start of `text`, for hits that matched on fields alone."""
    spans, _ = _words(text)
    end = _end(spans, 0, len(text), width)
    return (_clean(text[:end]) + ("…" if end < len(text) else "")).strip()
