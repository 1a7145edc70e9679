"""The contract every `Classifier` engine must keep, written once and run over each engine.

An engine's test class subclasses `ClassifierContract` and provides the fixture
`classifier`. Loading a model takes seconds, so the engine is loaded once per
module (a module-scoped fixture the class fixture returns) and the tests only
call `classify`. Set `reads_sentiment = False` for an engine whose weights are
not trained (a random model proves the plumbing, not the judgement).

    @pytest.fixture(scope="module")
    def default_model() -> Classifier: ...

    class TestDefaultClassifierContract(ClassifierContract):
        @pytest.fixture
        def classifier(self, default_model): return default_model

Everything here talks only through the `Classifier` protocol, as the classify
stage does.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import ClassVar

import pytest

from listener.records import Sentiment, SentimentLabel
from models.classifier import Classifier
from models.encoder import bundled_model_dir

__all__ = ["ClassifierContract", "tiny_model_dir"]

COMPLAINT = "My order arrived broken and nobody answers the support line. Absolutely terrible."
PRAISE = "I love my new headphones, best purchase I have made all year!"
FACT = "The store opens at 9am on Monday."
# Input no person meant for a model: markup, escapes, lone surrogates, NUL, other scripts,
# numbers, a bare link, emoji, and text longer than any model's window.
ODD = [
    "🔥🔥🔥 😡😡 💩",
    "<script>alert('x')</script><b>bold</b> &amp; &lt;tags&gt;",
    "\x1b[2J\x1b]0;title\x07 terminal escapes",
    "lone surrogate \ud800 and a NUL \x00 in the middle",
    "\u202eesrever ni txet\u202c and \u200f\u200e marks",
    "\u0645\u0631\u062d\u0628\u0627 mixed \u05e9\u05dc\u05d5\u05dd text",
    "' OR 1=1; -- {{template}} ${env} %s %n",
    "1234567890 42 3.14",
    "https://example.com/a?b=c&d=e",
    "ÿþ\ufeff\ufffd",
    "I absolutely love this brand and everything they make. " * 2000,
]


def tiny_model_dir(path: Path, id2label: dict[int, str]) -> Path:
    """A small random BERT classifier, saved like a fine-tuned model would be."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=512,
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )
    BertForSequenceClassification(config).save_pretrained(path)
    source = bundled_model_dir()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(source / name, path / name)
    return path


def scores(verdict: Sentiment) -> tuple[float, float, float]:
    return (verdict.negative, verdict.neutral, verdict.positive)


def assert_well_formed(verdict: Sentiment, classifier: Classifier) -> None:
    """A label of the fixed set, the model that gave it, and scores that agree with the label."""
    assert isinstance(verdict.label, SentimentLabel)
    assert verdict.model_id == classifier.model_id and verdict.model_id.strip()
    assert verdict.model_version == classifier.model_version and verdict.model_version.strip()
    if verdict.label is SentimentLabel.UNSCORED:
        assert scores(verdict) == (0.0, 0.0, 0.0), "an unscored verdict claims no probabilities"
        return
    assert all(0.0 <= s <= 1.0 for s in scores(verdict))
    assert math.isclose(sum(scores(verdict)), 1.0, abs_tol=1e-4)
    best = max(scores(verdict))
    assert scores(verdict)[("negative", "neutral", "positive").index(verdict.label.value)] == best


def assert_same(one: Sentiment, other: Sentiment) -> None:
    assert one.label == other.label
    for got, expected in zip(scores(one), scores(other), strict=True):
        assert got == pytest.approx(expected, abs=1e-4)


class ClassifierContract:
    """Behaviour the classify stage relies on; any engine that passes can score the stream."""

    reads_sentiment: ClassVar[bool] = True

    @pytest.fixture
    def classifier(self) -> Classifier:
        raise NotImplementedError("an engine's test class provides classifier")

    def test_one_well_formed_verdict_per_text_in_input_order(self, classifier: Classifier) -> None:
        texts = [PRAISE, "meh", COMPLAINT, FACT, "ok " * 60, "awful"]
        forward = classifier.classify(texts)
        backward = classifier.classify(list(reversed(texts)))
        assert len(forward) == len(texts)
        for verdict in forward:
            assert_well_formed(verdict, classifier)
        for ahead, behind in zip(forward, reversed(backward), strict=True):
            assert_same(ahead, behind)

    def test_blank_text_is_unscored_and_an_empty_batch_gives_nothing(self, classifier: Classifier) -> None:
        blank = ["", "   ", "\n\t "]
        verdicts = classifier.classify([*blank, FACT])
        assert [v.label for v in verdicts[:3]] == [SentimentLabel.UNSCORED] * 3
        for verdict in verdicts:
            assert_well_formed(verdict, classifier)
        assert classifier.classify([]) == []

    def test_odd_and_very_long_input_is_answered_without_raising(self, classifier: Classifier) -> None:
        verdicts = classifier.classify(ODD)
        assert len(verdicts) == len(ODD)
        for verdict in verdicts:
            assert_well_formed(verdict, classifier)
        assert verdicts[-1].label is not SentimentLabel.UNSCORED, "a long post is cut to fit, not skipped"

    def test_a_text_gets_the_same_verdict_whatever_its_batchmates(self, classifier: Classifier) -> None:
        alone = classifier.classify([COMPLAINT])[0]
        for batch in ([COMPLAINT, ODD[-1]], ["hi", COMPLAINT, PRAISE * 5], [FACT] * 40 + [COMPLAINT]):
            placed = classifier.classify(batch)[batch.index(COMPLAINT)]
            assert_same(placed, alone)
        assert_same(classifier.classify([COMPLAINT])[0], alone)

    def test_a_bare_string_is_refused_rather_than_scored_letter_by_letter(
        self, classifier: Classifier
    ) -> None:
        with pytest.raises(TypeError):
            classifier.classify("I love it")

    def test_obvious_complaints_and_praise_get_the_obvious_labels(self, classifier: Classifier) -> None:
        if not self.reads_sentiment:
            pytest.skip("an untrained model has no judgement to check")
        complaint, praise = classifier.classify([COMPLAINT, PRAISE])
        assert (complaint.label, praise.label) == (SentimentLabel.NEGATIVE, SentimentLabel.POSITIVE)
