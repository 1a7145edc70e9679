"""What brand targeting does to verdicts on target-labelled tweets it was not written against.

    .venv/bin/python benchmarks/brand_rules.py [--threads N]

Each row's label is the sentiment toward its target (a brand, a person, a
product), so the rules can be judged where they fire: the SemEval-2016 topic
dev and devtest splits (4,000 tweets; not the split that holds the TweetEval
test tweets) and the Dong et al. 2014 test split (692). The same verdicts are
scored as the model gave them and as `models.targeting` aims them, with the
number of labels the rules changed. `tests/data/brand_targeted.jsonl` (the set
the rules were first written against) is printed too.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from listener.config import ClassifierConfig
from listener.records import SentimentLabel
from models.evaluation import score
from models.loader import load_classifier
from models.targeting import aim_at_brand

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets"
INDEX = {"negative": 0, "neutral": 1, "positive": 2}


def _rows(path: Path, brand_key: str) -> list[tuple[str, str, int]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(row["text"], row[brand_key], INDEX[row["label"]]) for row in rows]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    topic = DATA / "semeval2017-task4-topic"
    sets = {
        "SemEval-2016 topic dev + devtest": _rows(topic / "twitter-2016dev.jsonl", "target")
        + _rows(topic / "twitter-2016devtest.jsonl", "target"),
        "Dong 2014 test": _rows(DATA / "dong2014-twitter-target" / "test.jsonl", "target"),
        "brand_targeted.jsonl (rules written against it)": _rows(
            ROOT / "tests" / "data" / "brand_targeted.jsonl", "brand"
        ),
    }
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    classifier = load_classifier(ClassifierConfig(threads=args.threads))
    print(f"{'set':<50} {'scored':>7} {'model alone':>12} {'with rules':>11} {'changed':>8}")
    for name, rows in sets.items():
        verdicts = classifier.classify([text for text, _, _ in rows])
        kept = [i for i, v in enumerate(verdicts) if v.label is not SentimentLabel.UNSCORED]
        gold = [rows[i][2] for i in kept]
        plain = [verdicts[i] for i in kept]
        aimed = [aim_at_brand(rows[i][0], rows[i][1], verdicts[i]) for i in kept]
        before = score(gold, [INDEX[v.label.value] for v in plain]).macro_recall
        after = score(gold, [INDEX[v.label.value] for v in aimed]).macro_recall
        changed = sum(a.label != p.label for a, p in zip(aimed, plain, strict=True))
        print(f"{name:<50} {len(kept):>7} {100 * before:>12.1f} {100 * after:>11.1f} {changed:>8}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
