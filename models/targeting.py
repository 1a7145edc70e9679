"""Sentiment toward the brand, not just the tone of the post.

"Switched from Acme to Globex, so happy" is a happy post and bad news for Acme.
A tweet-trained model reads the tone; it has never been told which entity a
mention is about. This module finds the brand's span in the text (its name,
the name run together, and its @handle and #hashtag forms) and looks at the
few constructions that decide who wins a switch or a comparison: switching
or porting from/to, leaving, "better than", "instead of", "over".

The rules only add evidence; they do not overrule the model on a guess:

- A rule that puts the brand on the losing side may turn a confident positive
  into a negative: leaving a brand happily is bad news for it
  (`tests/test_brand_targeting.py` shows each such construction).
- A rule that puts the brand on the winning side never turns a confident
  negative into a positive: "switched from Acme to Globex and it has been a
  nightmare" is a complaint about Globex, and so are "upgraded to Orion premium
  and now the app crashes" and "sent £50 from Orion to Kestrel Pay and it
  vanished". It only lifts a verdict the model was unsure of.
- Negated ("never switching from Acme") and asked ("should I leave Acme?")
  constructions are no evidence at all.
- The rival's slot needs a capitalised name or an @handle, read
  case-sensitively, so "dropped call with Brightline" has no rival in it.
"""

from __future__ import annotations

import re
from functools import lru_cache

from listener.records import Sentiment, SentimentLabel

__all__ = ["CONFIDENT", "aim_at_brand", "brand_pattern", "brand_role"]

CONFIDENT = 0.6  # a verdict whose top class has at least this probability is the model's, not a guess

_B = "<<BRAND>>"
_OTHER = r"(?:@\w+|(?-i:[A-Z][\w&'-]*))"  # the rival in "from Acme to Globex": a name, never any word
# What may stand between a switching verb and "from"/"to": "switched my plan from", "moved over to".
_OBJECT = r"(?:(?:my|our|all my|all our|the)\s+(?:\w+\s+){1,2}?|(?:over|away|back|everything)\s+)?"
_SWITCH = (
    r"switch(?:ed|ing|es)?|mov(?:e|ed|es|ing)|migrat(?:e|ed|es|ing)|chang(?:e|ed|es|ing)\s+over|"
    r"jump(?:ed|ing)? ship|port(?:ed|ing)?"
)
_NEGATED = re.compile(
    r"\b(?:not|never|no|nothing|nobody|won't|wont|don't|dont|didn't|didnt|can't|cant|shouldn't|wouldn't|"
    r"isn't|wasn't|hardly|without)\b[^.!?]{0,30}$",
    re.IGNORECASE,
)

_LOSER = [
    rf"\b(?:{_SWITCH})\s+{_OBJECT}from\s+{_B}",
    rf"\b(?:went|go(?:ing)?|came|upgrad(?:e|ed|ing)|chang(?:e|ed|ing))\s+from\s+{_B}\s+to\s+{_OTHER}",
    rf"\b(?:left|leaving|leave|ditch(?:ed|ing)?|dump(?:ed|ing)?|drop(?:ped|ping)?|quit(?:ting)?|cancel(?:l?ed|l?ing)?|"
    rf"replac(?:e|ed|ing)|trad(?:e|ed|ing) in|unsubscrib\w*(?:\s+from)?)"
    rf"\s+(?:my\s+|our\s+|the\s+)?{_B}",
    rf"\b(?:done with|bye(?: bye)?,?|goodbye,?|never (?:going back to|buying|again with))\s+{_B}",
    rf"\b(?:better|faster|cheaper|nicer|superior)\s+(?:value\s+)?than\s+{_B}",
    rf"\b(?:instead of|rather than)\s+{_B}",
    rf"\b(?:chose|choose|prefer|picked?)\s+{_OTHER}\s+over\s+{_B}",
    rf"{_B}(?:'s)?\s+(?:\w+\s+)?(?:is|was|are)\s+(?:(?:so|much|way|far)\s+){{0,2}}"
    rf"(?:worse|slower|more expensive|inferior|pricier)\b",
    rf"{_B}\s+(?:could|should)\s+learn\b",
    rf"\b{_OTHER}\s+beats\s+{_B}",
]
# The brand wins a switch: evidence that lifts an unsure verdict, never one that overturns a
# confident negative (the post may be a complaint about the brand switched to).
_WINNER = [
    rf"\b(?:{_SWITCH})\s+{_OBJECT}(?:from\s+{_OTHER}\s+)?to\s+{_B}",
    rf"\b(?:went|go(?:ing)?|came|upgrad(?:e|ed|ing)|chang(?:e|ed|ing))\s+from\s+{_OTHER}\s+to\s+{_B}",
    rf"\b(?:left|leaving|ditched|replaced|dropped)\s+{_OTHER}\s+(?:for|with)\s+{_B}",
]
# The brand wins a comparison the post states outright: this may overturn the post's tone
# ("Hooli is worse than Acme in every way" is good news for Acme).
_PREFERRED = [
    rf"\b(?:chose|choose|prefer|picked?)\s+{_B}\s+over\b",
    rf"\b(?:worse|slower|more expensive)\s+than\s+{_B}",
    rf"{_B}(?:'s)?\s+(?:\w+\s+)?(?:is|was|are)\s+(?:(?:so|much|way|far)\s+){{0,2}}"
    rf"(?:better|faster|cheaper|superior)\s+than\b",
]
_KINDS = {"loser": _LOSER, "preferred": _PREFERRED, "winner": _WINNER}


