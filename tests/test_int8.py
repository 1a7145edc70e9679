"""Fixed-range int8 layers: a mention's score must not depend on what it was batched with."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models.int8 import StaticInt8Linear, quantize_static


def test_a_row_gets_the_same_output_alone_and_among_louder_rows() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(64, 32)
    quiet = torch.randn(3, 64)
    loud = torch.randn(5, 64) * 4  # would widen a per-batch activation range
    layer = StaticInt8Linear(linear, low=-8.0, high=8.0)
    alone = layer(quiet)
    among = layer(torch.cat([quiet, loud]))[:3]
    assert torch.equal(alone, among)
    # Quantization error stays small next to the outputs themselves.
    exact = linear(quiet).detach()
    assert (alone - exact).abs().max() < 0.05 * exact.abs().max()


def test_inputs_beyond_the_recorded_range_saturate_instead_of_overflowing() -> None:
    linear = nn.Linear(4, 2)
    layer = StaticInt8Linear(linear, low=-1.0, high=1.0)
    huge = layer(torch.full((1, 4), 1e6))
    edge = layer(torch.full((1, 4), 1.0))
    assert torch.allclose(huge, edge, atol=1e-5)


def test_quantizing_keeps_shapes_and_names_the_missing_layer() -> None:
    net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    ranges = {"0": [-3.0, 3.0], "2": [0.0, 3.0]}
    quantized = quantize_static(net, ranges)
    assert isinstance(quantized[0], StaticInt8Linear) and quantized(torch.randn(2, 5, 8)).shape == (2, 5, 3)
    with pytest.raises(KeyError, match="'0'"):
        quantize_static(nn.Sequential(nn.Linear(8, 8)), {})
