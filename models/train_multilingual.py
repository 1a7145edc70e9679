"""Train the multilingual model's head: frozen multilingual-e5-small + logistic regression.

    python -m models.train_multilingual --data ../shared/datasets/umsab-xlm-t-sentiment \\
        --out models/heads/e5-small-umsab.json

Trains on the UMSAB (XLM-T) train splits of French, German, Spanish,
Portuguese and Italian (1,839 tweets each, balanced), chooses C and class
weighting by macro-recall on the same languages' validation splits (324 each),
and records per-language validation figures in the head file. The test splits
are not read. `--with-english` adds UMSAB's English train split to training
(a choice measured on the non-English validation splits, recorded too).
Embeddings are cached under the system temp directory, keyed by content.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.evaluation import read_split, score
from models.head import LABELS, LinearHead
from models.multilingual import ENCODER_NAME, LANGUAGES, POOLING, E5Encoder
from models.train_head import _fit, _tune, cached_embeddings

__all__ = ["FOLDERS", "main", "train"]

log = logging.getLogger("models.train_multilingual")

FOLDERS = {
    "de": "german", "es": "spanish", "fr": "french", "it": "italian", "pt": "portuguese", "en": "english"
}


def _embed_cached(encoder: E5Encoder, texts: Sequence[str], name: str) -> NDArray[np.float32]:
    return cached_embeddings(texts, f"e5-{name}", f"{ENCODER_NAME}|{POOLING}", encoder.embed)


def _split(encoder: E5Encoder, data: Path, code: str, split: str) -> tuple[NDArray[np.float32], list[int]]:
    folder = data / FOLDERS[code]
    texts, labels = read_split(folder / f"{split}_text.txt", folder / f"{split}_labels.txt")
    return _embed_cached(encoder, texts, f"{code}-{split}"), labels


def train(data: Path, out: Path, *, with_english: bool = False) -> LinearHead:
    encoder = E5Encoder()
    train_codes = [*LANGUAGES, "en"] if with_english else list(LANGUAGES)
    parts = [_split(encoder, data, code, "train") for code in train_codes]
    x_train = np.concatenate([x for x, _ in parts])
    y_train = [label for _, labels in parts for label in labels]
    val = {code: _split(encoder, data, code, "val") for code in LANGUAGES}
    x_val = np.concatenate([x for x, _ in val.values()])
    y_val = [label for _, labels in val.values() for label in labels]
    c, weighting, _, grid = _tune((x_train, y_train), (x_val, y_val))
    log.info("chosen: C=%g class_weight=%s", c, weighting)
    model = _fit(x_train, y_train, c, weighting)
    if [int(k) for k in model.classes_] != [0, 1, 2]:
        raise ValueError(f"expected classes 0, 1, 2 in training labels, got {model.classes_}")
    weights = np.round(np.asarray(model.coef_, dtype=np.float64), 6).astype(np.float32)
    bias = np.round(np.asarray(model.intercept_, dtype=np.float64), 6).astype(np.float32)
    import sklearn

    metadata: dict[str, Any] = {
        "task": "tweet sentiment in de, es, fr, it, pt (UMSAB / XLM-T)",
        "train_data": f"UMSAB train splits: {', '.join(FOLDERS[c] for c in train_codes)}",
        "licence": "UMSAB repository Apache-2.0; the original datasets' and Twitter's terms apply",
        "train_size": len(y_train),
        "training": {
            "C": c, "class_weight": weighting, "tuned_on": "val macro-recall, 5 languages", "grid": grid
        },
        "versions": {"python": platform.python_version(), "scikit-learn": sklearn.__version__},
    }
    digest = hashlib.sha256(weights.tobytes() + bias.tobytes()).hexdigest()[:10]
    head = LinearHead(weights=weights, bias=bias, labels=LABELS, encoder=ENCODER_NAME, pooling=POOLING,
                      version=f"1-{digest}", metadata=metadata)
    # Scored as shipped (rounded weights), per language and together.
    def scored(x: NDArray[np.float32], y: list[int]) -> Any:
        return score(y, [int(p) for p in head.probabilities(x).argmax(axis=1)])

    per_language = {code: round(scored(x, y).macro_recall, 4) for code, (x, y) in val.items()}
    metadata["val_macro_recall"] = per_language
    metadata["val"] = scored(x_val, y_val).as_dict()
    log.info("val %s, per language %s", metadata["val"], per_language)
    head.save(out)
    log.info("wrote %s (%d bytes)", out, out.stat().st_size)
    return head


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="the umsab-xlm-t-sentiment dataset folder")
    parser.add_argument("--out", type=Path, required=True, help="where to write the head JSON")
    parser.add_argument("--with-english", action="store_true", help="add UMSAB's English train split")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    train(args.data, args.out, with_english=args.with_english)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
