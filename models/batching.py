"""Length-sorted batching and the torch runtime settings every model shares.

Sorting texts by length before batching means each batch pads to a similar
length, so a batch of tweets never pays for one long blog post. Callers get
results back in input order through the index lists these helpers return.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence

import torch

__all__ = ["configure_threads", "length_sorted_batches", "resolve_device"]

_threads_lock = threading.Lock()
_threads_set = False


def length_sorted_batches(texts: Sequence[str], batch_size: int) -> Iterator[list[int]]:
    """Yield lists of indices into `texts`, shortest texts first, `batch_size` at a time.

    Character length is a cheap stand-in for token length; it is close enough to
    keep padding small without tokenising twice.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def configure_threads(threads: int | None) -> None:
    """Set torch's intra-op thread count once per process.

    torch's setting is process-wide; setting it again from every classifier that
    gets built would fight with other components, so the first caller wins.
    """
    global _threads_set
    with _threads_lock:
        if _threads_set:
            return
        torch.set_num_threads(max(1, threads or os.cpu_count() or 1))
        _threads_set = True


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present; anything else is passed to torch and checked now."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {name!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was requested but CUDA is not available")
    return device
