"""Which language a mention is in, so a model is never asked to judge one it cannot read.

Detection uses lingua (offline, its language models ship in the wheel),
restricted to the languages a deployment expects: a small candidate set is
both faster and less error-prone than all 75. Very short texts ("ok", "@user
lol") carry too little signal for any detector, so they are reported as
undetermined (None) rather than as whichever language happened to win.

Only a bounded prefix of each text is read. lingua's cost grows with the
square of a text's length (one 100 KB word took 1.9 s, one 1 MB word over three
minutes, holding the GIL and so every other thread of the monitor); its verdict
settles within a few hundred characters, so the first `PREFIX_CHARS` decide.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

from listener.errors import ClassifierError
from models.scoring import clean_text

__all__ = ["DEFAULT_CANDIDATES", "PREFIX_CHARS", "LanguageDetector"]

DEFAULT_CANDIDATES = ("en", "de", "fr", "es", "pt", "it", "nl")
PREFIX_CHARS = 2_000  # a one-word text this long costs ~1 ms; a language shows well before it
_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)
_NOISE = re.compile(r"@\w+|#|https?://\S+")


class LanguageDetector:
    """ISO 639-1 codes (lower case) for texts; None where the text is too short or too unsure."""

    def __init__(
        self,
        candidates: Sequence[str] = DEFAULT_CANDIDATES,
        *,
        min_letters: int = 12,
        min_confidence: float = 0.5,
    ) -> None:
        try:
            from lingua import IsoCode639_1, Language, LanguageDetectorBuilder
        except ImportError:
            raise ClassifierError(
                "language detection needs the 'lingua-language-detector' package"
            ) from None
        languages: list[Any] = []
        for code in candidates:
            try:
                languages.append(Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())))
            except (AttributeError, ValueError):
                raise ClassifierError(f"unknown language code {code!r} (use ISO 639-1, e.g. 'en')") from None
        if len(languages) < 2:
            raise ClassifierError("language detection needs at least two candidate languages")
        self.candidates = tuple(code.lower() for code in candidates)
        self.min_letters = min_letters
        self.min_confidence = min_confidence
        self._detector = LanguageDetectorBuilder.from_languages(*languages).build()
        self._lock = threading.Lock()

    def detect(self, texts: Sequence[str]) -> list[str | None]:
        # lone surrogates break lingua; the prefix bounds its quadratic cost
        cleaned = [_NOISE.sub(" ", clean_text(text[:PREFIX_CHARS])) for text in texts]
        long_enough = [i for i, text in enumerate(cleaned) if len(_LETTERS.findall(text)) >= self.min_letters]
        out: list[str | None] = [None] * len(texts)
        if not long_enough:
            return out
        with self._lock:  # lingua loads each language's model lazily on first use
            values = self._detector.compute_language_confidence_values_in_parallel(
                [cleaned[i] for i in long_enough]
            )
        for i, ranked in zip(long_enough, values, strict=True):
            if ranked and ranked[0].value >= self.min_confidence:
                out[i] = ranked[0].language.iso_code_639_1.name.lower()
        return out
