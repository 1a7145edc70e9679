"""Mentions the model was least sure of, for the team to label.

A correction teaches the most where the model hesitated: a verdict with
probabilities 0.41/0.38/0.21 is nearly a coin toss, one with 0.97 is not. The
page reads the newest scored mentions of the window (at most `SCAN` of them),
ranks them by margin (highest probability minus the runner-up) and lists the
closest calls not yet corrected, each with the usual "wrong sentiment" buttons,
whose corrections feed `listener train --from-feedback`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from listener.records import ScoredMention
from listener.web.brands import brand_names
from listener.web.render import page
from listener.web.security import Reader
from pipelines.store import Hit, MentionStore, SearchRequest

__all__ = ["least_sure", "margin", "router"]

SCAN = 500  # newest scored mentions ranked per request: bounded work, however busy the brand
SHOWN = 20
router = APIRouter()


def margin(mention: ScoredMention) -> float:
    """Highest class probability minus the runner-up: 0 is a coin toss, 1 is certainty."""
    s = mention.sentiment
    top, second = sorted((s.negative, s.neutral, s.positive), reverse=True)[:2]
    return top - second


def least_sure(request: Request, brand: str | None, days: int) -> list[ScoredMention]:
    store: MentionStore = request.app.state.store
    since = datetime.now(UTC) - timedelta(days=days)
    hits = store.search(SearchRequest(brand=brand, since=since, limit=SCAN)).hits
    scored = [h.mention for h in hits if h.mention.sentiment.label.value != "unscored"]
    shown: list[ScoredMention] = []
    for mention in sorted(scored, key=margin):
        corrected = request.app.state.feedback.for_mention(mention.id)
        if not any(row["kind"] == "wrong_sentiment" for row in corrected):
            shown.append(mention)
        if len(shown) == SHOWN:
            break
    return shown


@router.get("/api/review", tags=["feedback"], summary="The scored mentions the model was least sure of")
def api_review(request: Request, _user: Reader, brand: str = "",
               days: Annotated[int, Query(ge=1, le=90)] = 7) -> list[dict[str, Any]]:
    return [{"id": m.id, "brand": m.brand, "text": m.text, "label": m.sentiment.label.value,
             "margin": round(margin(m), 4), "model_version": m.sentiment.model_version}
            for m in least_sure(request, brand or None, days)]


@router.get("/review", include_in_schema=False)
def review_page(request: Request, _user: Reader, brand: str = "",
                days: Annotated[int, Query(ge=1, le=90)] = 7) -> Any:
    mentions = least_sure(request, brand or None, days)
    return page(request, "review.html", hits=[Hit(mention=m) for m in mentions],
                margins=[margin(m) for m in mentions], brand=brand, days=days,
                brands=brand_names(request), scan=SCAN)
