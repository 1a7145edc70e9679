"""Labelled examples from brand teams: JSONL or CSV with `text` and `label` columns.

A file a person assembled by hand will have a bad row somewhere; the error
names the file, the line and what is wrong, and nothing is half-read. Rows may
also name the `brand` the label is about (a post can be good news for one
brand and bad for its rival) and a `category` (sarcasm, news, ...) so an
evaluation can say which kind of post a model gets wrong.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from listener.errors import ClassifierError

__all__ = ["LABELS", "Example", "read_examples", "read_labelled"]

LABELS = ("negative", "neutral", "positive")


def _label(value: object, where: str) -> int:
    name = str(value).strip().casefold() if value is not None else ""
    if name not in LABELS:
        raise ClassifierError(f"{where}: label {value!r} is not one of {', '.join(LABELS)}")
    return LABELS.index(name)


@dataclass(frozen=True)
class Example:
    """One labelled row; `brand` and `category` are None where the file does not give them."""

    text: str
    label: int
    brand: str | None = None
    category: str | None = None


def _optional(value: object, name: str, where: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.strip():
        raise ClassifierError(f"{where}: {name!r} must be a non-empty string when given")
    return value.strip()


def _example(row: dict[str, object], where: str) -> Example:
    return Example(
        text=_text(row.get("text"), where),
        label=_label(row.get("label"), where),
        brand=_optional(row.get("brand"), "brand", where),
        category=_optional(row.get("category"), "category", where),
    )


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ClassifierError(f"{where}: 'text' must be a non-empty string")
    return value


def read_examples(path: Path) -> tuple[list[str], list[int]]:
    """(texts, label ids 0/1/2) from `path`; `.csv` is CSV, anything else JSON Lines."""
    examples = read_labelled(path)
    return [e.text for e in examples], [e.label for e in examples]


def read_labelled(path: Path) -> list[Example]:
    """Every row of `path` with its optional brand and category; `.csv` is CSV, else JSON Lines."""
    if not path.is_file():
        raise ClassifierError(f"{path}: no such file")
    examples: list[Example] = []
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"text", "label"} <= set(reader.fieldnames):
                raise ClassifierError(f"{path}:1: the header must name 'text' and 'label' columns")
            for row in reader:
                examples.append(_example(dict(row), f"{path}:{reader.line_num}"))
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
                examples.append(_example(row, where))
    if not examples:
        raise ClassifierError(f"{path}: no examples")
    return examples
