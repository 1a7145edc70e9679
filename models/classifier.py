"""The `Classifier` seam."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from listener.records import Sentiment

__all__ = ["Classifier"]


class Classifier(Protocol):
    model_id: str
    model_version: str

    def classify(self, texts: Sequence[str]) -> list[Sentiment]:
        """One verdict per text, in order; batching is the implementation's business."""
        ...
