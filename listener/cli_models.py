"""`listener train`, `listener evaluate` and `listener feedback`: the model commands.

Brand teams fine-tune on their own labelled examples, check any model on any
labelled file with the TweetEval metrics, and turn people's "wrong sentiment"
corrections into training data, without touching Python.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import click

from listener.cli_common import config_option
from listener.errors import ListenerError

__all__ = ["evaluate", "feedback", "train"]



def _fail(exc: ListenerError) -> None:
    click.echo(f"error: {exc}", err=True)
    raise SystemExit(2) from None


def _read(data: Path, split: str) -> tuple[list[str], list[int]]:
    """A JSONL/CSV file, or a TweetEval-style folder (`<split>_text.txt` + `<split>_labels.txt`)."""
    if data.is_dir():
        from models.evaluation import read_split

        try:
            return read_split(data / f"{split}_text.txt", data / f"{split}_labels.txt")
        except (OSError, ValueError) as exc:
            raise ListenerError(f"{data}: cannot read the {split} split: {exc}") from None
    from models.examples import read_examples

    return read_examples(data)


def _split(
    texts: list[str], labels: list[int], fraction: float, seed: int
) -> tuple[tuple[list[str], list[int]], tuple[list[str], list[int]]]:
    """Hold out `fraction` of each class for early stopping; tiny sets validate on themselves."""
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    held: list[int] = []
    for label in range(3):
        members = [i for i in order if labels[i] == label]
        held.extend(members[: int(len(members) * fraction)])
    if len(held) < 3:
        return (texts, labels), (texts, labels)
    keep = sorted(set(order) - set(held))
    return ([texts[i] for i in keep], [labels[i] for i in keep]), (
        [texts[i] for i in held],
        [labels[i] for i in held],
    )


@click.command()
@click.option("--data", type=click.Path(exists=True, path_type=Path), default=None,
              help="JSONL or CSV with text and label (negative/neutral/positive)")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="model directory to write")
@click.option("--from-feedback", is_flag=True,
              help="instead of --data/--out: train on the team's corrections, check, and promote "
              "into the data dir only when no worse (see README, 'Learning from the team')")
@click.option("--brand", default=None, help="with --from-feedback: this brand's corrections and model")
@click.option("--check", "checks", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              multiple=True, help="with --from-feedback: another labelled file the candidate must not "
              "do worse on (repeat)")
@click.option("--head-only", is_flag=True,
              help="with --from-feedback: refit only the head (seconds on a CPU)")
@click.option("--json", "as_json", is_flag=True, help="with --from-feedback: print the report as JSON")
@config_option
@click.option("--base", default="default", show_default=True,
              help="'default' continues from the shipped model; 'encoder' starts from the bare "
              "bundled MiniLM; or a local Hugging Face encoder directory")
@click.option("--epochs", type=float, default=3.0, show_default=True)
@click.option("--lr", type=float, default=5e-4, show_default=True)
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--max-length", type=int, default=64, show_default=True)
@click.option("--val-fraction", type=float, default=0.15, show_default=True,
              help="share of each class held out for early stopping")
@click.option("--patience", type=int, default=2, show_default=True,
              help="evaluations without improvement before stopping")
@click.option("--threads", type=int, default=None, help="torch threads (default: all cores)")
@click.option("--device", default="auto", show_default=True, help="auto (a GPU when present), cpu, cuda")
@click.option("--layers", type=int, default=None,
              help="keep only the first N encoder blocks: faster inference, usually with --teacher")
@click.option("--teacher", "teachers", type=click.Path(exists=True, file_okay=False, path_type=Path),
              multiple=True, help="a model directory whose predictions the new model also learns "
              "(distillation); repeat to average several")
@click.option("--distill", type=float, default=0.5, show_default=True,
              help="with --teacher: weight of the teacher's soft labels against the gold labels")
def train(data: Path | None, out: Path | None, from_feedback: bool, brand: str | None,
          checks: tuple[Path, ...], head_only: bool, as_json: bool, config_path: Path, base: str,
          epochs: float, lr: float, batch_size: int, max_length: int, val_fraction: float, patience: int,
          threads: int | None, device: str, layers: int | None, teachers: tuple[Path, ...],
          distill: float) -> None:
    """Fine-tune a sentiment model on labelled examples; usable as classifier.model right away."""
    import torch

    from models.finetune import FinetuneSettings, finetune
    from models.finetuned import DEFAULT_MODEL_DIR

    torch.set_num_threads(threads or os.cpu_count() or 1)
    if from_feedback:
        from listener.cli_loop import train_from_feedback
        from models.feedback_loop import LoopSettings

        loop = LoopSettings(epochs=epochs, lr=lr, batch_size=batch_size, device=device, head_only=head_only)
        train_from_feedback(config_path, brand, checks, loop, as_json)
        return
    if data is None or out is None:
        raise click.UsageError("give --data and --out, or --from-feedback")
    try:
        texts, labels = _read(data, "train")
        fit, val = _split(texts, labels, val_fraction, seed=0)
        per_epoch = max(1, -(-len(fit[0]) // batch_size))
        if layers is not None and base == "default":
            raise ListenerError("--layers needs a bare encoder: add --base encoder (or a Hugging Face dir)")
        settings = FinetuneSettings(epochs=epochs, lr=lr, batch_size=batch_size, max_length=max_length,
                                    eval_every=per_epoch, patience=patience, warmup=0.1, device=device,
                                    layers=layers, teachers=tuple(str(t) for t in teachers),
                                    distill=distill if teachers else 0.0)
        start_from = DEFAULT_MODEL_DIR if base == "default" else None
        encoder = None if base in ("default", "encoder") else base
        metadata: dict[str, Any] = {"model_id": out.name, "train_data": str(data), "train_size": len(fit[0]),
                                    "val_size": len(val[0])}
        with click.progressbar(length=max(1, int(per_epoch * epochs)), label="training",
                               file=sys.stderr) as bar:
            best = finetune(fit, val, out, base=encoder, start_from=start_from, settings=settings,
                            metadata=metadata, progress=lambda step, total, loss: bar.update(1))
    except ListenerError as exc:
        _fail(exc)
        return
    report = {"model": str(out), "val": best.as_dict()}
    (out / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    click.echo(f"wrote {out} (val macro-recall {best.macro_recall:.3f}, accuracy {best.accuracy:.3f})")


def _read_rows(data: Path, split: str) -> list[Any]:
    """Rows with their optional brand and category; a TweetEval folder has neither."""
    from models.examples import Example, read_labelled

    if data.is_dir():
        texts, labels = _read(data, split)
        return [Example(text, label) for text, label in zip(texts, labels, strict=True)]
    return list(read_labelled(data))


def _scores_json(result: Any) -> dict[str, Any]:
    return {"n": result.count, "macro_recall": round(result.macro_recall, 4),
            "accuracy": round(result.accuracy, 4),
            "per_class_recall": {k: round(v, 4) for k, v in result.recall.items()}}


@click.command()
@click.option("--model", default="default", show_default=True,
              help="'default', 'minilm-head', a `listener train` directory, or a Hugging Face dir/name")
@click.option("--data", type=click.Path(exists=True, path_type=Path), required=True,
              help="JSONL/CSV with text and label (optional brand and category), or a TweetEval-style folder")
@click.option("--split", default="test", show_default=True, help="which split of a TweetEval folder")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.option("--int8/--no-int8", default=None, help="override the model dir's int8 choice (CPU)")
@click.option("--brand-targeting/--no-brand-targeting", default=True, show_default=True,
              help="aim verdicts at each row's brand, as classifier.brand_targeting does")
@click.option("--threads", type=int, default=None)
@click.option("--batch-size", type=int, default=32, show_default=True)
def evaluate(model: str, data: Path, split: str, as_json: bool, int8: bool | None,
             brand_targeting: bool, threads: int | None, batch_size: int) -> None:
    """Macro-recall (TweetEval's metric), accuracy, per-class recall and speed of a model on FILE.

    Scored as the classify stage scores: language routing from the default
    classifier settings (uncovered languages come back unscored and count as
    wrong), then aimed at each row's `brand` when the row names one. Rows with
    a `category` also get recall per category.
    """
    from listener.config import ClassifierConfig
    from listener.stages import classify_toward_brands
    from models.evaluation import score, score_groups
    from models.loader import load_classifier

    try:
        rows = _read_rows(data, split)
        cfg = ClassifierConfig(model=model, int8=int8, threads=threads, batch_size=batch_size,
                               brand_targeting=brand_targeting)
        classifier = load_classifier(cfg)
        texts = [row.text for row in rows]
        started = time.perf_counter()
        verdicts = classify_toward_brands(classifier, texts, [row.brand for row in rows],
                                          brand_targeting=cfg.brand_targeting)
        seconds = time.perf_counter() - started
    except ListenerError as exc:
        _fail(exc)
        return
    names = ("negative", "neutral", "positive")
    labels = [row.label for row in rows]
    predicted = [names.index(v.label.value) if v.label.value in names else -1 for v in verdicts]
    result = score(labels, predicted)
    report: dict[str, Any] = {"model_id": classifier.model_id, "model_version": classifier.model_version,
                              "data": str(data), **_scores_json(result),
                              "unscored": predicted.count(-1),
                              "brand_rows": sum(1 for row in rows if row.brand is not None),
                              "texts_per_s": round(len(texts) / seconds, 1)}
    by_category: dict[str, Any] = {}
    if any(row.category is not None for row in rows):
        groups = [row.category or "(none)" for row in rows]
        by_category = {k: _scores_json(v) for k, v in score_groups(groups, labels, predicted).items()}
        report["per_category"] = by_category
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"{report['model_id']} {report['model_version']} on {data} ({result.count} texts, "
               f"{report['brand_rows']} aimed at their brand, {report['unscored']} unscored)")
    click.echo(f"  macro-recall {result.macro_recall:.4f}  accuracy {result.accuracy:.4f}")
    for name, value in result.recall.items():
        click.echo(f"  recall {name:<8} {value:.4f}")
    if by_category:
        click.echo("  by category (recall over the classes each holds):")
        for name, part in by_category.items():
            click.echo(f"    {name:<20} n {part['n']:>4}  macro-recall {part['macro_recall']:.4f}  "
                       f"accuracy {part['accuracy']:.4f}")
    click.echo(f"  {report['texts_per_s']} texts/s")


@click.group()
def feedback() -> None:
    """People's sentiment corrections, kept as training data."""


@feedback.command("export")
@config_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="file to write (default: standard output)")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--brand", default=None, help="only this brand's corrections")
def feedback_export(config_path: Path, out: Path | None, fmt: str, brand: str | None) -> None:
    """Write corrections as `listener train` data (text, label, plus provenance)."""
    from listener.config import load_config
    from listener.errors import ConfigError
    from models.feedback import FeedbackStore

    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        raise SystemExit(2) from None
    from listener.cli_common import state_of

    with state_of(cfg) as state:
        store = FeedbackStore(state.db("sentiment_feedback"))
        if out is None:
            count = store.export(sys.stdout, fmt=fmt, brand=brand)
        else:
            with out.open("w", encoding="utf-8", newline="") as handle:
                count = store.export(handle, fmt=fmt, brand=brand)
    click.echo(f"{count} correction(s) exported", err=True)
