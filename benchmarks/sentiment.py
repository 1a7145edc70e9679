"""Sentiment quality and speed of the default classifier, next to VADER and the leaderboard.

    .venv/bin/python benchmarks/sentiment.py [--data DIR] [--limit N]

Quality is TweetEval sentiment's official metric (macro-averaged recall) on its
test split; VADER is measured in the same run so the two are comparable.
Throughput compares the classifier's batched path with the naive way most code
starts from: a transformers `pipeline("text-classification")` over the same
network (fp32, the adapter merged), called one text at a time. The default
model mean-pools, which the stock sequence-classification classes cannot
express, so the network is handed to `pipeline()` in a thin `PreTrainedModel`
wrapper; tokenising, batching of one, softmax and label mapping are the
pipeline's own. The brand-targeted
set is scored with and without brand targeting. "Toward the brand" scores the
project's held-out brand mentions (per kind of post), the Dong et al. 2014 target
test split and the SemEval-2016 topic test split as the classify stage would. The
last is not out-of-sample: its tweets are in TweetEval's training data (with
message-level labels), which the default model was trained on. Figures depend on the machine
and on what else runs on it; the script prints what it ran on.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import re
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from listener.config import ClassifierConfig
from listener.records import SentimentLabel
from models.batching import length_sorted_batches, token_lengths
from models.evaluation import Scores, read_split, score
from models.finetuned import FinetunedClassifier
from models.loader import load_classifier
from models.scoring import score_texts
from models.targeting import aim_at_brand
from models.tuned import load_model_dir

DEFAULT_DATA = Path(
    os.environ.get(
        "LISTENER_TWEETEVAL",
        Path(__file__).resolve().parents[2] / "shared" / "datasets" / "tweeteval-sentiment",
    )
)
REPO = Path(__file__).resolve().parents[1]
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


def naive_pipeline(net: torch.nn.Module, tokenizer: Any, max_length: int) -> Callable[[str], object]:
    """What a first version usually does: transformers' pipeline(), one text per call, fp32."""
    from transformers import PreTrainedModel, pipeline
    from transformers.modeling_outputs import SequenceClassifierOutput
    from transformers.utils import logging as hf_logging

    encoder_config: Any = net.encoder.config  # type: ignore[union-attr]

    class Wrapped(PreTrainedModel):  # type: ignore[no-untyped-call]
        config_class = type(encoder_config)

        def __init__(self) -> None:
            config = type(encoder_config)(**encoder_config.to_dict())
            config.id2label = {0: "negative", 1: "neutral", 2: "positive"}
            config.label2id = {v: k for k, v in config.id2label.items()}
            super().__init__(config)
            self.net = net

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: object) -> object:
            return SequenceClassifierOutput(logits=self.net(input_ids, attention_mask))

    hf_logging.set_verbosity(logging.CRITICAL)  # it logs that a custom class is "not supported"; it runs
    model: Any = Wrapped()
    classify: Any = pipeline(
        "text-classification",
        model=model.eval(),
        tokenizer=tokenizer,
        device=-1,
        truncation=True,
        max_length=max_length,
    )
    return lambda text: classify(text)


def _rate(classify: Callable[[list[str]], object], texts: list[str], passes: int = 3) -> float:
    """Median mentions/s over `passes` runs over all `texts`: one pass is at the mercy of a busy neighbour."""
    rates = []
    for _ in range(passes):
        started = time.perf_counter()
        classify(texts)
        rates.append(len(texts) / (time.perf_counter() - started))
    return statistics.median(rates)


def _interleaved(
    runs: dict[str, Callable[[list[str]], object]], texts: list[str], passes: int = 3
) -> dict[str, float]:
    """Median mentions/s of each run, alternating runs pass by pass so a busy neighbour hits them alike."""
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(passes):
        for name, classify in runs.items():
            started = time.perf_counter()
            classify(texts)
            rates[name].append(len(texts) / (time.perf_counter() - started))
    return {name: statistics.median(values) for name, values in rates.items()}


def padding_share(lengths: list[int], batch_size: int, by: list[int]) -> float:
    """Share of the tokens the model reads that are padding, with batches sorted by `by`."""
    read = padding = 0
    for batch in length_sorted_batches(["x"] * len(lengths), batch_size, by):
        longest = max(lengths[i] for i in batch)
        read += longest * len(batch)
        padding += sum(longest - lengths[i] for i in batch)
    return padding / read


