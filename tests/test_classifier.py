"""The sentiment classifier as the classify stage uses it: real models, no stand-ins."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from classifier_contract import tiny_model_dir
from safetensors.torch import load_file

from listener.config import ClassifierConfig
from listener.errors import ClassifierError
from listener.records import Sentiment, SentimentLabel
from models.classifier import Classifier
from models.finetuned import DEFAULT_MODEL_DIR
from models.head import default_head_path
from models.loader import load_classifier

REPO = Path(__file__).resolve().parent.parent

CLEARLY_NEGATIVE = [
    "I hate this phone. Worst customer service ever, never buying from them again.",
    "My order arrived broken and nobody answers the support line. Absolutely terrible.",
]
CLEARLY_POSITIVE = [
    "I love my new headphones, best purchase I have made all year!",
    "Thank you so much for the amazing support, you made my day!",
]
CLEARLY_NEUTRAL = [
    "The store opens at 9am on Monday.",
    "The quarterly report will be published on Tuesday.",
]
HOSTILE = [
    "🔥🔥🔥 😡😡 💩",
    "\u202eesrever ni txet\u202c and \u200f\u200e marks",
    "<script>alert('x')</script><b>bold</b> &amp; &lt;tags&gt;",
    "lone surrogate \ud800 and a NUL \x00 in the middle",
    "\u0645\u0631\u062d\u0628\u0627 mixed \u05e9\u05dc\u05d5\u05dd text",
    "' OR 1=1; -- {{template}} ${env} %s %n",
]


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return load_classifier(ClassifierConfig())


def assert_valid(verdict: Sentiment) -> None:
    assert verdict.label in (SentimentLabel.NEGATIVE, SentimentLabel.NEUTRAL, SentimentLabel.POSITIVE)
    scores = (verdict.negative, verdict.neutral, verdict.positive)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert math.isclose(sum(scores), 1.0, abs_tol=1e-5)
    assert verdict.label.value == ("negative", "neutral", "positive")[scores.index(max(scores))]


@pytest.mark.slow
def test_the_default_model_loads_with_no_network_and_an_empty_hub_cache(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    script = (
        "import json; from listener.config import ClassifierConfig;"
        "from models.loader import load_classifier;"
        "c = load_classifier(ClassifierConfig());"
        "print(json.dumps(c.classify(['what a lovely day'])[0].model_dump(mode='json')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    verdict = Sentiment.model_validate_json(done.stdout.strip().splitlines()[-1])
    assert_valid(verdict)
    assert not any(tmp_path.iterdir()), "nothing may be downloaded or cached"


@pytest.mark.slow
def test_obvious_complaints_praise_and_facts_get_the_obvious_labels(classifier: Classifier) -> None:
    verdicts = classifier.classify(CLEARLY_NEGATIVE + CLEARLY_POSITIVE + CLEARLY_NEUTRAL)
    labels = [v.label for v in verdicts]
    n, p = len(CLEARLY_NEGATIVE), len(CLEARLY_POSITIVE)
    assert labels[:n] == [SentimentLabel.NEGATIVE] * n
    assert labels[n : n + p] == [SentimentLabel.POSITIVE] * p
    assert labels[n + p :] == [SentimentLabel.NEUTRAL] * len(CLEARLY_NEUTRAL)


@pytest.mark.slow
def test_every_verdict_names_the_model_and_version_that_produced_it(classifier: Classifier) -> None:
    meta = json.loads((DEFAULT_MODEL_DIR / "sentiment.json").read_text(encoding="utf-8"))
    verdict = classifier.classify(["a new phone came out today"])[0]
    assert verdict.model_id == classifier.model_id == "minilm-lora-tweeteval"
    suffix = "-int8-static" if meta["int8_default"] else ""
    assert verdict.model_version == classifier.model_version == meta["version"] + suffix
    assert verdict.language == "en"


@pytest.mark.slow
def test_the_frozen_head_model_stays_available_by_name() -> None:
    head = json.loads(default_head_path().read_text(encoding="utf-8"))
    verdict = load_classifier(ClassifierConfig(model="minilm-head")).classify(["I love this!"])[0]
    assert (verdict.model_id, verdict.model_version) == ("minilm-l6-tweeteval", head["version"])
    assert verdict.label == SentimentLabel.POSITIVE


@pytest.mark.slow
def test_a_mention_in_a_language_the_model_does_not_cover_is_unscored_with_its_language(
    classifier: Classifier,
) -> None:
    # German now has a model (tests/test_multilingual.py); Dutch is detected but still not covered.
    dutch, english = classifier.classify(
        ["Dit is echt slecht, ik ben erg teleurgesteld in de klantenservice", "I hate waiting on hold"]
    )
    assert (dutch.label, dutch.language, dutch.negative) == (SentimentLabel.UNSCORED, "nl", 0.0)
    assert english.label == SentimentLabel.NEGATIVE and english.language == "en"


def test_the_shipped_model_is_a_few_megabytes_and_records_its_figures() -> None:
    files = list(DEFAULT_MODEL_DIR.iterdir())
    assert {f.name for f in files} >= {"sentiment.json", "adapter.safetensors"}
    assert all(f.stat().st_size < 5_000_000 for f in files)
    meta = json.loads((DEFAULT_MODEL_DIR / "sentiment.json").read_text(encoding="utf-8"))
    assert meta["base"] == "sentence-transformers/all-MiniLM-L6-v2"
    for split in ("val_fp32", "val_int8"):
        assert set(meta[split]) >= {"macro_recall", "accuracy", "recall", "count"}
    assert isinstance(meta["int8_default"], bool)
    stored = load_file(str(DEFAULT_MODEL_DIR / "adapter.safetensors"))
    linears = {key.removesuffix(".lora_a") for key in stored if key.endswith(".lora_a")}
    assert set(meta["int8_ranges"]) == linears | {"head"}  # every linear layer has its input range
    assert all(low < 0 < high for low, high in meta["int8_ranges"].values())


@pytest.mark.slow
def test_results_come_back_in_input_order_although_batches_are_sorted_by_length(
    classifier: Classifier,
) -> None:
    texts = [
        "This is the best coffee shop in town, the staff are lovely and the cakes are wonderful every time.",
        "awful",
        "The meeting is at noon.",
        "Terrible terrible service, waited an hour and then they lost my booking entirely, never again.",
        "love it",
    ]
    forward = classifier.classify(texts)
    backward = classifier.classify(list(reversed(texts)))
    for ahead, behind in zip(forward, reversed(backward), strict=True):
        assert ahead.label == behind.label
        assert ahead.negative == pytest.approx(behind.negative, abs=1e-5)
        assert ahead.positive == pytest.approx(behind.positive, abs=1e-5)
    assert forward[0].label == SentimentLabel.POSITIVE
    assert forward[3].label == SentimentLabel.NEGATIVE


@pytest.mark.slow
def test_a_batch_gives_the_same_scores_as_one_text_at_a_time(classifier: Classifier) -> None:
    texts = CLEARLY_NEGATIVE + CLEARLY_POSITIVE + CLEARLY_NEUTRAL + ["ok", "meh. " * 40]
    batched = classifier.classify(texts)
    # The shipped model quantizes each layer's input with a range fixed at training time, so
    # batchmates cannot move a score beyond float rounding (see models/int8.py).
    for text, verdict in zip(texts, batched, strict=True):
        alone = classifier.classify([text])[0]
        assert alone.label == verdict.label
        for field in ("negative", "neutral", "positive"):
            assert getattr(alone, field) == pytest.approx(getattr(verdict, field), abs=1e-4)


@pytest.mark.slow
def test_a_model_dir_without_recorded_int8_ranges_still_runs_int8_dynamically(tmp_path: Path) -> None:
    """Directories trained before ranges were recorded keep working, under their own version suffix."""
    from models.finetuned import FinetunedClassifier

    old = tmp_path / "old-model"
    shutil.copytree(DEFAULT_MODEL_DIR, old)
    meta = json.loads((old / "sentiment.json").read_text(encoding="utf-8"))
    del meta["int8_ranges"]
    (old / "sentiment.json").write_text(json.dumps(meta), encoding="utf-8")
    dynamic = FinetunedClassifier(old, device="cpu")
    assert dynamic.model_version == meta["version"] + "-int8"
    verdicts = dynamic.classify(CLEARLY_NEGATIVE + CLEARLY_POSITIVE)
    assert [v.label for v in verdicts] == [SentimentLabel.NEGATIVE] * len(CLEARLY_NEGATIVE) + [
        SentimentLabel.POSITIVE
    ] * len(CLEARLY_POSITIVE)


@pytest.mark.slow
def test_empty_and_blank_text_is_marked_unscored_not_guessed(classifier: Classifier) -> None:
    verdicts = classifier.classify(["", "I love this!", "   ", "\n\t "])
    assert [v.label for v in verdicts] == [
        SentimentLabel.UNSCORED,
        SentimentLabel.POSITIVE,
        SentimentLabel.UNSCORED,
        SentimentLabel.UNSCORED,
    ]
    assert (verdicts[0].negative, verdicts[0].neutral, verdicts[0].positive) == (0.0, 0.0, 0.0)
    assert classifier.classify([]) == []


@pytest.mark.slow
def test_a_very_long_post_is_truncated_and_scored(classifier: Classifier) -> None:
    long_post = "I absolutely love this brand and everything they make. " * 2000
    verdict = classifier.classify([long_post])[0]
    assert_valid(verdict)
    assert verdict.label == SentimentLabel.POSITIVE


@pytest.mark.slow
def test_hostile_text_is_scored_without_errors(classifier: Classifier) -> None:
    verdicts = classifier.classify(HOSTILE)
    assert len(verdicts) == len(HOSTILE)
    for verdict in verdicts:
        if verdict.label is SentimentLabel.UNSCORED:  # read as a language the model does not cover
            assert verdict.language not in (None, "en")
        else:
            assert_valid(verdict)


def test_a_bare_string_is_refused_rather_than_scored_letter_by_letter() -> None:
    from models.scoring import score_texts

    with pytest.raises(TypeError, match="sequence of texts"):
        score_texts(
            "oops", lambda batch: np.zeros((len(batch), 3)), batch_size=4, model_id="m", model_version="v"
        )


def test_the_shipped_head_is_small_and_records_its_test_figures() -> None:
    path = default_head_path()
    assert path.stat().st_size < 200_000
    head = json.loads(path.read_text(encoding="utf-8"))
    assert head["labels"] == ["negative", "neutral", "positive"]
    assert len(head["weights"]) == 3 and all(len(row) == 384 for row in head["weights"])
    assert head["encoder"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert head["metadata"]["test"]["macro_recall"] >= 0.60
    assert head["metadata"]["val"]["macro_recall"] >= 0.60
    assert head["metadata"]["training"]["C"] > 0


def test_a_corrupt_head_file_gives_a_classifier_error(tmp_path: Path) -> None:
    from models.minilm import MiniLMClassifier

    broken = tmp_path / "head.json"
    broken.write_text('{"format": "listener-linear-head/1", "weights": [[1, 2]]', encoding="utf-8")
    with pytest.raises(ClassifierError, match="not valid JSON"):
        MiniLMClassifier(head_path=broken)
    with pytest.raises(ClassifierError, match="cannot read"):
        MiniLMClassifier(head_path=tmp_path / "missing.json")


# --- any Hugging Face model -----------------------------------------------------------


def test_a_local_three_label_model_directory_scores_mentions(tmp_path: Path) -> None:
    model_dir = tiny_model_dir(tmp_path / "model", {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"})
    classifier = load_classifier(ClassifierConfig(detect_languages=[], model=str(model_dir), batch_size=2))
    texts = ["great stuff", "", "the worst", "a " * 600, *HOSTILE]
    verdicts = classifier.classify(texts)
    assert len(verdicts) == len(texts)
    assert verdicts[1].label == SentimentLabel.UNSCORED
    for verdict in verdicts[:1] + verdicts[2:]:
        assert_valid(verdict)
        assert verdict.model_id == str(model_dir)
        assert verdict.model_version == classifier.model_version


def test_named_labels_are_matched_whatever_their_case_and_order(tmp_path: Path) -> None:
    model_dir = tiny_model_dir(tmp_path / "model", {0: "Positive", 1: "NEGATIVE", 2: "neutral"})
    classifier = load_classifier(ClassifierConfig(detect_languages=[], model=str(model_dir)))
    from models.hf import HFClassifier

    assert isinstance(classifier, HFClassifier)
    assert classifier.columns == [1, 2, 0]
    assert_valid(classifier.classify(["fine"])[0])


def test_a_two_label_model_scores_negative_or_positive_with_no_neutral(tmp_path: Path) -> None:
    model_dir = tiny_model_dir(tmp_path / "model", {0: "NEGATIVE", 1: "POSITIVE"})
    classifier = load_classifier(ClassifierConfig(detect_languages=[], model=str(model_dir)))
    for verdict in classifier.classify(["good", "bad", "whatever", "🙂"]):
        assert_valid(verdict)
        assert verdict.neutral == 0.0
        assert verdict.label in (SentimentLabel.NEGATIVE, SentimentLabel.POSITIVE)


def test_a_model_with_labels_that_are_not_sentiments_is_refused_by_name(tmp_path: Path) -> None:
    model_dir = tiny_model_dir(tmp_path / "model", {0: "joy", 1: "anger", 2: "neutral"})
    with pytest.raises(ClassifierError, match=r"unknown labels \['anger', 'joy'\]"):
        load_classifier(ClassifierConfig(detect_languages=[], model=str(model_dir)))


def test_a_missing_or_broken_model_directory_gives_a_classifier_error(tmp_path: Path) -> None:
    with pytest.raises(ClassifierError, match="does not exist"):
        load_classifier(ClassifierConfig(model=str(tmp_path / "no-such-model")))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ClassifierError, match="cannot load classifier model"):
        load_classifier(ClassifierConfig(model=str(broken)))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ClassifierError, match="cannot load classifier model"):
        load_classifier(ClassifierConfig(model=str(empty)))


def test_an_unavailable_device_is_a_classifier_error(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    model_dir = tiny_model_dir(tmp_path / "model", {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"})
    with pytest.raises(ClassifierError, match="CUDA is not available"):
        load_classifier(ClassifierConfig(detect_languages=[], model=str(model_dir), device="cuda"))
