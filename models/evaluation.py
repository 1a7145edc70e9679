"""Reading the TweetEval sentiment split files and scoring predictions on them.

The official TweetEval metric is macro-averaged recall over the three classes
(SemEval-2017 4A), which rewards getting the rare negative class right; the
training script and the benchmark both report it through this one function so
their figures are comparable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Scores", "read_lines", "read_split", "score", "score_groups"]

CLASS_NAMES = ("negative", "neutral", "positive")


@dataclass(frozen=True)
class Scores:
    macro_recall: float
    accuracy: float
    recall: dict[str, float]
    count: int

    def as_dict(self) -> dict[str, object]:
        return {
            "macro_recall": round(self.macro_recall, 4),
            "accuracy": round(self.accuracy, 4),
            "recall": {k: round(v, 4) for k, v in self.recall.items()},
            "count": self.count,
        }


def read_lines(path: Path) -> list[str]:
    # Tweets are one per line with a trailing space; keep everything else as published.
    with path.open(encoding="utf-8", newline="\n") as handle:
        return [line.rstrip("\n").rstrip("\r").rstrip(" ") for line in handle]


def read_split(text_path: Path, label_path: Path) -> tuple[list[str], list[int]]:
    texts = read_lines(text_path)
    labels = [int(line) for line in read_lines(label_path) if line.strip()]
    if len(texts) != len(labels):
        raise ValueError(f"{text_path} has {len(texts)} lines but {label_path} has {len(labels)} labels")
    if any(label not in (0, 1, 2) for label in labels):
        raise ValueError(f"{label_path} holds labels other than 0, 1, 2")
    return texts, labels


def score(gold: Sequence[int], predicted: Sequence[int]) -> Scores:
    if len(gold) != len(predicted) or not gold:
        raise ValueError("gold and predicted must be non-empty and of equal length")
    recall: dict[str, float] = {}
    for label, name in enumerate(CLASS_NAMES):
        support = sum(1 for g in gold if g == label)
        hits = sum(1 for g, p in zip(gold, predicted, strict=True) if g == label and p == label)
        recall[name] = hits / support if support else 0.0
    correct = sum(1 for g, p in zip(gold, predicted, strict=True) if g == p)
    return Scores(
        macro_recall=sum(recall.values()) / len(recall),
        accuracy=correct / len(gold),
        recall=recall,
        count=len(gold),
    )


def score_groups(groups: Sequence[str], gold: Sequence[int], predicted: Sequence[int]) -> dict[str, Scores]:
    """Scores per group (a kind of post: sarcasm, news, ...), groups in first-seen order.

    A group often holds one class only (praise is positive), so its recall and
    macro-recall count only the classes it holds: an absent class would add a
    meaningless 0 to the mean.
    """
    if not len(groups) == len(gold) == len(predicted):
        raise ValueError("groups, gold and predicted must be of equal length")
    members: dict[str, list[int]] = {}
    for i, group in enumerate(groups):
        members.setdefault(group, []).append(i)
    out: dict[str, Scores] = {}
    for group, indices in members.items():
        full = score([gold[i] for i in indices], [predicted[i] for i in indices])
        held = {CLASS_NAMES[g] for g in (gold[i] for i in indices)}
        recall = {name: value for name, value in full.recall.items() if name in held}
        out[group] = Scores(
            macro_recall=sum(recall.values()) / len(recall),
            accuracy=full.accuracy,
            recall=recall,
            count=full.count,
        )
    return out
