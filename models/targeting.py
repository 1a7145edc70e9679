"""Sentiment toward the brand, not just the tone of the post.

"Switched from Acme to Globex, so happy" is a happy post and bad news for Acme.
A tweet-trained model reads the tone; it has never been told which entity a
mention is about. This module finds the brand's span in the text and looks at
the few constructions that decide who wins a comparison (switching from/to,
leaving, "better than", "instead of", "over"). When the brand is on the losing
side the verdict becomes negative; on the winning side, positive. Texts
without such a construction keep the model's verdict.

The rules are deliberately few and anchored on the brand span, so they fire
rarely and predictably; `tests/data/brand_targeted.jsonl` measures them.
"""

from __future__ import annotations

import re
from functools import lru_cache

from listener.records import Sentiment, SentimentLabel

__all__ = ["aim_at_brand", "brand_role"]

_B = "<<BRAND>>"
_OTHER = r"[A-Z][\w&'-]*"  # a capitalised name: the rival in "from Acme to Globex"

_LEAVE = (
    r"switch(?:ed|ing)?|mov(?:e|ed|ing)|went|go(?:ing)?|chang(?:e|ed|ing)|migrat(?:e|ed|ing)|"
    r"upgrad(?:e|ed|ing)|jump(?:ed|ing)? ship|port(?:ed|ing)?|came"
)
_LOSER = [
    rf"\b(?:{_LEAVE})\s+(?:\w+\s+){{0,3}}?(?:away\s+)?from\s+{_B}",
    rf"\b(?:left|leaving|leave|ditch(?:ed|ing)?|dump(?:ed|ing)?|quit(?:ting)?|cancel(?:l?ed|l?ing)?|"
    rf"drop(?:ped|ping)?|replac(?:e|ed|ing)|trad(?:e|ed|ing) in|unsubscrib\w*(?:\s+from)?)"
    rf"\s+(?:my\s+|our\s+|the\s+)?{_B}",
    rf"\b(?:done with|bye(?: bye)?,?|goodbye,?|never (?:going back to|buying|again with)|back from)\s+{_B}",
    rf"\b(?:better|faster|cheaper|nicer|superior|more \w+|less \w+)\s+(?:value\s+)?(?:to|than)\s+{_B}",
    rf"\b(?:instead of|rather than)\s+{_B}",
    rf"\b(?:chose|choose|prefer|picked?)\s+{_OTHER}\s+over\s+{_B}",
    rf"{_B}(?:'s)?\s+(?:\w+\s+)?(?:is|was|are)\s+(?:(?:so|much|way|far)\s+){{0,2}}"
    rf"(?:worse|slower|more expensive|inferior|pricier)\b",
    rf"{_B}\s+(?:could|should)\s+learn\b",
    rf"\b{_OTHER}\s+beats\s+{_B}",
]
_WINNER = [
    rf"\b(?:{_LEAVE}|left\s+{_OTHER}|ditch(?:ed)?\s+{_OTHER})\s+(?:\w+\s+){{0,3}}?(?:to|for)\s+{_B}",
    rf"\b(?:from|left|leaving|ditched|replaced|dropped)\s+{_OTHER}\s+(?:(?:to|for|with)\s+)?{_B}",
    rf"\b(?:back to|joined|signed up with|since moving to)\s+{_B}",
    rf"{_B}(?:'s)?\s+(?:\w+\s+)?(?:is|was|are)\s+(?:(?:so|much|way|far)\s+){{0,2}}"
    rf"(?:better|faster|cheaper|superior)\b",
    rf"\b(?:chose|choose|prefer|picked?)\s+{_B}\s+over\b",
    rf"\b(?:using|use)\s+{_B}\s+instead\b",
    rf"\b(?:worse|slower|more expensive)\s+than\s+{_B}",
]


@lru_cache(maxsize=256)
def _patterns(kind: str) -> list[re.Pattern[str]]:
    return [re.compile(p, re.IGNORECASE) for p in (_LOSER if kind == "loser" else _WINNER)]


def _mark(text: str, brand: str) -> str | None:
    """The text with each whole-word occurrence of the brand replaced by a marker; None if absent."""
    pattern = re.compile(rf"(?<!\w){re.escape(brand)}(?!\w)", re.IGNORECASE)
    marked, count = pattern.subn(_B, text)
    return marked if count else None


def brand_role(text: str, brand: str) -> str | None:
    """'loser', 'winner', or None when the text sets the brand against nothing."""
    if not brand.strip():
        return None
    marked = _mark(text, brand.strip())
    if marked is None:
        return None
    if any(p.search(marked) for p in _patterns("loser")):
        return "loser"
    if any(p.search(marked) for p in _patterns("winner")):
        return "winner"
    return None


def aim_at_brand(text: str, brand: str, verdict: Sentiment) -> Sentiment:
    """The verdict as it bears on `brand`: probabilities are swapped so the label fits the role."""
    if verdict.label is SentimentLabel.UNSCORED:
        return verdict
    role = brand_role(text, brand)
    if role is None:
        return verdict
    target = "negative" if role == "loser" else "positive"
    scores = {"negative": verdict.negative, "neutral": verdict.neutral, "positive": verdict.positive}
    top = max(scores, key=lambda k: scores[k])
    if top == target:
        return verdict
    scores[top], scores[target] = scores[target], scores[top]
    return verdict.model_copy(update={**scores, "label": SentimentLabel(target)})
