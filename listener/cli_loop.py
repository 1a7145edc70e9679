"""`listener train --from-feedback`: the team's corrections -> a checked, maybe promoted, model.

The loop itself is `models.feedback_loop`; this module reads the config, the
corrections and the check sets, and scores models the way the classify stage
does (language routing, then the verdict aimed at the row's brand), so the
gate compares the figures the running stage would earn.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from listener.cli_common import load_or_exit, state_of
from listener.config import ClassifierConfig, Config
from listener.errors import ListenerError

__all__ = ["current_model_dir", "stage_predict", "train_from_feedback"]


def current_model_dir(config: Config, name: str) -> Path:
    """The model the stage runs for `name`: its promoted version, else the promoted default,
    else the configured one."""
    from models.finetuned import DEFAULT_MODEL_DIR
    from models.promotion import DEFAULT_NAME, ModelShelf
    from models.tuned import is_model_dir

    shelf = ModelShelf(config.data_dir / "models")
    for candidate in (name, DEFAULT_NAME):
        promoted = shelf.current(candidate)
        if promoted is not None:
            return promoted.path
    configured = Path(config.classifier.model).expanduser()
    if config.classifier.model != "default" and not is_model_dir(configured):
        raise ListenerError(f"classifier.model {config.classifier.model!r} is not a model directory "
                            "`listener train` can continue from")
    return DEFAULT_MODEL_DIR if config.classifier.model == "default" else configured


def stage_predict(cfg: ClassifierConfig) -> Any:
    """A `models.feedback_loop.Predict` that scores as the classify stage does."""
    from listener.stages import classify_toward_brands
    from models.examples import LABELS, Example
    from models.loader import load_classifier

    loaded: dict[Path, Any] = {}  # each model is loaded once for all the sets it is scored on

    def predict(path: Path, rows: Sequence[Example]) -> list[int]:
        if path not in loaded:
            loaded[path] = load_classifier(cfg.model_copy(update={"model": str(path)}))
        classifier = loaded[path]
        verdicts = classify_toward_brands(classifier, [r.text for r in rows], [r.brand for r in rows],
                                          brand_targeting=cfg.brand_targeting)
        return [LABELS.index(v.label.value) if v.label.value in LABELS else -1 for v in verdicts]

    return predict


def train_from_feedback(config_path: Path, brand: str | None, checks: tuple[Path, ...],
                        settings: Any, as_json: bool) -> None:
    """Run the loop on one brand's corrections (or everyone's), print the report; exit 3 if not promoted."""
    from models.examples import read_labelled
    from models.feedback import FeedbackStore
    from models.feedback_loop import render_report, run_loop
    from models.loop_data import CHECK_FILE
    from models.promotion import ModelShelf, shelf_name

    config = load_or_exit(config_path)
    with state_of(config) as state:
        store = FeedbackStore(state.db("sentiment_feedback"))
        corrections = list(store.corrections(brand))
    name = shelf_name(brand)
    try:
        base = current_model_dir(config, name)
        check_sets = {"check_set": read_labelled(CHECK_FILE)}
        check_sets.update({path.stem: read_labelled(path) for path in checks})
        report = run_loop(corrections, shelf=ModelShelf(config.data_dir / "models"), name=name, base=base,
                          predict=stage_predict(config.classifier), checks=check_sets, settings=settings)
    except ListenerError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    click.echo(json.dumps(report) if as_json else render_report(report).rstrip())
    if not report["promoted"]:
        raise SystemExit(3)
