"""Text as people write it, rewritten into words the model's tokenizer knows.

The default model reads with an uncased English WordPiece vocabulary: most
emoji are `[UNK]` to it, so "📵📵 🤬" carries no signal at all, and "sooooo
gooood" splits into fragments it rarely saw in training. Each step here is
small and separately switchable because each must earn its place: a step is
kept in `DEFAULT_STEPS` only when it does not lower macro-recall on TweetEval's
validation split (`benchmarks/normalise.py` measures every step alone and all
together; the figures are in the README). The held-out brand set and
TweetEval's test split are never used to choose. A model trained on text
through other steps records them as `text_steps` in its `sentiment.json`.

- `emoji`: each emoji becomes its English name ("🤬" -> "face with symbols on
  mouth"), through the maintained `emoji` package rather than a hand table;
- `emoticons`: ASCII faces (":)", ":'(", "<3", "-_-") become a word ("smile",
  "crying", "love", "annoyed"), only where they stand alone, so URLs and
  times ("https://", "10:30") are untouched;
- `elongations`: a letter repeated three or more times is cut to two
  ("sooooo" -> "soo"), which keeps the emphasis mark but lands on spellings
  the tokenizer has seen.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import emoji

__all__ = ["DEFAULT_STEPS", "STEPS", "normaliser"]

_ELONGATED = re.compile(r"([^\W\d_])\1{2,}")
_SKIN_TONE = re.compile(r"[ _](?:light|medium-light|medium|medium-dark|dark)[ _]skin[ _]tone")
_SPACES = re.compile(r"[ \t]{2,}")

# Longest first so ">:(" wins over ":(".
_EMOTICONS: dict[str, str] = {
    ">:(": "angry", ">:-(": "angry", "</3": "heartbroken", ":'(": "crying", ":'-(": "crying",
    ":')": "happy tears", ":-)": "smile", ":)": "smile", "=)": "smile", ":]": "smile", "(:": "smile",
    ":-D": "laugh", ":D": "laugh", "=D": "laugh", "xD": "laugh", "XD": "laugh", ";-)": "wink",
    ";)": "wink", ":-P": "tongue", ":P": "tongue", ":p": "tongue", "<3": "love", "^_^": "smile",
    "^^": "smile", ":-(": "sad", ":(": "sad", "=(": "sad", ":[": "sad", "):": "sad", "D:": "dismay",
    ":-/": "unsure", ":/": "unsure", ":-|": "meh", ":|": "meh", "-_-": "annoyed", ":o": "surprised",
    ":O": "surprised", ":-O": "surprised",
}
# A face stands alone (whitespace or the text's ends around it); its last mark may repeat: ":)))".
_EMOTICON = re.compile(
    r"(?<!\S)("
    + "|".join(re.escape(face) + "+" if face[-1] in ")(DP][|/" else re.escape(face)
               for face in sorted(_EMOTICONS, key=len, reverse=True))
    + r")(?=\s|$|[.,!?])"
)


def elongations(text: str) -> str:
    """'sooooo goooood' -> 'soo good': letters only, so '!!!!' and '2000' are kept."""
    return _ELONGATED.sub(r"\1\1", text)


def emoticons(text: str) -> str:
    def word(match: re.Match[str]) -> str:
        face = match.group(1)
        while face not in _EMOTICONS:  # ":)))" -> ":)"
            face = face[:-1]
        return f" {_EMOTICONS[face]} "

    replaced, count = _EMOTICON.subn(word, text)
    return _SPACES.sub(" ", replaced).strip() if count else text


def _emoji_name(chars: str, data: dict[str, str]) -> str:
    name = str(data.get("en", "")).strip(":")
    name = _SKIN_TONE.sub("", name).replace("_", " ").replace("-", " ")
    return f" {name} " if name else " "


def emoji_words(text: str) -> str:
    if text.isascii() or emoji.emoji_count(text) == 0:  # isascii: most posts, at C speed
        return text
    return _SPACES.sub(" ", emoji.replace_emoji(text, replace=_emoji_name)).strip()


STEPS: dict[str, Callable[[str], str]] = {
    "elongations": elongations,
    "emoticons": emoticons,
    "emoji": emoji_words,
}

# Kept by the validation figures (module docstring). `emoticons` and `elongations` each lowered
# TweetEval val macro-recall (75.24 -> 75.21 and 75.09): the shipped model learnt ":(" and "sooo"
# as written, from raw tweets. `emoji` changed nothing there (the split holds no emoji) and turns
# what the model read as [UNK] into words, so it stays. Order matters: faces before emoji.
DEFAULT_STEPS: tuple[str, ...] = ("emoji",)


def normaliser(steps: Sequence[str]) -> Callable[[str], str]:
    """One function applying `steps` in the order given; unknown names are refused."""
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ValueError(f"unknown normalisation step(s) {unknown}; known: {', '.join(STEPS)}")
    chain = [STEPS[s] for s in steps]

    def apply(text: str) -> str:
        for step in chain:
            text = step(text)
        return text or " "

    return apply
