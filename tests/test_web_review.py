"""An analyst labels the mentions the model was least sure of, and the corrections reach training."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from listener.records import ScoredMention, Sentiment, SentimentLabel
from models.feedback import FeedbackStore
from tests.store_contract import make_mention
from tests.webapp import WebWorld, csrf_of, make_world, recent


@pytest.fixture
def world(tmp_path: Path) -> Iterator[WebWorld]:
    yield from make_world(tmp_path)


def scored(text: str, key: str, negative: float, neutral: float, positive: float) -> ScoredMention:
    probabilities = {"negative": negative, "neutral": neutral, "positive": positive}
    label = SentimentLabel(max(probabilities, key=lambda k: probabilities[k]))
    sentiment = Sentiment(label=label, model_id="minilm-lora-tweeteval", model_version="2-test",
                          **probabilities)
    mention = make_mention(text, key=key, brand="Acme", published=recent(30))
    return mention.model_copy(update={"sentiment": sentiment})


def test_the_closest_calls_come_first_escaped_and_leave_once_corrected(world: WebWorld) -> None:
    world.store.upsert([
        scored("acme support fixed it in minutes, thanks", "sure", 0.01, 0.02, 0.97),
        scored("<script>alert('x')</script> acme launch is sick", "coin-toss", 0.41, 0.38, 0.21),
        scored("acme price went up a bit", "leaning", 0.60, 0.30, 0.10),
        make_mention("acme est super", key="unscored", brand="Acme", published=recent(10),
                     label="unscored"),
    ])
    analyst = world.user("maya", "viewer")

    listed = analyst.get("/api/review").json()
    assert [row["text"][:11] for row in listed] == ["<script>ale", "acme price ", "acme suppor"]
    assert [row["margin"] for row in listed] == [0.03, 0.3, 0.95]

    page = analyst.get("/review", params={"brand": "Acme"})
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "&lt;script&gt;" in page.text
    assert page.text.index("launch is sick") < page.text.index("price went up") < page.text.index("fixed it")
    assert "margin 0.03" in page.text and 'value="wrong_sentiment"' in page.text

    coin_toss = listed[0]["id"]
    answer = analyst.post(f"/mentions/{coin_toss}/feedback", data={
        "csrf": csrf_of(page.text), "kind": "wrong_sentiment", "label": "positive",
        "back": "/review?brand=Acme&days=7"})
    assert answer.status_code == 303 and answer.headers["location"] == "/review?brand=Acme&days=7"

    store = FeedbackStore(world.config.data_dir / "feedback.db")
    (correction,) = list(store.corrections("Acme"))
    store.close()
    assert (correction.label, correction.model_label) == ("positive", "negative")
    assert correction.corrected_by == "maya"
    assert [row["id"] for row in analyst.get("/api/review").json()] == [listed[1]["id"], listed[2]["id"]]
