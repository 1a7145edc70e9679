"""Send each text to a model that reads its language, or say plainly that none does.

The default model was trained on English tweets; its verdict on German or
Japanese text is a guess dressed as a score. So every text's language is
detected first: covered languages (and texts too short to tell) go to the main
model, languages mapped in config go to their own model, and the rest come back
`unscored` with the language named, so a dashboard can count them honestly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from listener.records import Sentiment, SentimentLabel
from models.classifier import Classifier
from models.language import LanguageDetector

__all__ = ["RoutedClassifier"]


class RoutedClassifier:
    """Satisfies `models.classifier.Classifier`; `model_id`/`model_version` are the main model's."""

    def __init__(
        self,
        main: Classifier,
        *,
        covered: Sequence[str],
        detector: LanguageDetector | None,
        others: Mapping[str, Classifier] | None = None,
    ) -> None:
        self.main = main
        self.covered = frozenset(covered)
        self.detector = detector
        self.others = dict(others or {})
        self.model_id = main.model_id
        self.model_version = main.model_version

    def classify(self, texts: Sequence[str]) -> list[Sentiment]:
        if isinstance(texts, str):
            raise TypeError("classify() takes a sequence of texts, not a single string")
        languages: list[str | None] = (
            self.detector.detect(texts) if self.detector is not None else [None] * len(texts)
        )
        routes: dict[str | None, list[int]] = {}
        for i, language in enumerate(languages):
            key = None if language is None or language in self.covered else language
            routes.setdefault(key, []).append(i)
        results: list[Sentiment | None] = [None] * len(texts)
        for key, indices in routes.items():
            model = self.main if key is None else self.others.get(key)
            if model is None:
                verdicts = [self._unscored() for _ in indices]
            else:
                verdicts = model.classify([texts[i] for i in indices])
            for i, verdict in zip(indices, verdicts, strict=True):
                results[i] = verdict.model_copy(update={"language": languages[i]})
        return [r for r in results if r is not None]

    def _unscored(self) -> Sentiment:
        return Sentiment(
            label=SentimentLabel.UNSCORED, model_id=self.model_id, model_version=self.model_version
        )
