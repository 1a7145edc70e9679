"""A brand team's story: train on its own examples, evaluate, feed corrections back.

Everything here runs the real code on real files: the bundled encoder, real
training steps (a handful of examples, one epoch, tiny max length, so seconds),
the `listener` CLI in a subprocess, SQLite in tmp_path.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from listener.config import ClassifierConfig
from listener.errors import ClassifierError
from listener.records import SentimentLabel
from models.examples import read_examples
from models.feedback import Correction, FeedbackStore

REPO = Path(__file__).resolve().parent.parent

TINY = [
    ("I love this, best purchase ever", "positive"),
    ("Fantastic support, thank you!", "positive"),
    ("Terrible service, never again", "negative"),
    ("It broke after one day, awful", "negative"),
    ("The store opens at nine", "neutral"),
    ("New version released on Tuesday", "neutral"),
]


def write_jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
    lines = [json.dumps({"text": text, "label": label}) + "\n" for text, label in rows]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def listener(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "listener.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=600,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )


def test_examples_are_read_from_jsonl_and_csv_and_bad_rows_name_their_line(tmp_path: Path) -> None:
    texts, labels = read_examples(write_jsonl(tmp_path / "a.jsonl", TINY[:2]))
    assert texts == [TINY[0][0], TINY[1][0]] and labels == [2, 2]
    with (tmp_path / "b.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerows([["text", "label"], ["meh, it works", "Neutral"], ["a, \"quoted\" one", "negative"]])
    assert read_examples(tmp_path / "b.csv") == (["meh, it works", 'a, "quoted" one'], [1, 0])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok", "label": "positive"}\n{"text": "x", "label": "angry"}\n', encoding="utf-8")
    with pytest.raises(ClassifierError, match=r"bad\.jsonl:2: label 'angry'"):
        read_examples(bad)
    (tmp_path / "nohead.csv").write_text("words,verdict\nhi,positive\n", encoding="utf-8")
    with pytest.raises(ClassifierError, match=r"nohead\.csv:1: the header"):
        read_examples(tmp_path / "nohead.csv")


def test_a_lora_adapter_folded_into_the_encoder_gives_the_same_outputs() -> None:
    from models.lora import adapter_tensors, inject, merge_into
    from models.tuned import load_base

    tokenizer, trained, _ = load_base(None)
    _, plain, _ = load_base(None)
    inject(trained, rank=4, alpha=8.0, dropout=0.0)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in trained.named_parameters():
            if "lora_b" in name:
                parameter.normal_(0, 0.02)
    merge_into(plain, adapter_tensors(trained), scale=2.0)
    batch = tokenizer(["switched from Acme, so happy", "ok"], padding=True, return_tensors="pt")
    trained.eval()
    plain.eval()
    with torch.no_grad():
        a = trained(**batch).last_hidden_state
        b = plain(**batch).last_hidden_state
    assert torch.allclose(a, b, atol=1e-4)


@pytest.mark.slow
def test_a_team_trains_on_a_tiny_set_evaluates_it_and_uses_it_in_config(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "ours.jsonl", TINY)
    out = tmp_path / "our-model"
    done = listener("train", "--data", str(data), "--out", str(out), "--base", "encoder",
                    "--epochs", "1", "--max-length", "16", "--batch-size", "4", "--threads", "1")
    assert done.returncode == 0, done.stderr
    assert "val macro-recall" in done.stdout
    meta = json.loads((out / "sentiment.json").read_text(encoding="utf-8"))
    assert meta["model_id"] == "our-model" and meta["train_size"] == 6
    assert (out / "adapter.safetensors").stat().st_size < 5_000_000
    assert json.loads((out / "evaluation.json").read_text(encoding="utf-8"))["val"]["count"] == 6

    done = listener("evaluate", "--model", str(out), "--data", str(data), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["n"] == 6 and report["model_id"] == "our-model"
    assert 0.0 <= report["macro_recall"] <= 1.0 and 0.0 <= report["accuracy"] <= 1.0
    assert set(report["per_class_recall"]) == {"negative", "neutral", "positive"}
    assert report["texts_per_s"] > 0

    from models.loader import load_classifier

    verdicts = load_classifier(ClassifierConfig(model=str(out))).classify(["I love it", ""])
    assert verdicts[0].model_id == "our-model" and verdicts[0].model_version == meta["version"]
    assert "int8_ranges" in meta  # measured on the training texts, ready for an int8 override
    forced = load_classifier(ClassifierConfig(model=str(out), int8=True)).classify(["I love it"])[0]
    assert forced.model_version == meta["version"] + "-int8-static"
    assert verdicts[1].label is SentimentLabel.UNSCORED


@pytest.mark.slow
def test_a_shallower_model_learns_from_a_teacher_and_loads_with_its_depth(tmp_path: Path) -> None:
    """Fewer encoder blocks is how the default model gets its speed; the depth travels in the dir."""
    from models.finetune import FinetuneSettings, finetune
    from models.finetuned import DEFAULT_MODEL_DIR, FinetunedClassifier

    texts = [text for text, _ in TINY]
    labels = [("negative", "neutral", "positive").index(label) for _, label in TINY]
    settings = FinetuneSettings(epochs=1, batch_size=3, max_length=16, eval_every=2, layers=2,
                                teachers=(str(DEFAULT_MODEL_DIR),), distill=0.5, device="cpu")
    finetune((texts, labels), (texts, labels), tmp_path / "small", settings=settings)

    meta = json.loads((tmp_path / "small" / "sentiment.json").read_text(encoding="utf-8"))
    assert meta["layers"] == 2 and meta["training"]["distill"] == 0.5
    small = FinetunedClassifier(tmp_path / "small", device="cpu", int8=False)
    assert len(small.net.encoder.encoder.layer) == 2
    blank, fine = small.classify(["", "fine"])
    assert blank.label is SentimentLabel.UNSCORED and fine.label is not SentimentLabel.UNSCORED


def test_training_refuses_an_impossible_depth_or_device_clearly(tmp_path: Path) -> None:
    from models.finetune import FinetuneSettings, finetune

    rows = ([text for text, _ in TINY], [0, 0, 1, 1, 2, 2])
    with pytest.raises(ClassifierError, match="layers must be between 1 and 6, not 9"):
        finetune(rows, rows, tmp_path / "deep", settings=FinetuneSettings(layers=9, device="cpu"))
    with pytest.raises(ClassifierError, match="unknown device 'gpu0'"):
        finetune(rows, rows, tmp_path / "odd", settings=FinetuneSettings(device="gpu0"))


def test_train_refuses_a_bad_data_file_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine", "label": "positive"}\nnot json\n', encoding="utf-8")
    done = listener("train", "--data", str(bad), "--out", str(tmp_path / "m"))
    assert done.returncode == 2
    assert "bad.jsonl:2: not valid JSON" in done.stderr
    assert not (tmp_path / "m").exists()


def test_corrections_are_kept_once_per_mention_and_exported_as_training_data(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "feedback.db")
    hostile = 'Acme "support" <script>alert(1)</script>\n, line two'
    store.record(Correction("m1", "Acme", hostile, "positive", model_label="negative"))
    store.record(Correction("m1", "Acme", hostile, "negative", model_label="negative"))  # changed their mind
    store.record(Correction("m2", "Globex", "switched to Globex", "positive", corrected_by="sam"))
    with pytest.raises(ClassifierError, match="not one of"):
        store.record(Correction("m3", "Acme", "text", "angry"))
    out = io.StringIO()
    assert store.export(out, brand="Acme") == 1
    assert [json.loads(line)["label"] for line in out.getvalue().splitlines()] == ["negative"]
    export = tmp_path / "all.csv"
    with export.open("w", newline="", encoding="utf-8") as handle:
        assert store.export(handle, fmt="csv") == 2
    store.close()
    texts, labels = read_examples(export)
    assert hostile in texts and labels[texts.index(hostile)] == 0


def test_feedback_export_command_writes_what_train_reads(tmp_path: Path) -> None:
    config = tmp_path / "watch.yaml"
    config.write_text(
        "data_dir: data\nbrands:\n  - name: Acme\n    queries: ['acme']\n", encoding="utf-8"
    )
    store = FeedbackStore(tmp_path / "data" / "feedback.db")
    store.record(Correction("m1", "Acme", "left Acme for Globex, so happy", "negative"))
    store.close()
    done = listener("feedback", "export", "-c", str(config), "--out", str(tmp_path / "fb.jsonl"))
    assert done.returncode == 0, done.stderr
    assert "1 correction(s) exported" in done.stderr
    assert read_examples(tmp_path / "fb.jsonl") == (["left Acme for Globex, so happy"], [0])
