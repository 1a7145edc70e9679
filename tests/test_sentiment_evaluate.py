"""A brand team checks the shipped model on its own labelled mentions with `listener evaluate`.

The rows name the brand each label is about and the kind of post, as the
held-out brand set does. The real command runs in-process (click's runner)
with the real default model, language routing and brand targeting; nothing is
mocked.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from listener.cli_models import evaluate

SWITCH = "Switched from Acme Mobile to Globex last month and I'm so happy with the change"
ROWS = [
    # One post, two brands, opposite verdicts: only aiming at the row's brand can get both right.
    {"text": SWITCH, "label": "negative", "brand": "Acme Mobile", "category": "comparison"},
    {"text": SWITCH, "label": "positive", "brand": "Globex", "category": "comparison"},
    {"text": "Acme Mobile sorted my bill in one call, lovely staff", "label": "positive",
     "brand": "Acme Mobile", "category": "praise"},
    {"text": "no signal for three days and Acme Mobile won't even answer the phone", "label": "negative",
     "brand": "Acme Mobile", "category": "complaint"},
    # French goes to the multilingual model; Dutch is detected but not covered, so it comes back
    # unscored and counts as a miss.
    {"text": "Acme Mobile est en panne depuis ce matin, impossible de passer un appel, c'est inadmissible",
     "label": "negative", "brand": "Acme Mobile", "category": "non_english"},
    {"text": "Acme Mobile heeft al de hele dag storing en niemand neemt de telefoon op, echt slecht",
     "label": "negative", "brand": "Acme Mobile", "category": "non_english"},
]


def _data(tmp_path: Path) -> Path:
    path = tmp_path / "ours.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    return path


def test_a_team_scores_the_shipped_model_toward_each_rows_brand_with_recall_per_kind_of_post(
    tmp_path: Path,
) -> None:
    data = _data(tmp_path)
    runner = CliRunner()

    done = runner.invoke(evaluate, ["--data", str(data), "--json", "--threads", "1"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert report["n"] == 6 and report["brand_rows"] == 6
    assert report["unscored"] == 1  # the Dutch complaint: no model here reads Dutch
    categories = report["per_category"]
    assert list(categories) == ["comparison", "praise", "complaint", "non_english"]
    assert {k: v["n"] for k, v in categories.items()} == {
        "comparison": 2, "praise": 1, "complaint": 1, "non_english": 2
    }
    assert categories["comparison"]["accuracy"] == 1.0  # bad news for Acme Mobile, good for Globex
    assert set(categories["comparison"]["per_class_recall"]) == {"negative", "positive"}
    assert categories["non_english"]["accuracy"] == 0.5  # the French one scored (negative), the Dutch one not

    blind_run = runner.invoke(evaluate, ["--data", str(data), "--json", "--no-brand-targeting"])
    blind = json.loads(blind_run.output)
    # Without aiming, one text gets one verdict, so at most one of the pair can be right.
    assert blind["per_category"]["comparison"]["accuracy"] <= 0.5

    text = runner.invoke(evaluate, ["--data", str(data)])
    assert text.exit_code == 0, text.output
    assert "6 aimed at their brand, 1 unscored" in text.output
    assert "by category" in text.output
    for name in ("comparison", "praise", "complaint", "non_english"):
        assert name in text.output


def test_a_file_without_brands_or_categories_is_scored_as_before(tmp_path: Path) -> None:
    path = tmp_path / "plain.jsonl"
    path.write_text("".join(json.dumps({"text": r["text"], "label": r["label"]}) + "\n" for r in ROWS[2:4]),
                    encoding="utf-8")
    done = CliRunner().invoke(evaluate, ["--data", str(path), "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert report["n"] == 2 and report["brand_rows"] == 0
    assert "per_category" not in report


def test_a_row_with_a_blank_brand_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"text": "fine", "label": "neutral", "brand": "   "}) + "\n", encoding="utf-8")
    done = CliRunner().invoke(evaluate, ["--data", str(path)])
    assert done.exit_code == 2
    assert f"{path}:1: 'brand' must be a non-empty string" in done.output