@lru_cache(maxsize=4)
def _patterns(kind: str) -> list[re.Pattern[str]]:
    return [re.compile(p, re.IGNORECASE) for p in _KINDS[kind]]


@lru_cache(maxsize=1024)
def brand_pattern(brand: str) -> re.Pattern[str]:
    """The brand as people write it: "Kestrel Pay", "KestrelPay", "kestrel_pay", "@kestrelpay", "#KestrelPay".

    Not "@kestrelpayuk": another account is another speaker, not the brand's name.
    """
    words = brand.split()
    forms = {re.escape(brand)}
    if len(words) > 1:
        forms |= {re.escape("".join(words)), re.escape("_".join(words))}
    body = "|".join(sorted(forms, key=len, reverse=True))
    return re.compile(rf"(?<![\w@#])[@#]?(?:{body})(?!\w)", re.IGNORECASE)


def _mark(text: str, brand: str) -> str | None:
    """The text with each occurrence of the brand replaced by a marker; None if absent."""
    marked, count = brand_pattern(brand).subn(_B, text)
    return marked if count else None


def _stated(marked: str, match: re.Match[str]) -> bool:
    """True unless the construction is negated just before it or asked as a question."""
    sentence_start = max(marked.rfind(c, 0, match.start()) for c in ".!?\n") + 1
    if _NEGATED.search(marked[sentence_start : match.start()]):
        return False
    rest = marked[match.end() :]
    ends = [i for i in (rest.find(c) for c in ".!?\n") if i >= 0]
    return not (ends and rest[min(ends)] == "?")


def _role(text: str, brand: str) -> str | None:
    """'loser', 'preferred' (wins a stated comparison), 'winner' (wins a switch), or None."""
    if not brand.strip():
        return None
    marked = _mark(text, brand.strip())
    if marked is None:
        return None
    for kind in _KINDS:
        for pattern in _patterns(kind):
            if any(_stated(marked, m) for m in pattern.finditer(marked)):
                return kind
    return None


def brand_role(text: str, brand: str) -> str | None:
    """'loser', 'winner', or None when the text sets the brand against nothing (or only asks)."""
    role = _role(text, brand)
    return "winner" if role == "preferred" else role


def aim_at_brand(text: str, brand: str, verdict: Sentiment) -> Sentiment:
    """The verdict as it bears on `brand`: probabilities are swapped so the label fits the role.

    Winning a switch never overturns a confident negative (see the module docstring).
    """
    if verdict.label is SentimentLabel.UNSCORED:
        return verdict
    role = _role(text, brand)
    if role is None:
        return verdict
    target = "negative" if role == "loser" else "positive"
    scores = {"negative": verdict.negative, "neutral": verdict.neutral, "positive": verdict.positive}
    top = max(scores, key=lambda k: scores[k])
    if top == target:
        return verdict
    if role == "winner" and top == "negative" and scores[top] >= CONFIDENT:
        return verdict
    scores[top], scores[target] = scores[target], scores[top]
    return verdict.model_copy(update={**scores, "label": SentimentLabel(target)})
