"""The one tokeniser every back end agrees on.

A word is a run of Unicode letters and digits (no underscore, matching SQLite
FTS5's `unicode61` tokeniser), compared after NFKC normalisation and case
folding. Word boundaries fall out of this: `acme` is never a token of
`acmeville`, and `acme's` yields `acme` then `s`.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["WORD", "normalise", "tokenize"]

WORD = re.compile(r"[^\W_]+")


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def tokenize(text: str) -> list[str]:
    return WORD.findall(normalise(text))