def throughput(clf: FinetunedClassifier, texts: list[str]) -> None:
    clf.classify(texts[:64])  # warm-up

    def by_characters(batch: list[str]) -> object:  # how batches were sorted before token counts
        return score_texts(
            batch,
            clf._score_batch,
            batch_size=clf.batch_size,
            model_id=clf.model_id,
            model_version=clf.model_version,
            prepare=clf._prepare,
        )

    rates = _interleaved({"tokens": clf.classify, "characters": by_characters}, texts)
    batched, by_chars = rates["tokens"], rates["characters"]
    tokens = token_lengths(clf.tokenizer, texts, clf.max_length)
    padded_tokens = padding_share(tokens, clf.batch_size, tokens)
    padded_chars = padding_share(tokens, clf.batch_size, [len(t) for t in texts])
    routed = load_classifier(ClassifierConfig())
    routed.classify(texts[:64])
    with_language = _rate(routed.classify, texts)
    tokenizer, net, _meta = load_model_dir(clf.model_dir)
    naive_n = min(len(texts), 300)
    one_at_a_time = naive_pipeline(net, tokenizer, clf.max_length)
    for text in texts[:10]:
        one_at_a_time(text)
    naive = _rate(lambda batch: [one_at_a_time(text) for text in batch], texts[:naive_n], passes=1)
    mean_chars = sum(map(len, texts)) / len(texts)
    precision = "int8" if clf.int8 else "fp32"
    print(f"\nThroughput on tweet-length text (mean {mean_chars:.0f} chars, device {clf.device}):")
    label = f"batched classify ({precision}, batch {clf.batch_size}, token-sorted, median of 3):"
    print(f"  {label:<52} {batched:8.1f} mentions/s  ({len(texts)}; padding {100 * padded_tokens:.0f} %)")
    label = "same, batches sorted by characters (interleaved):"
    print(f"  {label:<52} {by_chars:8.1f} mentions/s  ({len(texts)}; padding {100 * padded_chars:.0f} %)")
    label = "same, with per-mention language detection:"
    print(f"  {label:<52} {with_language:8.1f} mentions/s  ({len(texts)})")
    print(f"  {'naive: pipeline() one text per call, fp32:':<52} {naive:8.1f} mentions/s  ({naive_n})")
    print(
        f"  ratio batched / naive: {batched / naive:.1f}x "
        f"(with language detection: {with_language / naive:.1f}x); "
        f"token- / character-sorted: {batched / by_chars:.2f}x"
    )


def brand_targeted(clf: FinetunedClassifier, path: Path) -> None:
    import json

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    gold = [("negative", "neutral", "positive").index(row["label"]) for row in rows]
    verdicts = clf.classify([row["text"] for row in rows])
    aimed = [aim_at_brand(row["text"], row["brand"], v) for row, v in zip(rows, verdicts, strict=True)]
    print(f"\nBrand-targeted set ({path.name}, {len(rows)} hand-labelled mentions, toward the brand):")
    show("model alone (tone of the post)", score(gold, [LABEL_INDEX.get(v.label, 1) for v in verdicts]))
    show("with brand targeting", score(gold, [LABEL_INDEX.get(v.label, 1) for v in aimed]))


def _targeted_rows(path: Path, limit: int | None) -> list[tuple[str, str, int, str | None]]:
    """(text, target, label id, category) from a JSONL set whose target is `brand` or `target`."""
    import json

    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        label = ("negative", "neutral", "positive").index(row["label"])
        rows.append((row["text"], row.get("brand") or row["target"], label, row.get("category")))
    return rows[:limit] if limit else rows


def toward_the_brand(sets: list[tuple[str, Path, int | None]], threads: int | None) -> None:
    """Each set scored as the running classify stage scores it: the product classifier (with its
    language routing) aimed at each row's brand or target (`classify_toward_brands`)."""
    from collections import defaultdict

    from listener.stages import classify_toward_brands

    classifier = load_classifier(ClassifierConfig(threads=threads))
    print("\nToward the brand, as the classify stage scores (product classifier, brand targeting on):")
    for name, path, limit in sets:
        if not path.is_file():
            print(f"  {name:<44} skipped: {path} not found")
            continue
        rows = _targeted_rows(path, limit)
        started = time.perf_counter()
        verdicts = classify_toward_brands(classifier, [r[0] for r in rows], [r[1] for r in rows])
        seconds = time.perf_counter() - started
        predicted = [LABEL_INDEX.get(v.label, -1) for v in verdicts]  # unscored counts as wrong
        show(name, score([r[2] for r in rows], predicted), seconds)
        by_kind: dict[str, list[bool]] = defaultdict(list)
        for row, guess in zip(rows, predicted, strict=True):
            if row[3] is not None:
                by_kind[row[3]].append(guess == row[2])
        for kind, right in sorted(by_kind.items()):
            print(f"      {kind:<20} {100 * sum(right) / len(right):5.1f} % right of {len(right)}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N test tweets")
    parser.add_argument("--throughput-texts", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument(
        "--topic-limit", type=int, default=2000, help="rows of the SemEval-2016 topic test split scored"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    texts, gold = read_split(args.data / "test_text.txt", args.data / "test_labels.txt")
    if args.limit:
        texts, gold = texts[: args.limit], gold[: args.limit]
    clf = FinetunedClassifier(batch_size=args.batch_size, threads=args.threads)
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
    brand_targeted(clf, Path(__file__).resolve().parents[1] / "tests" / "data" / "brand_targeted.jsonl")
    shared = args.data.parent
    toward_the_brand(
        [
            (
                "held-out brand mentions (never tuned on)",
                REPO / "tests" / "data" / "brand_mentions_heldout.jsonl",
                None,
            ),
            ("Dong et al. 2014 target test", shared / "dong2014-twitter-target" / "test.jsonl", None),
            (
                f"SemEval-2016 topic test, first {args.topic_limit} (in train)",
                shared / "semeval2017-task4-topic" / "twitter-2016test.jsonl",
                args.topic_limit,
            ),
        ],
        args.threads,
    )
    throughput(clf, sample)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nPeak memory (maxrss): {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
