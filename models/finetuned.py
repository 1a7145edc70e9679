"""The classifier over a fine-tuned model directory (see `models/tuned.py`).

This is the default model: the bundled MiniLM encoder with the TweetEval
adapter in `models/sentiment/`. On a CPU it runs int8 when the directory says
int8 was validated for it (the metadata records the quality measured both
ways), with the fixed activation ranges of `models/int8.py` when the directory
records them; on a GPU it runs fp16.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from listener.config import ClassifierConfig
from listener.errors import ClassifierError
from models.batching import configure_threads, resolve_device, token_lengths
from models.int8 import RANGES_KEY, quantize_static
from models.normalise import DEFAULT_STEPS, normaliser
from models.scoring import BatchedClassifier
from models.tuned import is_model_dir, load_model_dir, quantize_int8

__all__ = ["DEFAULT_MODEL_DIR", "FinetunedClassifier"]

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "sentiment" / "minilm-lora-tweeteval"


class FinetunedClassifier(BatchedClassifier):
    """Satisfies `models.classifier.Classifier`."""

    model_id: str
    model_version: str

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        device: str = "auto",
        batch_size: int = 32,
        max_length: int | None = None,
        threads: int | None = None,
        int8: bool | None = None,
        text_steps: Sequence[str] | None = None,
    ) -> None:
        configure_threads(threads)
        path = model_dir or DEFAULT_MODEL_DIR
        if not is_model_dir(path):
            raise ClassifierError(f"{path} is not a sentiment model directory (no sentiment.json/adapter)")
        try:
            self.device = resolve_device(device)
        except ValueError as exc:
            raise ClassifierError(str(exc)) from None
        self.model_dir = path
        self.tokenizer, net, meta = load_model_dir(path)
        self.int8 = self.device.type == "cpu" and (bool(meta.get("int8_default")) if int8 is None else int8)
        suffix = ""
        if self.int8 and meta.get(RANGES_KEY):
            net, suffix = quantize_static(net, meta[RANGES_KEY]), "-int8-static"
        elif self.int8:
            net, suffix = quantize_int8(net), "-int8"
        elif self.device.type == "cuda":
            net = net.half()
        self.net = net.to(self.device)
        self.model_id = str(meta.get("model_id") or path.name)
        self.model_version = str(meta["version"]) + suffix
        self.max_length = max_length or int(meta["max_length"])
        self.batch_size = batch_size
        self.meta = meta
        # What the text goes through first: the caller's choice, else the model dir's record, else
        # the steps validation kept (models/normalise.py).
        steps = text_steps if text_steps is not None else meta.get("text_steps", DEFAULT_STEPS)
        try:
            self._prepare = normaliser(steps) if steps else None
        except ValueError as exc:
            raise ClassifierError(f"{path}: {exc}") from None
        self.text_steps = tuple(steps)

    @classmethod
    def from_config(cls, cfg: ClassifierConfig, model_dir: Path | None = None) -> FinetunedClassifier:
        return cls(model_dir, device=cfg.device, batch_size=cfg.batch_size, threads=cfg.threads)

    def _lengths(self, texts: list[str]) -> list[int]:
        return token_lengths(self.tokenizer, texts, self.max_length)

    def _score_batch(self, texts: list[str]) -> NDArray[np.float64]:
        encoded = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            logits = self.net(encoded["input_ids"], encoded["attention_mask"]).float()
        result: NDArray[np.float64] = torch.softmax(logits, dim=-1).cpu().numpy().astype(np.float64)
        return result
