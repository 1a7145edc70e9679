"""Brand targeting only adds evidence: a complaint that names a switch stays a complaint.

The rules once turned "third dropped call with Brightline Mobile" positive (any
word filled the rival's slot) and "upgraded to Orion premium and now the app
crashes" positive ("upgraded to" read as switching). Each construction that may
overturn a confident verdict is shown right here; the rest only lift verdicts
the model was unsure of.
"""

from __future__ import annotations

import pytest

from listener.config import ClassifierConfig
from listener.records import Sentiment, SentimentLabel
from listener.stages import classify_toward_brands
from models.loader import load_classifier
from models.targeting import aim_at_brand, brand_role

COMPLAINTS = [
    ("third dropped call with Brightline Mobile", "Brightline Mobile"),
    ("upgraded to Orion premium and now the app crashes", "Orion"),
    ("sent £50 from Orion to Kestrel Pay and it vanished", "Kestrel Pay"),
    ("sent £50 from Orion to Kestrel Pay and it vanished", "Orion"),
    ("switched from Acme to Globex last month and Globex has been a nightmare", "Globex"),
]


def _verdict(label: str, negative: float, neutral: float, positive: float) -> Sentiment:
    return Sentiment(label=SentimentLabel(label), negative=negative, neutral=neutral, positive=positive,
                     model_id="m", model_version="v")


ANGRY = _verdict("negative", 0.9, 0.07, 0.03)
HAPPY = _verdict("positive", 0.03, 0.07, 0.9)
UNSURE = _verdict("neutral", 0.3, 0.4, 0.3)


@pytest.mark.parametrize(("text", "brand"), COMPLAINTS)
def test_a_confident_complaint_stays_negative_toward_the_brand(text: str, brand: str) -> None:
    assert aim_at_brand(text, brand, ANGRY) == ANGRY


def test_a_lowercase_word_is_no_rival_and_upgrading_within_a_brand_is_no_switch() -> None:
    assert brand_role("third dropped call with Brightline Mobile", "Brightline Mobile") is None
    assert brand_role("upgraded to Orion premium and now the app crashes", "Orion") is None
    assert brand_role("sent £50 from Orion to Kestrel Pay and it vanished", "Kestrel Pay") is None
    assert brand_role("Dropped Verizon for Brightline Mobile last week", "Brightline Mobile") == "winner"


def test_leaving_the_brand_happily_is_bad_news_for_it() -> None:
    for text in [
        "Switched from Acme to Globex last week, so happy with the change",
        "Upgraded from Acme to Globex and the difference is incredible",
        "Dropped Acme, went with Initech. Happiest customer ever",
        "ported my number from @acme to Globex, best decision this year",
        "Globex is so much better than Acme, should have moved years ago",
    ]:
        aimed = aim_at_brand(text, "Acme", HAPPY)
        assert (aimed.label, aimed.negative, aimed.positive) == (SentimentLabel.NEGATIVE, 0.9, 0.03), text


def test_a_stated_comparison_the_brand_wins_overturns_the_posts_tone() -> None:
    for text in ["Hooli is worse than Acme in every way that matters", "Hooli is so much slower than Acme"]:
        assert aim_at_brand(text, "Acme", ANGRY).label is SentimentLabel.POSITIVE, text


def test_winning_a_switch_lifts_only_an_unsure_verdict() -> None:
    text = "I'm leaving Hooli for Acme, finally a provider that answers the phone"
    assert aim_at_brand(text, "Acme", UNSURE).label is SentimentLabel.POSITIVE
    assert aim_at_brand("moved over to Acme and the app keeps crashing", "Acme", ANGRY) == ANGRY


def test_negated_or_asked_switches_are_no_evidence() -> None:
    for text in [
        "I would never switch from Acme, they have been great",
        "Should I switch from Acme to Globex?",
        "not leaving Acme any time soon",
    ]:
        assert brand_role(text, "Acme") is None, text
        assert aim_at_brand(text, "Acme", HAPPY) == HAPPY


def test_handles_hashtags_and_run_together_names_are_the_brand() -> None:
    assert brand_role("just left @KestrelPay for Monzo, so much better", "Kestrel Pay") == "loser"
    assert brand_role("leaving #kestrelpay today", "Kestrel Pay") == "loser"
    assert brand_role("ditched kestrel_pay", "Kestrel Pay") == "loser"
    assert brand_role("left @acmeair for Globex", "Acme") is None  # another account, not the brand


@pytest.mark.slow
def test_with_the_shipped_model_targeting_leaves_the_complaints_as_the_model_read_them() -> None:
    classifier = load_classifier(ClassifierConfig(threads=2))
    texts = [text for text, _ in COMPLAINTS[:3]]
    brands = [brand for _, brand in COMPLAINTS[:3]]
    aimed = classify_toward_brands(classifier, texts, brands)
    assert aimed == classify_toward_brands(classifier, texts, brands, brand_targeting=False)
    # The model reads the first two as complaints; "it vanished" it calls neutral (its miss, no rule's).
    assert [v.label for v in aimed[:2]] == [SentimentLabel.NEGATIVE] * 2
    assert aimed[2].label is not SentimentLabel.POSITIVE
