"""Non-English sentiment: the multilingual model on UMSAB tweets, per language, and its speed.

    .venv/bin/python benchmarks/multilingual.py [--data DIR] [--threads N] [--no-test]

For French, German, Spanish, Portuguese and Italian, UMSAB's validation split
(324 tweets each, the split the head's settings were chosen on) is scored by
the multilingual model alone and as the product scores it: lingua detects each
tweet's language first, so a tweet it reads as English goes to the English
model, and one it cannot place with confidence goes there too. The test split
(870 each) is scored once, as the product scores it, and was not used to
choose anything. Throughput is the multilingual model's own, on the val tweets.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

from listener.config import ClassifierConfig
from listener.records import SentimentLabel
from models.evaluation import read_split, score
from models.loader import load_classifier
from models.multilingual import LANGUAGES, MultilingualClassifier
from models.train_multilingual import FOLDERS

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "umsab-xlm-t-sentiment"
INDEX = {SentimentLabel.NEGATIVE: 0, SentimentLabel.NEUTRAL: 1, SentimentLabel.POSITIVE: 2}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-test", action="store_true", help="skip the test split")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    alone = MultilingualClassifier(threads=args.threads)
    product = load_classifier(ClassifierConfig(threads=args.threads))
    splits = ("val",) if args.no_test else ("val", "test")
    for split in splits:
        print(f"\nUMSAB {split} (macro-recall %; unscored or misrouted tweets count as wrong):")
        print(f"  {'language':<10} {'n':>5} {'model alone':>12} {'as the product':>15} {'to the model':>13}")
        for code in LANGUAGES:
            folder = args.data / FOLDERS[code]
            texts, gold = read_split(folder / f"{split}_text.txt", folder / f"{split}_labels.txt")
            alone_figure = "-"
            if split == "val":
                started = time.perf_counter()
                verdicts = alone.classify(texts)
                rate = len(texts) / (time.perf_counter() - started)
                recall = score(gold, [INDEX.get(v.label, 1) for v in verdicts]).macro_recall
                alone_figure = f"{100 * recall:.1f} ({rate:.0f}/s)"
            routed = product.classify(texts)
            predicted = [INDEX.get(v.label, -1) for v in routed]
            to_model = sum(v.model_id == alone.model_id for v in routed) / len(routed)
            figure = 100 * score(gold, predicted).macro_recall
            print(f"  {code:<10} {len(texts):>5} {alone_figure:>12} {figure:>15.1f} {100 * to_model:>12.1f}%")
    print(f"\nload average after: {os.getloadavg()[0]:.1f}; "
          f"maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
