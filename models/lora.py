"""Low-rank adapters for the encoder's linear layers, trained here and merged at load.

The repo cannot carry a fine-tuned copy of the encoder (tens of MB), so training
learns a rank-r update `B @ A` for each linear layer and the repo keeps only
those small matrices (plus LayerNorm parameters and the classification head).
At load time the update is folded into the base weights, so inference runs a
plain encoder at plain speed and can be int8-quantized like any other.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["LoRALinear", "adapter_tensors", "inject", "lora_modules", "merge_into"]


class LoRALinear(nn.Module):
    """A frozen linear plus a trainable low-rank update; B starts at zero, so training starts at the base."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float) -> None:
        super().__init__()
        self.base = base
        for parameter in self.base.parameters():
            parameter.requires_grad_(False)
        self.rank = rank
        self.scale = alpha / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = (self.dropout(x) @ self.lora_a.t()) @ self.lora_b.t()
        result: torch.Tensor = self.base(x) + update * self.scale
        return result


def _targets(model: nn.Module) -> Iterator[tuple[str, nn.Linear]]:
    """Every linear layer of the transformer blocks; the pooler is never used for mean pooling."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and not name.startswith("pooler"):
            yield name, module


def inject(model: nn.Module, *, rank: int, alpha: float, dropout: float) -> list[str]:
    """Wrap the target linears in place; returns their qualified names."""
    names: list[str] = []
    for name, module in list(_targets(model)):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(module, rank, alpha, dropout))
        names.append(name)
    return names


def lora_modules(model: nn.Module) -> Iterator[tuple[str, LoRALinear]]:
    for name, module in model.named_modules():
        if isinstance(module, LoRALinear):
            yield name, module


def adapter_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """What the repo stores: the A/B matrices and every LayerNorm's weight and bias."""
    tensors: dict[str, torch.Tensor] = {}
    for name, module in lora_modules(model):
        tensors[f"{name}.lora_a"] = module.lora_a.detach().clone()
        tensors[f"{name}.lora_b"] = module.lora_b.detach().clone()
    for name, module in model.named_modules():
        if isinstance(module, nn.LayerNorm):
            tensors[f"{name}.weight"] = module.weight.detach().clone()
            tensors[f"{name}.bias"] = module.bias.detach().clone()
    return tensors


@torch.no_grad()
def merge_into(model: nn.Module, tensors: dict[str, torch.Tensor], *, scale: float) -> int:
    """Fold stored adapters into a plain (unwrapped) encoder; returns how many layers changed.

    Raises KeyError when the stored names do not fit this encoder, which means
    the adapter was trained on a different base model.
    """
    merged = 0
    for name, module in _targets(model):
        a = tensors.get(f"{name}.lora_a")
        if a is None:
            continue
        b = tensors[f"{name}.lora_b"]
        delta = (b.float() @ a.float()) * scale
        module.weight.add_(delta.to(module.weight.dtype))
        merged += 1
    for name, module in model.named_modules():
        if isinstance(module, nn.LayerNorm) and f"{name}.weight" in tensors:
            module.weight.copy_(tensors[f"{name}.weight"].to(module.weight.dtype))
            module.bias.copy_(tensors[f"{name}.bias"].to(module.bias.dtype))
    expected = sum(1 for key in tensors if key.endswith(".lora_a"))
    if merged != expected:
        raise KeyError(f"adapter holds {expected} layers but only {merged} match this encoder")
    return merged
