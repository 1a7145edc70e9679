"""Any Hugging Face sequence-classification model as a Listener classifier.

Teams that have a better sentiment model (a fine-tuned RoBERTa, a multilingual
one) point `classifier.model` at its directory or hub name. Models name their
classes in many ways, so the labels are mapped here once, at load time, and a
model whose labels cannot be read as negative/neutral/positive is refused with
the names it used rather than silently mis-scored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from listener.config import ClassifierConfig
from listener.errors import ClassifierError
from models.batching import configure_threads, resolve_device, token_lengths
from models.scoring import BatchedClassifier

__all__ = ["HFClassifier", "map_labels"]

_NAMES = {
    "negative": 0, "neg": 0,
    "neutral": 1, "neu": 1,
    "positive": 2, "pos": 2,
}  # fmt: skip
_NUMBERED = {3: ("label_0", "label_1", "label_2"), 2: ("label_0", "label_1")}


def map_labels(id2label: Mapping[int, str]) -> list[int | None]:
    """For negative, neutral, positive: the model's output column, or None when it has none.

    `LABEL_0/1/2` is read as negative/neutral/positive, the convention of the
    TweetEval-trained models; two-label models are negative/positive.
    """
    names = {int(i): str(label).strip().casefold() for i, label in id2label.items()}
    if tuple(names[i] for i in sorted(names)) == _NUMBERED.get(len(names)):
        targets = [0, 1, 2] if len(names) == 3 else [0, 2]
        columns: list[int | None] = [None, None, None]
        for column, target in zip(sorted(names), targets, strict=True):
            columns[target] = column
        return columns
    unknown = sorted(label for label in names.values() if label not in _NAMES)
    if unknown or len(names) not in (2, 3):
        raise ClassifierError(
            "cannot map the model's labels to negative/neutral/positive: "
            + (f"unknown labels {unknown}" if unknown else f"{len(names)} labels {sorted(names.values())}")
        )
    columns = [None, None, None]
    for column, label in names.items():
        target = _NAMES[label]
        if columns[target] is not None:
            raise ClassifierError(f"the model has two outputs for {label!r}: {sorted(names.values())}")
        columns[target] = column
    if columns[0] is None or columns[2] is None:
        raise ClassifierError(
            f"the model needs both a negative and a positive label: {sorted(names.values())}"
        )
    return columns


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or Path(name).expanduser().exists()


def _fingerprint(model_dir: Path) -> str:
    """A cheap content fingerprint of a local model: stable across copies, changes with the weights."""
    digest = hashlib.sha256()
    for path in sorted(model_dir.glob("*")):
        if path.is_file() and path.suffix in (".json", ".safetensors", ".bin"):
            size = path.stat().st_size
            digest.update(f"{path.name}:{size}".encode())
            with path.open("rb") as handle:
                digest.update(handle.read(65536))
                handle.seek(max(0, size - 65536))
                digest.update(handle.read(65536))
    return digest.hexdigest()[:12]


def _load(name: str) -> tuple[Any, Any, str]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # a service's log is no place for progress bars

    local = _looks_like_path(name)
    source = str(Path(name).expanduser()) if local else name
    if local and not Path(source).is_dir():
        raise ClassifierError(f"classifier model directory {source} does not exist")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
        model = AutoModelForSequenceClassification.from_pretrained(source, local_files_only=local)
    except (OSError, ValueError, KeyError) as exc:
        hint = "" if local else " (offline? download it first, or set classifier.model to a local directory)"
        raise ClassifierError(f"cannot load classifier model {name!r}{hint}: {exc}") from None
    version = (
        _fingerprint(Path(source)) if local else str(getattr(model.config, "_commit_hash", None) or "hub")
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer, model, version


class HFClassifier(BatchedClassifier):
    """Satisfies `models.classifier.Classifier` for any `AutoModelForSequenceClassification`."""

    model_id: str
    model_version: str

    def __init__(
        self,
        name: str,
        *,
        device: str = "auto",
        batch_size: int = 32,
        max_length: int = 128,
        threads: int | None = None,
    ) -> None:
        configure_threads(threads)
        try:
            self.device = resolve_device(device)
        except ValueError as exc:
            raise ClassifierError(str(exc)) from None
        self.tokenizer, self.model, self.model_version = _load(name)
        self.columns = map_labels(self.model.config.id2label)
        self.model.eval()
        if self.device.type == "cuda":
            self.model.half()
        self.model.to(self.device)
        self.model_id = name
        self.batch_size = batch_size
        self.max_length = max_length

    @classmethod
    def from_config(cls, cfg: ClassifierConfig) -> HFClassifier:
        return cls(
            cfg.model,
            device=cfg.device,
            batch_size=cfg.batch_size,
            max_length=cfg.max_length,
            threads=cfg.threads,
        )

    def _lengths(self, texts: list[str]) -> list[int]:
        return token_lengths(self.tokenizer, texts, self.max_length)

    def _score_batch(self, texts: list[str]) -> NDArray[np.float64]:
        encoded = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            logits = self.model(**encoded).logits.float()
        probabilities = torch.softmax(logits, dim=-1).cpu().numpy().astype(np.float64)
        out = np.zeros((len(texts), 3), dtype=np.float64)
        for target, column in enumerate(self.columns):
            if column is not None:
                out[:, target] = probabilities[:, column]
        return out
