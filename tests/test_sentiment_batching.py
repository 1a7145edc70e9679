"""Batches sorted by what the model reads (tokens), with the same verdicts as before.

Real default model and its real tokenizer; nothing is mocked.
"""

from __future__ import annotations

import time

import pytest

from models.batching import length_sorted_batches, token_lengths
from models.finetuned import FinetunedClassifier
from models.scoring import score_texts

# Tweets where characters and tokens disagree: emoji runs are short in tokens, rare words long.
TEXTS = [
    "🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥 new phone day",
    "antidisestablishmentarianism supercalifragilistic pneumonoultramicroscopic",
    "ok",
    "the app keeps crashing every time I open it, fix it please",
    "love love love this place ❤️❤️❤️❤️❤️❤️❤️❤️",
    "Flight delayed again. Third time this month. Not impressed at all.",
    "https://t.co/abcdefghij https://t.co/klmnopqrst",
    "meh",
    "Their support team sorted my refund within a day, genuinely impressed with the service.",
    "😡😡😡😡😡😡😡😡😡😡😡😡😡😡",
    "The shop opens at 9am on Monday and closes at 5pm.",
    "worst. update. ever.",
] * 3


@pytest.fixture(scope="module")
def classifier() -> FinetunedClassifier:
    return FinetunedClassifier(threads=1)


def padding(lengths: list[int], by: list[int], batch_size: int) -> int:
    return sum(
        max(lengths[i] for i in batch) * len(batch) - sum(lengths[i] for i in batch)
        for batch in length_sorted_batches(["x"] * len(lengths), batch_size, by)
    )


def test_token_lengths_count_what_the_model_reads_special_tokens_and_truncation_included(
    classifier: FinetunedClassifier,
) -> None:
    short, long = token_lengths(classifier.tokenizer, ["hello world", "word " * 500], 64)
    assert short == len(classifier.tokenizer("hello world")["input_ids"])
    assert long == 64
    assert token_lengths(classifier.tokenizer, [], 64) == []


def test_sorting_by_tokens_pads_less_than_sorting_by_characters(classifier: FinetunedClassifier) -> None:
    tokens = token_lengths(classifier.tokenizer, TEXTS, classifier.max_length)
    by_tokens = padding(tokens, tokens, batch_size=4)
    by_chars = padding(tokens, [len(t) for t in TEXTS], batch_size=4)
    assert by_tokens < by_chars


def test_the_verdicts_are_the_same_whichever_way_batches_are_sorted(classifier: FinetunedClassifier) -> None:
    by_tokens = classifier.classify(TEXTS)
    by_chars = score_texts(TEXTS, classifier._score_batch, batch_size=classifier.batch_size,
                           model_id=classifier.model_id, model_version=classifier.model_version,
                           prepare=classifier._prepare)
    backwards = list(reversed(classifier.classify(list(reversed(TEXTS)))))
    for a, b, c in zip(by_tokens, by_chars, backwards, strict=True):
        assert a.label == b.label == c.label
        for field in ("negative", "neutral", "positive"):
            assert getattr(a, field) == pytest.approx(getattr(b, field), abs=1e-4)
            assert getattr(a, field) == pytest.approx(getattr(c, field), abs=1e-4)


def test_a_megabyte_post_is_scored_as_quickly_as_its_opening(classifier: FinetunedClassifier) -> None:
    """The model reads its first 128 tokens; tokenizing the rest (twice) only cost time."""
    opening = "Flight delayed again. Third time this month. Not impressed at all. "
    posts = [opening * 15_000] * 5  # five posts of ~1 MB each
    started = time.perf_counter()
    verdicts = classifier.classify(posts)
    took = time.perf_counter() - started
    alone = classifier.classify([opening * 50])[0]
    assert [v.label for v in verdicts] == [alone.label] * 5
    assert verdicts[0].negative == pytest.approx(alone.negative, abs=1e-4)
    assert took < 1.5, f"scoring five 1 MB posts took {took:.1f} s"


def test_lengths_that_do_not_match_the_texts_are_refused() -> None:
    with pytest.raises(ValueError, match="2 lengths for 3 texts"):
        list(length_sorted_batches(["a", "b", "c"], 2, [1, 2]))
