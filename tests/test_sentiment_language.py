"""Honesty about scope: languages the model cannot read, and sentiment toward the brand."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from listener.config import ClassifierConfig
from listener.errors import ClassifierError
from listener.records import Mention, ScoredMention, Sentiment, SentimentLabel
from listener.stages import ClassifyStage
from models.language import LanguageDetector
from models.loader import load_classifier, load_model
from models.routing import RoutedClassifier
from models.targeting import aim_at_brand, brand_role
from tests.test_classifier import tiny_model_dir

BRAND_SET = Path(__file__).resolve().parent / "data" / "brand_targeted.jsonl"


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector()


def test_each_text_gets_its_language_and_too_short_texts_get_none(detector: LanguageDetector) -> None:
    texts = [
        "Acme support is the worst, two hours on hold and then they hung up",
        "Das ist wirklich schlecht, ich bin sehr enttäuscht von Acme",
        "Je suis très content de mon nouveau téléphone Acme",
        "Me encanta este producto de Acme, es genial",
        "ok",
        "@user lol #acme",
        "",
        "🔥🔥🔥 😡😡 💩 <script>alert('x')</script>",
        "lone surrogate \ud800 and a NUL \x00 in the middle of an English sentence",
    ]
    assert detector.detect(texts) == ["en", "de", "fr", "es", None, None, None, None, "en"]


def test_a_stranger_posting_a_megabyte_word_does_not_freeze_detection(detector: LanguageDetector) -> None:
    """lingua's cost is quadratic in length: read whole, one 1 MB word held the GIL for minutes."""
    german = "Das ist wirklich schlecht, ich bin sehr enttäuscht von Acme. " * 20_000  # ~1.2 MB
    texts = ["a" * 1_000_000, german, "Acme support is the worst, two hours on hold and then they hung up"]
    started = time.perf_counter()
    languages = detector.detect(texts)
    took = time.perf_counter() - started
    assert languages == [None, "de", "en"]  # the prefix still tells the language of a long post
    assert took < 1.0, f"detecting three posts (two of a megabyte) took {took:.1f} s"


def test_an_unknown_language_code_in_config_is_refused_by_name() -> None:
    with pytest.raises(ClassifierError, match="'xx'"):
        LanguageDetector(["en", "xx"])
    with pytest.raises(ValueError, match="ISO 639-1"):
        ClassifierConfig(languages=["English"])
    with pytest.raises(ClassifierError, match=r"not in classifier\.detect_languages"):
        load_classifier(ClassifierConfig(language_models={"ja": "/nowhere"}))


@pytest.mark.slow
def test_uncovered_languages_are_unscored_and_mapped_languages_use_their_model(
    tmp_path: Path, detector: LanguageDetector
) -> None:
    german = tiny_model_dir(tmp_path / "german", {0: "negative", 1: "neutral", 2: "positive"})
    cfg = ClassifierConfig()
    classifier = RoutedClassifier(
        load_model("minilm-head", cfg),
        covered=["en"],
        detector=detector,
        others={"de": load_model(str(german), cfg)},
    )
    verdicts = classifier.classify([
        "I love my new headphones, best purchase I have made all year!",
        "Das ist wirklich schlecht, ich bin sehr enttäuscht von Acme",
        "Je suis très content de mon nouveau téléphone Acme",
        "   ",
        "ok",
    ])
    english, german_verdict, french, blank, short = verdicts
    assert (english.label, english.language, english.model_id) == (
        SentimentLabel.POSITIVE, "en", "minilm-l6-tweeteval"
    )
    assert german_verdict.language == "de" and german_verdict.model_id == str(german)
    assert german_verdict.label is not SentimentLabel.UNSCORED
    assert (french.label, french.language, french.positive) == (SentimentLabel.UNSCORED, "fr", 0.0)
    assert french.model_id == "minilm-l6-tweeteval"
    assert blank.label is SentimentLabel.UNSCORED and blank.language is None
    assert short.label is not SentimentLabel.UNSCORED and short.language is None


def _verdict(label: str, negative: float, neutral: float, positive: float) -> Sentiment:
    return Sentiment(label=SentimentLabel(label), negative=negative, neutral=neutral, positive=positive,
                     model_id="m", model_version="v")


def test_a_happy_post_about_leaving_the_brand_is_bad_news_for_the_brand() -> None:
    text = "Switched from Acme to Globex last week, so happy with the change"
    happy = _verdict("positive", 0.1, 0.2, 0.7)
    assert brand_role(text, "Acme") == "loser" and brand_role(text, "Globex") == "winner"
    for_acme = aim_at_brand(text, "Acme", happy)
    assert (for_acme.label, for_acme.negative, for_acme.positive) == (SentimentLabel.NEGATIVE, 0.7, 0.1)
    assert aim_at_brand(text, "Globex", happy) == happy
    assert aim_at_brand("Acme opens a store on Monday", "Acme", happy) == happy
    assert brand_role("switched from acme.io (a different thing)", "Acme.io") == "loser"
    assert brand_role("I (heart) Acme[1] *and* Globex+", "Acme[1]") is None  # regex characters are literal


def test_the_brand_targeted_set_is_hand_labelled_and_big_enough() -> None:
    rows = [json.loads(line) for line in BRAND_SET.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 100
    assert {row["label"] for row in rows} == {"negative", "neutral", "positive"}
    assert all(row["brand"].casefold() in row["text"].casefold() for row in rows)


@pytest.mark.slow
def test_the_classify_stage_scores_toward_each_mentions_brand() -> None:
    classifier = load_model("minilm-head", ClassifierConfig())
    now = datetime.now(UTC)
    mentions = [
        Mention(id=f"m-{brand}", document_id="d1", brand=brand, matched_queries=(brand.lower(),),
                source="test", source_type="feed", url="https://example.test/1", published=now, fetched=now,
                text="Switched from Acme to Globex last week, so happy with the change")
        for brand in ("Acme", "Globex")
    ]
    aimed = ClassifyStage(classifier).handle(mentions)
    plain = ClassifyStage(classifier, brand_targeting=False).handle(mentions)

    def labels(outputs: list) -> list[SentimentLabel]:  # type: ignore[type-arg]
        return [o.record.sentiment.label for o in outputs if isinstance(o.record, ScoredMention)]

    assert labels(plain) == [SentimentLabel.POSITIVE, SentimentLabel.POSITIVE]
    assert labels(aimed) == [SentimentLabel.NEGATIVE, SentimentLabel.POSITIVE]
