"""Fine-tuned sentiment models: a base encoder plus a stored adapter and head.

A model directory holds `sentiment.json` (what base it needs, labels, version,
scores) and `adapter.safetensors` (LoRA matrices, LayerNorm parameters, the
head, in fp16). The base encoder comes from an installed package or a local
Hugging Face directory, so a directory of a few MB is a complete model and
loads with no network. Loading folds the adapter into the encoder, then
optionally int8-quantizes its linear layers for CPU speed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from listener.errors import ClassifierError
from models.encoder import ENCODER_NAME, bundled_model_dir

__all__ = [
    "ADAPTER_FILE",
    "FORMAT",
    "META_FILE",
    "SentimentNet",
    "is_model_dir",
    "keep_layers",
    "load_base",
    "load_model_dir",
    "save_model_dir",
]

FORMAT = "listener-sentiment-lora/1"
META_FILE = "sentiment.json"
ADAPTER_FILE = "adapter.safetensors"
LABELS = ("negative", "neutral", "positive")


class SentimentNet(nn.Module):
    """Encoder, mean pooling over real tokens, a 3-way linear head."""

    def __init__(self, encoder: nn.Module, dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder = encoder
        hidden = int(encoder.config.hidden_size)  # type: ignore[union-attr,arg-type]
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, len(LABELS))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        logits: torch.Tensor = self.head(self.dropout(pooled))
        return logits


def _base_dir(base: str | None) -> tuple[str, str]:
    """(name recorded in the model dir, where transformers loads it from)."""
    if base in (None, "default", ENCODER_NAME):
        return ENCODER_NAME, str(bundled_model_dir())
    return str(base), str(base)


def keep_layers(encoder: nn.Module, layers: int | None) -> None:
    """Keep only the first `layers` transformer blocks: a shallower encoder is proportionally faster.

    A model trained this way records `layers` in its metadata, and loading it
    truncates the base the same way, so the repo still carries only the delta.
    """
    if layers is None:
        return
    blocks = encoder.encoder.layer  # type: ignore[union-attr]
    if not 1 <= layers <= len(blocks):  # type: ignore[arg-type]
        raise ClassifierError(f"layers must be between 1 and {len(blocks)}, not {layers}")  # type: ignore[arg-type]
    encoder.encoder.layer = blocks[:layers]  # type: ignore[union-attr,index]
    encoder.config.num_hidden_layers = layers  # type: ignore[union-attr]


def load_base(base: str | None, layers: int | None = None) -> tuple[Any, nn.Module, str]:
    """Tokenizer and plain encoder for `base` (None: the bundled MiniLM), offline only."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    name, where = _base_dir(base)
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True)
        encoder = AutoModel.from_pretrained(where, local_files_only=True)
    except (OSError, ValueError, TypeError) as exc:
        raise ClassifierError(f"cannot load the base encoder {name!r} from {where}: {exc}") from None
    encoder.float()  # a half-precision checkpoint would otherwise train and merge adapters in fp16
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None  # mean pooling is used; the CLS pooler would be computed for nothing
    keep_layers(encoder, layers)
    return tokenizer, encoder, name


def save_model_dir(
    out: Path,
    tensors: dict[str, torch.Tensor],
    *,
    base: str,
    max_length: int,
    scale: float,
    metadata: dict[str, Any],
) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    half = {k: v.detach().to(torch.float16).contiguous() for k, v in sorted(tensors.items())}
    digest = hashlib.sha256(b"".join(t.numpy().tobytes() for t in half.values())).hexdigest()[:10]
    tmp = out / (ADAPTER_FILE + ".tmp")
    save_file(half, str(tmp))
    tmp.replace(out / ADAPTER_FILE)
    meta = {"format": FORMAT, "base": base, "labels": list(LABELS), "max_length": max_length,
            "lora_scale": scale, "pooling": "mean", "version": f"2-{digest}", **metadata}
    (out / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def is_model_dir(path: Path) -> bool:
    return (path / META_FILE).is_file() and (path / ADAPTER_FILE).is_file()


def read_meta(path: Path) -> dict[str, Any]:
    try:
        meta: dict[str, Any] = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ClassifierError(f"cannot read {path / META_FILE}: {exc}") from None
    if meta.get("format") != FORMAT:
        raise ClassifierError(f"{path / META_FILE}: format {meta.get('format')!r} is not {FORMAT!r}")
    if meta.get("labels") != list(LABELS):
        raise ClassifierError(f"{path / META_FILE}: labels must be {list(LABELS)}")
    return meta


def scaled_adapter(path: Path) -> dict[str, torch.Tensor]:
    """A model dir's encoder tensors with the LoRA scale folded into B, so adapters can be stacked."""
    from safetensors.torch import load_file

    scale = float(read_meta(path)["lora_scale"])
    tensors = load_file(str(path / ADAPTER_FILE))
    return {
        k: (v.float() * scale if k.endswith(".lora_b") else v.float())
        for k, v in tensors.items()
        if k.startswith("encoder.")
    }


def load_model_dir(path: Path) -> tuple[Any, SentimentNet, dict[str, Any]]:
    """Tokenizer, merged eval-mode network and metadata for a model directory."""
    from safetensors.torch import load_file

    from models.lora import merge_into

    meta = read_meta(path)
    layers = meta.get("layers")
    tokenizer, encoder, _ = load_base(str(meta["base"]), None if layers is None else int(layers))
    try:
        tensors = load_file(str(path / ADAPTER_FILE))
    except (OSError, ValueError) as exc:
        raise ClassifierError(f"cannot read {path / ADAPTER_FILE}: {exc}") from None
    encoder_tensors = {k[len("encoder."):]: v for k, v in tensors.items() if k.startswith("encoder.")}
    try:
        merge_into(encoder, encoder_tensors, scale=float(meta["lora_scale"]))
        net = SentimentNet(encoder)
        net.head.weight.data.copy_(tensors["head.weight"].float())
        net.head.bias.data.copy_(tensors["head.bias"].float())
    except (KeyError, RuntimeError) as exc:
        raise ClassifierError(f"{path}: the adapter does not fit base {meta['base']!r}: {exc}") from None
    net.eval()
    return tokenizer, net, meta


def quantize_int8(net: SentimentNet) -> SentimentNet:
    """Dynamic int8 for every linear layer (weights int8, activations quantized per batch).

    torch marks its eager quantization API deprecated in favour of torchao,
    which is not installed here; the warning is silenced rather than shown to
    every user at start-up.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized: SentimentNet = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
            net, {nn.Linear}, dtype=torch.qint8
        )
    return quantized
