"""Train the default classifier's head: frozen MiniLM embeddings + logistic regression.

    python -m models.train_head --data /path/to/tweeteval-sentiment --out models/heads/minilm-tweeteval.json

TweetEval's official train_text.txt is not available here, so training reads the
dataset's `reconstructed-train/` folder; C and class weighting are chosen on the
official validation split, and the test split is scored once, at the end, for the
record in the head file. Embeddings are cached under the system temp directory
(keyed by the file contents), so re-tuning does not re-embed 47k tweets.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.batching import configure_threads
from models.encoder import ENCODER_NAME, POOLING, SentenceEncoder
from models.evaluation import Scores, read_split, score
from models.head import LABELS, LinearHead

__all__ = ["cache_path", "cached_embeddings", "embed_cached", "main", "train"]

log = logging.getLogger("models.train_head")

C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
WEIGHTINGS: tuple[str | None, ...] = (None, "balanced")
MAX_LENGTH = 128


def _cache_dir() -> Path:
    path = Path(os.environ.get("LISTENER_EMBED_CACHE", Path(tempfile.gettempdir()) / "listener-embed-cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_path(texts: Sequence[str], name: str, encoder_tag: str) -> Path:
    """Where the embeddings of exactly these texts by this encoder are kept between runs."""
    key = hashlib.sha256("\n".join(texts).encode("utf-8"))
    key.update(encoder_tag.encode())
    return _cache_dir() / f"{name}-{key.hexdigest()[:16]}.npy"


def embed_cached(encoder: SentenceEncoder, texts: Sequence[str], name: str) -> NDArray[np.float32]:
    return cached_embeddings(texts, name, f"{ENCODER_NAME}|{POOLING}|{encoder.max_length}", encoder.embed)


def cached_embeddings(
    texts: Sequence[str],
    name: str,
    encoder_tag: str,
    embed: Callable[[Sequence[str]], NDArray[np.float32]],
) -> NDArray[np.float32]:
    """`embed(texts)`, read from the cache when the same texts met the same encoder before."""
    path = cache_path(texts, name, encoder_tag)
    if path.is_file():
        log.info("%s: %d embeddings from cache %s", name, len(texts), path)
        cached: NDArray[np.float32] = np.load(path)
        return cached
    started = time.perf_counter()
    vectors = embed(texts)
    log.info("%s: embedded %d texts in %.0f s", name, len(texts), time.perf_counter() - started)
    np.save(path, vectors)
    return vectors


def _fit(x: NDArray[np.float32], y: Sequence[int], c: float, weighting: str | None) -> Any:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, class_weight=weighting, max_iter=3000)
    model.fit(x, np.asarray(y))
    return model


def _tune(
    train: tuple[NDArray[np.float32], list[int]], val: tuple[NDArray[np.float32], list[int]]
) -> tuple[float, str | None, Scores, list[dict[str, Any]]]:
    """Pick C and class weighting by validation macro-recall, the task's metric."""
    best: tuple[float, str | None, Scores] | None = None
    grid: list[dict[str, Any]] = []
    for weighting in WEIGHTINGS:
        for c in C_GRID:
            model = _fit(train[0], train[1], c, weighting)
            result = score(val[1], [int(p) for p in model.predict(val[0])])
            row = {"C": c, "class_weight": weighting, "val_macro_recall": round(result.macro_recall, 4)}
            grid.append(row)
            log.info("C=%-5g class_weight=%-8s val macro-recall %.4f", c, weighting, result.macro_recall)
            if best is None or result.macro_recall > best[2].macro_recall:
                best = (c, weighting, result)
    assert best is not None
    return best[0], best[1], best[2], grid


def _head_from(model: Any, metadata: dict[str, Any]) -> LinearHead:
    if [int(c) for c in model.classes_] != [0, 1, 2]:
        raise ValueError(f"expected classes 0, 1, 2 in training labels, got {model.classes_}")
    weights = np.round(np.asarray(model.coef_, dtype=np.float64), 6).astype(np.float32)
    bias = np.round(np.asarray(model.intercept_, dtype=np.float64), 6).astype(np.float32)
    digest = hashlib.sha256(weights.tobytes() + bias.tobytes()).hexdigest()[:10]
    return LinearHead(
        weights=weights,
        bias=bias,
        labels=LABELS,
        encoder=ENCODER_NAME,
        pooling=POOLING,
        version=f"1-{digest}",
        metadata=metadata,
    )


def _read_splits(data: Path) -> dict[str, tuple[list[str], list[int]]]:
    train_dir = data / "reconstructed-train"
    return {
        "train": read_split(train_dir / "train_text.txt", train_dir / "train_labels.txt"),
        "val": read_split(data / "val_text.txt", data / "val_labels.txt"),
        "test": read_split(data / "test_text.txt", data / "test_labels.txt"),
    }


def train(data: Path, out: Path) -> LinearHead:
    configure_threads(None)
    encoder = SentenceEncoder(max_length=MAX_LENGTH, batch_size=64)
    splits = _read_splits(data)
    x = {name: embed_cached(encoder, texts, name) for name, (texts, _) in splits.items()}
    y = {name: labels for name, (_, labels) in splits.items()}
    c, weighting, _, grid = _tune((x["train"], y["train"]), (x["val"], y["val"]))
    log.info("chosen: C=%g class_weight=%s", c, weighting)
    model = _fit(x["train"], y["train"], c, weighting)
    metadata: dict[str, Any] = {
        "task": "TweetEval sentiment (SemEval-2017 4A, English)",
        "train_data": "reconstructed-train (SemEval 2013-2016 4A tweets, val/test tweets removed), "
        "not the official TweetEval train file",
        "train_size": len(y["train"]),
        "training": {
            "C": c,
            "class_weight": weighting,
            "max_iter": 3000,
            "max_length": MAX_LENGTH,
            "tuned_on": "val macro-recall",
            "grid": grid,
        },
        "versions": _versions(),
    }
    head = _head_from(model, metadata)
    # Score the head as shipped (rounded weights), not the in-memory model.
    for name in ("val", "test"):
        predicted = head.probabilities(x[name]).argmax(axis=1)
        metadata[name] = score(y[name], [int(p) for p in predicted]).as_dict()
        log.info("%s %s", name, metadata[name])
    head.save(out)
    log.info("wrote %s (%d bytes)", out, out.stat().st_size)
    return head


def _versions() -> dict[str, str]:
    import sklearn
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "scikit-learn": sklearn.__version__,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="the tweeteval-sentiment dataset folder")
    parser.add_argument("--out", type=Path, required=True, help="where to write the head JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    train(args.data, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
