"""From per-batch class probabilities to `Sentiment` verdicts, in input order.

Both classifiers share this: blank texts get an explicit `unscored` verdict
instead of whatever a model guesses for an empty string, text that Python can
hold but UTF-8 cannot (lone surrogates from hostile JSON) is repaired before
the tokenizer sees it, and batches are formed by token count so padding stays small.

Texts are cut to `MAX_CHARS` before tokenizing: every model here truncates to a
few hundred tokens anyway, but the tokenizer reads the whole text first (twice:
once to measure, once to score), so a 1 MB post cost about a second of CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from listener.records import Sentiment, SentimentLabel
from models.batching import length_sorted_batches

__all__ = ["MAX_CHARS", "BatchScorer", "BatchedClassifier", "clean_text", "score_texts"]

# Far past 512 tokens of any real language (a token is a few characters), so no verdict changes.
MAX_CHARS = 32_000

# Takes a batch of non-blank texts, returns an (n, 3) array: negative, neutral, positive.
BatchScorer = Callable[[list[str]], NDArray[np.floating]]
# Takes the non-blank texts, returns how long each is for the model (token counts).
Measure = Callable[[list[str]], Sequence[int]]

_ORDER = (SentimentLabel.NEGATIVE, SentimentLabel.NEUTRAL, SentimentLabel.POSITIVE)


def clean_text(text: str) -> str:
    """Replace what the tokenizer cannot encode (lone surrogates, NUL) rather than fail the batch."""
    repaired = text.encode("utf-8", "replace").decode("utf-8")
    return repaired.replace("\x00", " ")


def score_texts(
    texts: Sequence[str],
    scorer: BatchScorer,
    *,
    batch_size: int,
    model_id: str,
    model_version: str,
    measure: Measure | None = None,
    prepare: Callable[[str], str] | None = None,
) -> list[Sentiment]:
    """Verdicts in input order; batches are formed by `measure` (token counts), else characters.

    `prepare` rewrites each non-blank text before the model reads it (see `models.normalise`).
    """
    if isinstance(texts, str):
        raise TypeError("classify() takes a sequence of texts, not a single string")
    unscored = Sentiment(label=SentimentLabel.UNSCORED, model_id=model_id, model_version=model_version)
    results: list[Sentiment] = [unscored] * len(texts)
    positions = [i for i, text in enumerate(texts) if text and text.strip()]
    cleaned = [clean_text(texts[i][:MAX_CHARS]) for i in positions]
    if prepare is not None:
        cleaned = [prepare(text) for text in cleaned]
    lengths = measure(cleaned) if measure is not None and cleaned else None
    for batch in length_sorted_batches(cleaned, batch_size, lengths):
        probabilities = np.asarray(scorer([cleaned[j] for j in batch]), dtype=np.float64)
        if probabilities.shape != (len(batch), 3):
            raise ValueError(f"scorer returned shape {probabilities.shape} for {len(batch)} texts")
        for j, row in zip(batch, probabilities, strict=True):
            results[positions[j]] = Sentiment(
                label=_ORDER[int(row.argmax())],
                negative=float(row[0]),
                neutral=float(row[1]),
                positive=float(row[2]),
                model_id=model_id,
                model_version=model_version,
            )
    return results


class BatchedClassifier:
    """The shared `classify` of every model here: subclasses only score one batch.

    Subclasses set `model_id`, `model_version` and `batch_size`, and implement
    `_score_batch` returning (n, 3) probabilities: negative, neutral, positive.
    Those with a tokenizer override `_lengths` so batches are sorted by tokens.
    """

    model_id: str
    model_version: str
    batch_size: int
    _prepare: Callable[[str], str] | None = None  # text normalisation, when the model wants one

    def classify(self, texts: Sequence[str]) -> list[Sentiment]:
        return score_texts(
            texts,
            self._score_batch,
            batch_size=self.batch_size,
            model_id=self.model_id,
            model_version=self.model_version,
            measure=self._lengths,
            prepare=self._prepare,
        )

    def _lengths(self, texts: list[str]) -> Sequence[int]:
        """What batches are sorted by; characters unless a subclass knows its tokens."""
        return [len(text) for text in texts]

    def _score_batch(self, texts: list[str]) -> NDArray[np.float64]:
        raise NotImplementedError
