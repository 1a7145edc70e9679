"""Feedback on a mention: "wrong sentiment" and "not about this brand".

Both kinds are kept in `mention_feedback` (web.db) for rule tuning. A wrong
sentiment that names the right label is also recorded in the classifier's
training corrections (`models.feedback`, `<data_dir>/feedback.db`) when that
module is installed, so `listener feedback export` picks it up.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel

from listener.records import ScoredMention
from listener.web.accounts import User
from listener.web.security import Csrf, FeedbackUser, Reader

__all__ = ["FeedbackIn", "MentionFeedback", "router"]

log = logging.getLogger(__name__)
router = APIRouter()
Kind = Literal["wrong_sentiment", "not_about_brand"]
_LABELS = ("negative", "neutral", "positive")


class FeedbackIn(BaseModel):
    kind: Kind
    label: Literal["negative", "neutral", "positive"] | None = None
    note: str = ""


class MentionFeedback:
    """The `mention_feedback` table; one row per (mention, kind, user), the latest wins."""

    def __init__(self, path: Path, training_path: Path | None = None) -> None:
        self.path = path
        self.training_path = training_path
        with self._db() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS mention_feedback (mention_id TEXT NOT NULL, brand TEXT NOT NULL,"
                " kind TEXT NOT NULL, label TEXT, model_label TEXT, note TEXT NOT NULL, user TEXT NOT NULL,"
                " at REAL NOT NULL, PRIMARY KEY (mention_id, kind, user))"
            )

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def record(self, mention: ScoredMention, body: FeedbackIn, user: str) -> None:
        db = self._db()
        try:
            with db:
                db.execute(
                    "INSERT OR REPLACE INTO mention_feedback VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        mention.id,
                        mention.brand,
                        body.kind,
                        body.label,
                        mention.sentiment.label.value,
                        body.note[:2000],
                        user,
                        time.time(),
                    ),
                )
        finally:
            db.close()
        if body.kind == "wrong_sentiment" and body.label is not None:
            self._train(mention, body.label, user)

    def _train(self, mention: ScoredMention, label: str, user: str) -> None:
        if self.training_path is None:
            return
        try:
            from models.feedback import Correction, FeedbackStore
        except ImportError:  # the training corrections module is optional here
            return
        store = FeedbackStore(self.training_path)
        try:
            store.record(
                Correction(
                    mention_id=mention.id,
                    brand=mention.brand,
                    text=mention.text,
                    label=label,
                    model_label=mention.sentiment.label.value,
                    model_id=mention.sentiment.model_id,
                    model_version=mention.sentiment.model_version,
                    corrected_by=user,
                )
            )
        finally:
            store.close()

    def for_mention(self, mention_id: str) -> list[dict[str, Any]]:
        db = self._db()
        try:
            rows = db.execute(
                "SELECT kind, label, model_label, note, user, at FROM mention_feedback WHERE mention_id = ?"
                " ORDER BY at",
                (mention_id,),
            ).fetchall()
        finally:
            db.close()
        keys = ("kind", "label", "model_label", "note", "user", "at")
        return [dict(zip(keys, row, strict=True)) for row in rows]


def _save(request: Request, mention_id: str, body: FeedbackIn, user: User) -> None:
    mention = request.app.state.store.get(mention_id)
    if mention is None:
        raise HTTPException(404, "no such mention")
    if body.kind == "wrong_sentiment" and body.label is None:
        raise HTTPException(400, "say which sentiment is right (label)")
    request.app.state.feedback.record(mention, body, user.name)


@router.post(
    "/api/mentions/{mention_id}/feedback",
    tags=["feedback"],
    status_code=201,
    summary="Report a wrong sentiment or a mention not about its brand",
    dependencies=Csrf,
)
def api_feedback(request: Request, user: FeedbackUser, mention_id: str, body: FeedbackIn) -> dict[str, str]:
    _save(request, mention_id, body, user)
    return {"status": "recorded"}


@router.get("/api/mentions/{mention_id}/feedback", tags=["feedback"], summary="Feedback given on a mention")
def api_list(request: Request, _user: Reader, mention_id: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = request.app.state.feedback.for_mention(mention_id)
    return result


@router.post("/mentions/{mention_id}/feedback", include_in_schema=False, dependencies=Csrf)
async def form_feedback(request: Request, user: FeedbackUser, mention_id: str) -> Any:
    form = await request.form()
    kind, label = str(form.get("kind", "")), str(form.get("label", "")) or None
    if kind not in ("wrong_sentiment", "not_about_brand") or (label is not None and label not in _LABELS):
        raise HTTPException(400, "unknown feedback")
    _save(request, mention_id, FeedbackIn.model_validate({"kind": kind, "label": label}), user)
    back = str(form.get("back", "/search"))
    return RedirectResponse(
        back if back.startswith("/") and not back.startswith("//") else "/search", status_code=303
    )
