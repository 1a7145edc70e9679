"""Learning from the team: corrections -> candidate model -> gate -> promotion or refusal.

A "wrong sentiment" correction is a labelled example the team already paid
for. `listener train --from-feedback` fine-tunes the running model (the brand's
promoted one, else the promoted default, else the configured model) on the
corrections plus a replay of plain sentiment shipped with the package
(`models/loop/replay.jsonl`, see `models/loop_data.py`), so it learns the
team's slang without forgetting the rest. Some corrections are held out by a
hash of their mention id, never trained on, and both models are scored on them
and on the check sets (the shipped `models/loop/check.jsonl` and any `--check`
file), with the corrected brands' names swapped into the replay and the check
rows (see `as_brands`).

The gate: the candidate is promoted only when
  - its recall on the held-out corrections, averaged over the classes they
    hold, is at least `min_gain` (10 points) higher than the current model's
    (it learnt something that holds beyond the rows it saw), and
  - on every check set it is no worse: its macro-recall at most `tolerance`
    (2 points) below the current model's.
Corrections that contradict each other teach nothing that holds on the
held-out ones; corrections that contradict plain sentiment cost macro-recall on
the check sets. Either way the running model stays, and the report says which
figure stopped it.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models.evaluation import score
from models.examples import LABELS, Example, read_labelled
from models.feedback import Correction
from models.finetune import FinetuneSettings, finetune
from models.head_refit import refit_head
from models.loop_data import REPLAY_FILE
from models.promotion import ModelShelf
from models.tuned import read_meta

__all__ = ["LoopSettings", "Predict", "as_brands", "class_recall", "gate", "render_report", "run_loop"]

# Label ids for `rows` scored by the model in a folder, as the classify stage scores them; -1 = unscored.
Predict = Callable[[Path, Sequence[Example]], list[int]]


@dataclass(frozen=True)
class LoopSettings:
    held_out: float = 0.25  # share of each class's corrections kept out of training, for the gate
    replay_per_correction: float = 4.0
    max_replay: int = 192
    min_corrections: int = 6
    tolerance: float = 0.02  # most macro-recall a check set may lose
    min_gain: float = 0.10  # least the held-out corrections' recall must rise: one lucky row is not learning
    epochs: float = 3.0
    lr: float = 5e-4
    batch_size: int = 16
    seed: int = 0
    device: str = "auto"
    head_only: bool = False  # refit only the head (models/head_refit.py): seconds instead of minutes


def class_recall(gold: Sequence[int], predicted: Sequence[int]) -> float:
    """Recall averaged over the classes present in `gold` (corrections rarely hold all three)."""
    present = sorted(set(gold))
    per = [sum(1 for g, p in zip(gold, predicted, strict=True) if g == c == p) / gold.count(c)
           for c in present]
    return sum(per) / len(per)


def _key(mention_id: str) -> str:
    return hashlib.sha256(mention_id.encode()).hexdigest()


def split(corrections: Sequence[Correction], fraction: float) -> tuple[list[Example], list[Example]]:
    """(train, held out): per class, the first `fraction` by hash of mention id is held out."""
    train: list[Example] = []
    held: list[Example] = []
    for label in LABELS:
        members = sorted((c for c in corrections if c.label == label), key=lambda c: _key(c.mention_id))
        cut = math.ceil(len(members) * fraction) if len(members) >= 2 else 0
        for i, c in enumerate(members):
            (held if i < cut else train).append(Example(c.text, LABELS.index(label), c.brand))
    return train, held


def gate(current: dict[str, float], candidate: dict[str, float], tolerance: float,
         min_gain: float) -> tuple[bool, list[str]]:
    """Whether the candidate learnt the corrections and is no worse elsewhere; one reason per figure."""
    reasons: list[str] = []
    ok = True
    for name, now in current.items():
        new = candidate[name]
        if name == "held_out_corrections":
            passed = new >= now + min_gain
            rule = (f"must be at least {min_gain * 100:.1f} points higher: a model that did not learn "
                    "the corrections is not worth a swap")
        else:
            passed = new >= now - tolerance
            rule = f"at most {tolerance * 100:.1f} points lower"
        ok = ok and passed
        verdict = "passes" if passed else "fails"
        reasons.append(f"{name}: candidate {new * 100:.1f} against current {now * 100:.1f}, "
                       f"{verdict} ({rule})")
    return ok, reasons


def as_brands(rows: Sequence[Example], brands: Sequence[str]) -> list[Example]:
    """`rows` with each row's brand swapped, in turn, for one of `brands` (in its text too).

    Corrections name their brand; without the swap a model can learn "Quillo
    means praise" from a week of slang corrections and still pass a check set
    about other brands. Replayed and checked with the corrected brands' names,
    plain complaints about Quillo must stay complaints.
    """
    if not brands:
        return list(rows)
    swapped = []
    for i, row in enumerate(rows):
        brand = brands[i % len(brands)]
        text = row.text.replace(row.brand, brand) if row.brand else row.text
        swapped.append(Example(text, row.label, brand if row.brand else None, row.category))
    return swapped


def _replay(count: int, seed: int, brands: Sequence[str]) -> list[Example]:
    rows = read_labelled(REPLAY_FILE)
    return as_brands(random.Random(seed).sample(rows, min(count, len(rows))), brands)


def run_loop(corrections: Sequence[Correction], *, shelf: ModelShelf, name: str, base: Path,
             predict: Predict, checks: dict[str, list[Example]], settings: LoopSettings) -> dict[str, Any]:
    """Train, score, gate and promote or discard; returns the report (also written under the shelf)."""
    started = time.perf_counter()
    train, held = split(corrections, settings.held_out)
    report: dict[str, Any] = {
        "name": name, "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "base": {"path": str(base), "version": str(read_meta(base).get("version"))},
        "corrections": len(corrections), "trained_on_corrections": len(train), "held_out": len(held),
        "gate": {"held_out_corrections": "recall over the classes held, at least "
                                         f"{settings.min_gain * 100:.1f} points higher",
                 "check sets": f"macro-recall at most {settings.tolerance * 100:.1f} points lower"},
    }
    if len(corrections) < settings.min_corrections or not held or not train:
        report.update(promoted=False, reasons=[
            f"too few corrections to train and check: {len(corrections)} "
            f"(at least {settings.min_corrections}, with some of a class held out)"])
        return _write(shelf, name, report)
    brands = sorted({c.brand for c in corrections})
    replay = _replay(int(len(train) * settings.replay_per_correction), settings.seed, brands)
    checks = {name: as_brands(rows, brands) for name, rows in checks.items()}
    report["check_brands"] = brands
    report["replay"] = {"file": REPLAY_FILE.name, "rows": len(replay)}
    work = shelf.workspace(name)
    candidate = work / "model"
    _train(base, candidate, train, replay, name, settings)
    report["candidate"] = {"version": str(read_meta(candidate).get("version")),
                           "trained": "head only" if settings.head_only else "adapter, LayerNorms and head"}
    figures = _figures(base, candidate, held, checks, predict)
    report["figures"] = figures
    promoted, reasons = gate(figures["current"], figures["candidate"], settings.tolerance, settings.min_gain)
    report.update(promoted=promoted, reasons=reasons, seconds=round(time.perf_counter() - started, 1))
    if promoted:
        report["promoted_as"] = shelf.promote(name, candidate, {"candidate": report["candidate"]}).version
    shelf.discard(work)
    return _write(shelf, name, report)


def _train(base: Path, candidate: Path, train: list[Example], replay: list[Example], name: str,
           settings: LoopSettings) -> None:
    """Continue from `base`: a new adapter stacked on its own (or only the head) on corrections + replay."""
    rows = train + replay
    texts, labels = [r.text for r in rows], [r.label for r in rows]
    parent = read_meta(base)
    metadata = {"model_id": f"feedback-{name.replace('/', '-')}",
                "int8_default": bool(parent.get("int8_default")),
                "train_data": f"{len(train)} corrections + {len(replay)} replay rows",
                "parent": {"path": str(base), "version": parent.get("version")}}
    if settings.head_only:
        refit_head(base, candidate, texts, labels, metadata=metadata)
        return
    # One evaluation, at the last step: the held-out corrections never choose a checkpoint.
    steps = max(1, math.ceil(len(rows) / settings.batch_size) * math.ceil(settings.epochs))
    finetune((texts, labels), ([r.text for r in train], [r.label for r in train]), candidate, start_from=base,
             settings=FinetuneSettings(epochs=settings.epochs, lr=settings.lr, batch_size=settings.batch_size,
                                       eval_every=steps, patience=1, warmup=0.1, seed=settings.seed,
                                       device=settings.device),
             metadata=metadata)


def _figures(base: Path, candidate: Path, held: list[Example], checks: dict[str, list[Example]],
             predict: Predict) -> dict[str, dict[str, float]]:
    figures: dict[str, dict[str, float]] = {"current": {}, "candidate": {}}
    for who, path in (("current", base), ("candidate", candidate)):
        gold = [r.label for r in held]
        figures[who]["held_out_corrections"] = class_recall(gold, predict(path, held))
        for check, rows in checks.items():
            figures[who][check] = score([r.label for r in rows], predict(path, rows)).macro_recall
    return figures


def _write(shelf: ModelShelf, name: str, report: dict[str, Any]) -> dict[str, Any]:
    folder = shelf.root / name / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    stem = report["at"].replace(":", "").replace("+0000", "Z")
    report["report_files"] = [str(folder / f"{stem}.json"), str(folder / f"{stem}.txt")]
    (folder / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (folder / f"{stem}.txt").write_text(render_report(report), encoding="utf-8")
    return report


def render_report(report: dict[str, Any]) -> str:
    """The report as a person reads it: figures side by side, then the decision and why."""
    lines = [f"feedback training for {report['name']} at {report['at']}",
             f"  base {report['base']['path']} ({report['base']['version']})",
             f"  corrections {report['corrections']}: {report['trained_on_corrections']} trained on, "
             f"{report['held_out']} held out; replay {report.get('replay', {}).get('rows', 0)} rows"]
    if "figures" in report:
        lines.append(f"  {'':<24}{'current':>9}{'candidate':>11}")
        for key, now in report["figures"]["current"].items():
            lines.append(f"  {key:<24}{now * 100:>9.1f}{report['figures']['candidate'][key] * 100:>11.1f}")
    decision = f"PROMOTED as {report['promoted_as']}" if report["promoted"] else "NOT PROMOTED"
    lines.append(f"  {decision}")
    lines.extend(f"    {reason}" for reason in report["reasons"])
    return "\n".join(lines) + "\n"
