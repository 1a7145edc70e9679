"""Fine-tune a sentence encoder for 3-way sentiment with low-rank adapters.

    python -m models.finetune --data ../shared/datasets/tweeteval-sentiment \\
        --out models/sentiment/minilm-lora-tweeteval

A frozen encoder with a linear head tops out well below the published TweetEval
baselines; updating the encoder itself closes most of the gap. Adapters keep
what is saved small (see `models/lora.py`). The same loop serves `listener
train` for brand teams' own examples: it picks the checkpoint with the best
validation macro-recall and stops early once that stops improving.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from listener.errors import ClassifierError
from models.batching import resolve_device
from models.evaluation import Scores, read_lines, read_split, score
from models.lora import adapter_tensors, inject
from models.normalise import DEFAULT_STEPS, normaliser
from models.tuned import SentimentNet, load_base, load_model_dir, read_meta, save_model_dir, scaled_adapter

__all__ = ["FinetuneSettings", "finetune", "main", "predict"]

log = logging.getLogger("models.finetune")

Progress = Callable[[int, int, float], None]  # step, total steps, running loss


@dataclass(frozen=True)
class FinetuneSettings:
    epochs: float = 1.0
    lr: float = 8e-4
    batch_size: int = 32
    max_length: int = 64
    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.1
    warmup: float = 0.06
    weight_decay: float = 0.01
    eval_every: int = 200
    patience: int = 4
    seed: int = 0
    balanced: bool = True
    device: str = "auto"
    layers: int | None = None  # keep only the first N encoder blocks (faster, see tuned.keep_layers)
    teachers: tuple[str, ...] = ()  # model directories whose averaged predictions the student also learns
    distill: float = 0.0  # weight of the teacher's soft labels against the gold labels
    temperature: float = 2.0


def _batches(texts: Sequence[str], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar-length texts: little padding, still a random order."""
    order = list(range(len(texts)))
    rng.shuffle(order)
    chunk = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: len(texts[i]))
        batches.extend(part[j : j + batch_size] for j in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def _class_weights(labels: Sequence[int], balanced: bool) -> torch.Tensor:
    counts = [max(1, sum(1 for label in labels if label == c)) for c in range(3)]
    if not balanced:
        return torch.ones(3)
    return torch.tensor([len(labels) / (3 * n) for n in counts], dtype=torch.float32)


@torch.no_grad()
def logits_for(net: SentimentNet, tokenizer: Any, texts: Sequence[str], max_length: int) -> torch.Tensor:
    """(n, 3) logits for `texts` in input order, on the CPU, in eval mode, restoring the previous mode."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    out = torch.zeros(len(texts), 3)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), 64):
        idx = order[start : start + 64]
        enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                        max_length=max_length, return_tensors="pt").to(device)
        out[idx] = net(enc["input_ids"], enc["attention_mask"]).float().cpu()
    net.train(was_training)
    return out


def predict(net: SentimentNet, tokenizer: Any, texts: Sequence[str], max_length: int) -> list[int]:
    """Label ids for `texts` in input order."""
    return [int(label) for label in logits_for(net, tokenizer, texts, max_length).argmax(dim=1).tolist()]


def _teacher_logits(s: FinetuneSettings, texts: Sequence[str], device: torch.device) -> torch.Tensor | None:
    """The teachers' mean logits for every training text, computed once before training starts.

    Several teachers (say, the same recipe from different seeds) average out
    each one's quirks, which a smaller student would otherwise copy.
    """
    if not s.teachers or s.distill <= 0:
        return None
    total = torch.zeros(len(texts), 3)
    for path in s.teachers:
        tokenizer, teacher, _ = load_model_dir(Path(path))
        teacher.to(device)
        log.info("teacher %s: scoring %d training texts", path, len(texts))
        total += logits_for(teacher, tokenizer, texts, s.max_length)
        del teacher
    return total / len(s.teachers)


def _schedule(total: int, warmup: float) -> Callable[[int], float]:
    warm = max(1, int(total * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total - step) / max(1, total - warm))

    return factor


def finetune(
    train: tuple[Sequence[str], Sequence[int]],
    val: tuple[Sequence[str], Sequence[int]],
    out: Path,
    *,
    base: str | None = None,
    start_from: Path | None = None,
    settings: FinetuneSettings | None = None,
    progress: Progress | None = None,
    metadata: dict[str, Any] | None = None,
) -> Scores:
    """Train, keep the best checkpoint by validation macro-recall in `out`, return its val scores.

    `start_from` continues from a model directory (for example the shipped
    TweetEval model) instead of a bare encoder: its adapter is folded in, a new
    one is trained on top, and both are saved together against the same base.
    """
    s = settings or FinetuneSettings()
    torch.manual_seed(s.seed)
    rng = random.Random(s.seed)
    try:
        device = resolve_device(s.device)
    except ValueError as exc:
        raise ClassifierError(str(exc)) from None
    net, tokenizer, base_name, prior = _build(base, start_from, s)
    net.to(device)
    trainable = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=s.lr, weight_decay=s.weight_decay)
    # The model learns from text as the classifier will hand it over (models/normalise.py).
    prepare = normaliser(DEFAULT_STEPS)
    texts, labels = [prepare(t) for t in train[0]], list(train[1])
    val = ([prepare(t) for t in val[0]], val[1])
    total = max(1, int(math.ceil(len(texts) / s.batch_size) * s.epochs))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(total, s.warmup))
    loss_fn = nn.CrossEntropyLoss(weight=_class_weights(labels, s.balanced).to(device))
    soft = _teacher_logits(s, texts, device)
    metadata = {**(metadata or {}), "text_steps": list(DEFAULT_STEPS)}
    prior_layers = None if start_from is None else read_meta(start_from).get("layers")
    if prior_layers is not None:
        metadata["layers"] = prior_layers  # continuing keeps the shallower encoder
    state = _Best(out, net, tokenizer, base_name, s, metadata, prior)
    step, running = 0, 0.0
    net.train()
    while step < total:
        for batch in _batches(texts, s.batch_size, rng):
            enc = tokenizer([texts[i] for i in batch], padding=True, truncation=True,
                            max_length=s.max_length, return_tensors="pt").to(device)
            logits = net(enc["input_ids"], enc["attention_mask"])
            loss = loss_fn(logits, torch.tensor([labels[i] for i in batch], device=device))
            if soft is not None:
                t = s.temperature
                target = torch.softmax(soft[batch].to(device) / t, dim=-1)
                student = torch.log_softmax(logits / t, dim=-1)
                kl = nn.functional.kl_div(student, target, reduction="batchmean")
                loss = (1 - s.distill) * loss + s.distill * t * t * kl
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            running = loss.item() if step == 1 else 0.98 * running + 0.02 * loss.item()
            if progress is not None:
                progress(step, total, running)
            if (step % s.eval_every == 0 or step == total) and state.evaluate(val, step) >= s.patience:
                log.info("no val improvement in %d evaluations: stopping at step %d", s.patience, step)
                return _finish(out, texts, state)
            if step >= total:
                break
    return _finish(out, texts, state)


def _finish(out: Path, texts: Sequence[str], state: _Best) -> Scores:
    """The best checkpoint's val scores, after recording its int8 input ranges (see `models/int8.py`)."""
    best = state.best_scores()
    record_ranges(out, texts)
    return best


def record_ranges(model_dir: Path, texts: Sequence[str]) -> dict[str, list[float]]:
    """Measure each linear layer's input range over the first training texts and store it in the model dir."""
    from models.int8 import CALIBRATION_TEXTS, RANGES_KEY, calibrate_ranges
    from models.tuned import META_FILE

    tokenizer, net, meta = load_model_dir(model_dir)
    ranges = calibrate_ranges(net, tokenizer, list(texts[:CALIBRATION_TEXTS]), int(meta["max_length"]))
    meta[RANGES_KEY] = ranges
    (model_dir / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return ranges


def _build(
    base: str | None, start_from: Path | None, s: FinetuneSettings
) -> tuple[SentimentNet, Any, str, dict[str, torch.Tensor]]:
    """The network to train with only adapters, LayerNorms and head trainable, plus any prior adapter."""
    prior: dict[str, torch.Tensor] = {}
    if start_from is not None:
        tokenizer, net, meta = load_model_dir(start_from)
        base_name = str(meta["base"])
        prior = scaled_adapter(start_from)
        encoder = net.encoder
    else:
        tokenizer, encoder, base_name = load_base(base, s.layers)
    inject(encoder, rank=s.rank, alpha=s.alpha, dropout=s.dropout)
    fresh = SentimentNet(encoder, dropout=s.dropout)
    if start_from is not None:
        fresh.head.load_state_dict(net.head.state_dict())
    for name, parameter in fresh.named_parameters():
        parameter.requires_grad_("lora_" in name or name.startswith("head.") or "LayerNorm" in name)
    return fresh, tokenizer, base_name, prior


class _Best:
    """Evaluates on val and rewrites the model directory whenever val macro-recall improves."""

    def __init__(self, out: Path, net: SentimentNet, tokenizer: Any, base: str,
                 settings: FinetuneSettings, metadata: dict[str, Any],
                 prior: dict[str, torch.Tensor]) -> None:
        self.out, self.net, self.tokenizer, self.base = out, net, tokenizer, base
        self.settings, self.metadata, self.prior = settings, metadata, prior
        self.best: Scores | None = None
        self.stale = 0
        self.started = time.perf_counter()

    def evaluate(self, val: tuple[Sequence[str], Sequence[int]], step: int) -> int:
        result = score(list(val[1]), predict(self.net, self.tokenizer, val[0], self.settings.max_length))
        log.info("step %d: val macro-recall %.4f accuracy %.4f (%.0f s)", step, result.macro_recall,
                 result.accuracy, time.perf_counter() - self.started)
        if self.best is None or result.macro_recall > self.best.macro_recall:
            self.best, self.stale = result, 0
            self._save(step, result)
        else:
            self.stale += 1
        return self.stale

    def _save(self, step: int, result: Scores) -> None:
        scale = self.settings.alpha / self.settings.rank
        tensors = {}
        for key, value in adapter_tensors(self.net.encoder).items():
            value = value.cpu()
            tensors[f"encoder.{key}"] = value * scale if key.endswith(".lora_b") else value
        for key, value in self.prior.items():  # earlier adapters stack along the rank dimension
            if key.endswith(".lora_a") or key.endswith(".lora_b"):
                dim = 0 if key.endswith(".lora_a") else 1
                tensors[key] = torch.cat([value, tensors[key]], dim=dim)
        tensors["head.weight"] = self.net.head.weight.detach().cpu().clone()
        tensors["head.bias"] = self.net.head.bias.detach().cpu().clone()
        meta = dict(self.metadata)
        if self.settings.layers is not None:
            meta["layers"] = self.settings.layers
        meta["training"] = {**asdict(self.settings), "step": step,
                            "seconds": round(time.perf_counter() - self.started)}
        meta["val"] = result.as_dict()
        save_model_dir(self.out, tensors, base=self.base, max_length=self.settings.max_length,
                       scale=1.0, metadata=meta)

    def best_scores(self) -> Scores:
        if self.best is None:
            raise ValueError("training ran no evaluation")
        return self.best


INT8_TOLERANCE = 0.005  # the most val macro-recall int8 may cost before fp32 stays the default


def _scores(clf: Any, texts: list[str], gold: list[int]) -> dict[str, Any]:
    names = ("negative", "neutral", "positive")
    started = time.perf_counter()
    verdicts = clf.classify(texts)
    seconds = time.perf_counter() - started
    predicted = [names.index(v.label.value) if v.label.value in names else 1 for v in verdicts]
    return {**score(gold, predicted).as_dict(), "seconds": round(seconds, 1)}


def record_figures(model_dir: Path, data: Path, model_id: str, *, with_test: bool = True) -> dict[str, Any]:
    """Choose int8 or fp32 on val, then (optionally) score the test split once, as shipped."""
    from models.finetuned import FinetunedClassifier
    from models.tuned import META_FILE

    train_texts = data / "reconstructed-train" / "train_text.txt"
    if train_texts.is_file():  # the int8 ranges come from training texts, never from val or test
        record_ranges(model_dir, read_lines(train_texts))
    val = read_split(data / "val_text.txt", data / "val_labels.txt")
    figures = {
        "val_fp32": _scores(FinetunedClassifier(model_dir, int8=False, batch_size=64), *val),
        "val_int8": _scores(FinetunedClassifier(model_dir, int8=True, batch_size=64), *val),
    }
    log.info("val %s", figures)
    int8 = figures["val_fp32"]["macro_recall"] - figures["val_int8"]["macro_recall"] <= INT8_TOLERANCE
    if with_test:
        test = read_split(data / "test_text.txt", data / "test_labels.txt")
        figures["test"] = _scores(FinetunedClassifier(model_dir, int8=int8, batch_size=64), *test)
        figures["test"]["precision"] = "int8" if int8 else "fp32"
        log.info("test %s", figures["test"])
    meta: dict[str, Any] = json.loads((model_dir / META_FILE).read_text(encoding="utf-8"))
    meta.update(figures, model_id=model_id, int8_default=int8)
    (model_dir / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return meta


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="the tweeteval-sentiment dataset folder")
    parser.add_argument("--out", type=Path, required=True, help="model directory to write")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=8e-4)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N training tweets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--base", default=None,
                        help="base encoder: a Hugging Face directory or name (default: the bundled MiniLM)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--layers", type=int, default=None, help="keep only the first N encoder blocks")
    parser.add_argument("--teacher", action="append", default=[],
                        help="a model directory to distil from (repeat to average several)")
    parser.add_argument("--distill", type=float, default=0.5, help="weight of the teacher's soft labels")
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--record-only", action="store_true",
                        help="skip training: choose int8 on val and record val/test figures in --out")
    parser.add_argument("--model-id", default="minilm-lora-tweeteval")
    parser.add_argument("--skip-test", action="store_true",
                        help="with --record-only: leave the test split to benchmarks/sentiment.py")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    if args.record_only:
        record_figures(args.out, args.data, args.model_id, with_test=not args.skip_test)
        return 0
    train_dir = args.data / "reconstructed-train"
    train = read_split(train_dir / "train_text.txt", train_dir / "train_labels.txt")
    if args.limit:
        train = (train[0][: args.limit], train[1][: args.limit])
    val = read_split(args.data / "val_text.txt", args.data / "val_labels.txt")
    settings = FinetuneSettings(epochs=args.epochs, lr=args.lr, rank=args.rank, alpha=2.0 * args.rank,
                                eval_every=args.eval_every, seed=args.seed, dropout=args.dropout,
                                batch_size=args.batch_size, max_length=args.max_length,
                                patience=args.patience, device=args.device, layers=args.layers,
                                teachers=tuple(args.teacher), distill=args.distill if args.teacher else 0.0,
                                temperature=args.temperature)
    metadata = {"task": "TweetEval sentiment (SemEval-2017 4A, English)",
                "train_data": "reconstructed-train (SemEval 2013-2016 4A tweets, val/test tweets removed)",
                "train_size": len(train[0])}
    best = finetune(train, val, args.out, base=args.base, settings=settings, metadata=metadata,
                    progress=lambda step, total, loss: log.info("step %d/%d loss %.4f", step, total, loss)
                    if step % 25 == 0 else None)
    log.info("best val %s", best.as_dict())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
