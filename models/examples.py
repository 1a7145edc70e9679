"""Labelled examples from brand teams: JSONL or CSV with `text` and `label` columns.

A file a person assembled by hand will have a bad row somewhere; the error
names the file, the line and what is wrong, and nothing is half-read.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from listener.errors import ClassifierError

__all__ = ["LABELS", "read_examples"]

LABELS = ("negative", "neutral", "positive")


def _label(value: object, where: str) -> int:
    name = str(value).strip().casefold() if value is not None else ""
    if name not in LABELS:
        raise ClassifierError(f"{where}: label {value!r} is not one of {', '.join(LABELS)}")
    return LABELS.index(name)


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ClassifierError(f"{where}: 'text' must be a non-empty string")
    return value


def read_examples(path: Path) -> tuple[list[str], list[int]]:
    """(texts, label ids 0/1/2) from `path`; `.csv` is CSV, anything else JSON Lines."""
    if not path.is_file():
        raise ClassifierError(f"{path}: no such file")
    texts: list[str] = []
    labels: list[int] = []
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"text", "label"} <= set(reader.fieldnames):
                raise ClassifierError(f"{path}:1: the header must name 'text' and 'label' columns")
            for row in reader:
                where = f"{path}:{reader.line_num}"
                texts.append(_text(row.get("text"), where))
                labels.append(_label(row.get("label"), where))
        else:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    raise ClassifierError(f"{where}: not valid JSON: {exc}") from None
                if not isinstance(row, dict):
                    raise ClassifierError(f"{where}: each line must be a JSON object")
                texts.append(_text(row.get("text"), where))
                labels.append(_label(row.get("label"), where))
    if not texts:
        raise ClassifierError(f"{path}: no examples")
    return texts, labels
