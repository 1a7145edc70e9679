"""Sentiment quality and speed of the default classifier, next to VADER and the leaderboard.

    .venv/bin/python benchmarks/sentiment.py [--data DIR] [--limit N]

Quality is TweetEval sentiment's official metric (macro-averaged recall) on its
test split; VADER is measured in the same run so the two are comparable.
Throughput compares the classifier's batched path with the naive loop most
code starts from (one text at a time through the same model). Figures depend on
the machine and on what else runs on it; the script prints what it ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import time
from pathlib import Path

import numpy as np
import torch

from listener.config import ClassifierConfig
from listener.records import SentimentLabel
from models.evaluation import Scores, read_split, score
from models.minilm import MiniLMClassifier

DEFAULT_DATA = Path(
    os.environ.get(
        "LISTENER_TWEETEVAL",
        Path(__file__).resolve().parents[2] / "shared" / "datasets" / "tweeteval-sentiment",
    )
)
LABEL_INDEX = {SentimentLabel.NEGATIVE: 0, SentimentLabel.NEUTRAL: 1, SentimentLabel.POSITIVE: 2}


def show(name: str, scores: Scores, seconds: float | None = None) -> None:
    recall = "  ".join(f"{k[:3]} {100 * v:5.1f}" for k, v in scores.recall.items())
    timing = f"  ({scores.count} tweets in {seconds:.1f} s)" if seconds is not None else ""
    print(
        f"  {name:<44} macro-recall {100 * scores.macro_recall:5.1f}  "
        f"accuracy {100 * scores.accuracy:5.1f}  recall: {recall}{timing}"
    )


def vader_predictions(texts: list[str]) -> list[int]:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    out = []
    for text in texts:
        compound = analyzer.polarity_scores(text)["compound"]
        out.append(2 if compound >= 0.05 else 0 if compound <= -0.05 else 1)
    return out


def leaderboard(readme: Path) -> list[tuple[str, str]]:
    """The published rows, read from the dataset README's leaderboard table."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Leaderboard"))
    rows: list[tuple[str, str]] = []
    for line in lines[start + 1 :]:
        if rows and not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and re.fullmatch(r"\**[\d.]+\**", cells[1]):
            rows.append((cells[0], cells[1].strip("*")))
    return rows


def naive_loop(clf: MiniLMClassifier, texts: list[str]) -> None:
    """What a first version usually does: tokenise and run one text at a time."""
    enc = clf.encoder
    for text in texts:
        inputs = enc.tokenizer(text, truncation=True, max_length=enc.max_length, return_tensors="pt")
        with torch.no_grad():
            hidden = enc.model(**inputs).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1).float()
        pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1)
        clf.head.probabilities(pooled.numpy())


def throughput(clf: MiniLMClassifier, texts: list[str]) -> None:
    clf.classify(texts[:64])  # warm-up
    started = time.perf_counter()
    clf.classify(texts)
    batched = len(texts) / (time.perf_counter() - started)
    naive_n = min(len(texts), 300)
    started = time.perf_counter()
    naive_loop(clf, texts[:naive_n])
    naive = naive_n / (time.perf_counter() - started)
    mean_chars = sum(map(len, texts)) / len(texts)
    print(f"\nThroughput on tweet-length text (mean {mean_chars:.0f} chars, device {clf.device}):")
    label = f"batched classify (batch {clf.batch_size}, length-sorted):"
    print(f"  {label:<44} {batched:8.1f} mentions/s  ({len(texts)})")
    print(f"  {'naive one-at-a-time loop, same model:':<44} {naive:8.1f} mentions/s  ({naive_n})")
    print(f"  ratio: {batched / naive:.1f}x")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N test tweets")
    parser.add_argument("--throughput-texts", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    texts, gold = read_split(args.data / "test_text.txt", args.data / "test_labels.txt")
    if args.limit:
        texts, gold = texts[: args.limit], gold[: args.limit]
    clf = MiniLMClassifier.from_config(ClassifierConfig(batch_size=args.batch_size))
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f} "
        f"(shared machine: timings vary)"
    )
    print(f"\nTweetEval sentiment, test split ({len(texts)} tweets):")
    started = time.perf_counter()
    verdicts = clf.classify(texts)
    seconds = time.perf_counter() - started
    predicted = [LABEL_INDEX.get(v.label, 1) for v in verdicts]
    show(f"default ({clf.model_id} {clf.model_version})", score(gold, predicted), seconds)
    started = time.perf_counter()
    show("VADER (compound ±0.05)", score(gold, vader_predictions(texts)), time.perf_counter() - started)
    print("\nPublished leaderboard (full test split, macro-recall), from the dataset README:")
    for name, value in leaderboard(args.data / "README.md"):
        print(f"  {name:<70} {value}")

    rng = np.random.default_rng(0)
    sample = [texts[i] for i in rng.permutation(len(texts))[: args.throughput_texts]]
    throughput(clf, sample)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nPeak memory (maxrss): {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
