"""The trained classification head, stored as a small JSON file in the package.

A linear head on frozen embeddings is a 3x384 matrix and a bias: small enough to
ship in git and review in a diff, and it needs no pickle (so loading a head file
can never run code). The file also records which encoder and pooling it was
trained for and how well it scored, so a mismatched or untested head is refused
or at least visible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from listener.errors import ClassifierError

__all__ = ["LABELS", "LinearHead", "default_head_path"]

LABELS = ("negative", "neutral", "positive")
FORMAT = "listener-linear-head/1"


def default_head_path() -> Path:
    return Path(__file__).resolve().parent / "heads" / "minilm-tweeteval.json"


@dataclass(frozen=True)
class LinearHead:
    """Multinomial logistic regression: softmax(x @ weights.T + bias)."""

    weights: NDArray[np.float32]
    bias: NDArray[np.float32]
    labels: tuple[str, ...]
    encoder: str
    pooling: str
    version: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rows = len(self.labels)
        if self.weights.ndim != 2 or self.weights.shape[0] != rows or self.bias.shape != (rows,):
            raise ClassifierError(
                f"head shapes do not agree: weights {self.weights.shape}, bias {self.bias.shape}, "
                f"{rows} labels"
            )
        if not np.all(np.isfinite(self.weights)) or not np.all(np.isfinite(self.bias)):
            raise ClassifierError("head weights contain NaN or infinity")

    @property
    def dimension(self) -> int:
        return int(self.weights.shape[1])

    def probabilities(self, embeddings: NDArray[np.float32]) -> NDArray[np.float64]:
        logits = embeddings.astype(np.float64) @ self.weights.T.astype(np.float64) + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        result: NDArray[np.float64] = exp / exp.sum(axis=1, keepdims=True)
        return result

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": self.version,
            "encoder": self.encoder,
            "pooling": self.pooling,
            "labels": list(self.labels),
            "dimension": self.dimension,
            "weights": [[round(float(v), 6) for v in row] for row in self.weights],
            "bias": [round(float(v), 6) for v in self.bias],
            "metadata": self.metadata,
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> LinearHead:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ClassifierError(f"cannot read the classifier head {path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise ClassifierError(f"the classifier head {path} is not valid JSON: {exc}") from None
        try:
            return cls.from_json(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ClassifierError(f"the classifier head {path} is malformed: {exc!r}") from None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LinearHead:
        if data.get("format") != FORMAT:
            raise ValueError(f"unknown head format {data.get('format')!r}, expected {FORMAT!r}")
        labels = tuple(str(label) for label in data["labels"])
        if sorted(labels) != sorted(LABELS):
            raise ValueError(f"head labels must be {', '.join(LABELS)}; got {', '.join(labels)}")
        return cls(
            weights=np.asarray(data["weights"], dtype=np.float32),
            bias=np.asarray(data["bias"], dtype=np.float32),
            labels=labels,
            encoder=str(data["encoder"]),
            pooling=str(data["pooling"]),
            version=str(data["version"]),
            metadata=dict(data.get("metadata", {})),
        )
