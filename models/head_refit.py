"""Refit only a model directory's 3-way head on new examples: seconds on a CPU, not minutes.

The encoder and its adapters stay as they are, so each text is encoded once;
the head then trains full-batch on the pooled vectors, pulled toward its
previous weights (`anchor`) so a few dozen corrections adjust the verdicts
near them rather than redraw every boundary. `listener train --from-feedback
--head-only` uses it where a full adapter fine-tune would take too long.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.int8 import RANGES_KEY
from models.normalise import DEFAULT_STEPS, normaliser
from models.tuned import ADAPTER_FILE, load_model_dir, save_model_dir

__all__ = ["refit_head"]


@torch.no_grad()
def _pooled(net: Any, tokenizer: Any, texts: Sequence[str], max_length: int) -> torch.Tensor:
    head, net.head = net.head, nn.Identity()
    try:
        out = []
        for start in range(0, len(texts), 64):
            enc = tokenizer(list(texts[start : start + 64]), padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt")
            out.append(net(enc["input_ids"], enc["attention_mask"]).float())
        return torch.cat(out)
    finally:
        net.head = head


def refit_head(base: Path, out: Path, texts: Sequence[str], labels: Sequence[int], *,
               steps: int = 300, lr: float = 1e-2, anchor: float = 1e-2,
               metadata: dict[str, Any] | None = None) -> None:
    """Write `out`: `base`'s encoder tensors with a head refit on (`texts`, `labels`)."""
    from safetensors.torch import load_file

    tokenizer, net, meta = load_model_dir(base)
    prepare = normaliser(meta.get("text_steps", DEFAULT_STEPS))
    features = _pooled(net, tokenizer, [prepare(t) for t in texts], int(meta["max_length"]))
    gold = torch.tensor(list(labels))
    counts = torch.bincount(gold, minlength=3).clamp(min=1).float()
    loss_fn = nn.CrossEntropyLoss(weight=len(labels) / (3 * counts))
    start_w, start_b = net.head.weight.detach().clone(), net.head.bias.detach().clone()
    weight, bias = nn.Parameter(start_w.clone()), nn.Parameter(start_b.clone())
    optimizer = torch.optim.Adam([weight, bias], lr=lr)
    torch.manual_seed(0)
    for _ in range(steps):
        loss = loss_fn(features @ weight.T + bias, gold)
        loss = loss + anchor * ((weight - start_w).pow(2).sum() + (bias - start_b).pow(2).sum())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    tensors = {k: v for k, v in load_file(str(base / ADAPTER_FILE)).items() if not k.startswith("head.")}
    tensors["head.weight"], tensors["head.bias"] = weight.detach(), bias.detach()
    # The encoder is unchanged, so the head still reads the same pooled vectors and every int8
    # input range the parent measured on its training texts still holds; its figures do not.
    kept = {k: meta[k] for k in ("layers", "text_steps", "int8_default", RANGES_KEY) if k in meta}
    save_model_dir(out, tensors, base=str(meta["base"]), max_length=int(meta["max_length"]),
                   scale=float(meta["lora_scale"]), metadata={**kept, **(metadata or {})})
