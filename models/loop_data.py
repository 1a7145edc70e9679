"""Write the feedback loop's shipped replay and check files from the project's own sentences.

    python -m models.loop_data        # rewrites models/loop/replay.jsonl and models/loop/check.jsonl

`listener train --from-feedback` mixes a replay of plain, already-known
sentiment into a brand's corrections so the model does not forget the base task
while it learns the team's slang, and scores every candidate on a check set
before it may replace the running model. Both must ship with the package (the
product never reads `../shared` at run time), and the TweetEval tweets may not
be redistributed (Twitter's terms), so both are written here from templates the
project owns. The check set uses other templates and other invented brands than
the replay, so a model that only memorised the replay gains nothing on it.
"""

from __future__ import annotations

import json
import random
from itertools import product
from pathlib import Path

__all__ = ["CHECK_FILE", "REPLAY_FILE", "build", "main"]

LOOP_DIR = Path(__file__).resolve().parent / "loop"
REPLAY_FILE = LOOP_DIR / "replay.jsonl"
CHECK_FILE = LOOP_DIR / "check.jsonl"

_REPLAY = {
    "negative": [
        "my {p} from {b} stopped working again",
        "{b} support never answered, two weeks now",
        "charged twice by {b} and still no refund",
        "the {p} from {b} broke after one day, really disappointed",
        "worst experience ever with {b}, never again",
        "{b} cancelled my order without telling me",
        "so annoyed, the {b} {p} keeps crashing",
        "{b} lost my parcel and nobody cares",
    ],
    "neutral": [
        "{b} opens a new store in {c} next month",
        "does {b} ship the {p} to {c}?",
        "{b} will publish its quarterly results on Thursday",
        "the {b} {p} comes in three colours",
        "{b} moved its office to {c}",
        "anyone know what time {b} closes today?",
        "{b} is hiring engineers in {c}",
        "reading the {b} {p} manual before setting it up",
    ],
    "positive": [
        "love the new {p} from {b}",
        "{b} support sorted it in five minutes, thank you",
        "really happy with my {b} {p}",
        "{b} delivered a day early, great service",
        "the {b} {p} is excellent, best purchase this year",
        "thanks {b}, you made my day",
        "impressed by how easy the {b} {p} is to use",
        "{b} refunded me straight away, brilliant",
    ],
}
_CHECK = {
    "negative": [
        "{b} kept me on hold for an hour and then hung up",
        "the {p} I bought from {b} arrived broken",
        "{b} raised prices again, terrible value",
        "can't log in to {b} for the third day, useless",
    ],
    "neutral": [
        "{b} announced a press event for next week",
        "how long does {b} take to deliver to {c}?",
        "{b} has a stand at the {c} trade fair",
        "the {b} {p} is listed at the same price as last year",
    ],
    "positive": [
        "{b} fixed my problem on the first call, wonderful",
        "the {p} from {b} works perfectly, so pleased",
        "big thanks to the {b} team, amazing help",
        "{b} is my favourite shop, always friendly",
    ],
}
_REPLAY_BRANDS = ("Norvale", "Pemberly", "Tallow & Co", "Ruskin Air", "Vantor")
_CHECK_BRANDS = ("Hollis Bank", "Orrin", "Marlow Rail")
_PRODUCTS = ("phone", "router", "app", "blender", "laptop", "card")
_CITIES = ("Leeds", "Lyon", "Porto", "Austin")


def _rows(templates: dict[str, list[str]], brands: tuple[str, ...], per_template: int,
          rng: random.Random) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for label, patterns in templates.items():
        for pattern in patterns:
            fills = list(product(brands, _PRODUCTS, _CITIES))
            for b, p, c in rng.sample(fills, per_template):
                rows.append({"text": pattern.format(b=b, p=p, c=c), "label": label, "brand": b})
    rng.shuffle(rows)
    return rows


def build(seed: int = 0) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(replay rows, check rows), deterministic for a seed."""
    rng = random.Random(seed)
    return _rows(_REPLAY, _REPLAY_BRANDS, 8, rng), _rows(_CHECK, _CHECK_BRANDS, 5, rng)


def main() -> int:
    replay, check = build()
    LOOP_DIR.mkdir(exist_ok=True)
    for path, rows in ((REPLAY_FILE, replay), (CHECK_FILE, check)):
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        print(f"wrote {path} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
