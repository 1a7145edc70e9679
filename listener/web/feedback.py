"""Feedback on a mention: "wrong sentiment" and "not about this brand".

Both kinds are kept in `mention_feedback` (web.db) for rule tuning. A wrong
sentiment that names the right label is also recorded in the classifier's
training corrections (`models.feedback`, `<data_dir>/feedback.db`) when that
module is installed, so `listener feedback export` picks it up.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel

from listener.records import ScoredMention
from listener.statedb import StateDB, ensure_schema, open_state
from listener.web.accounts import User
from listener.web.security import Csrf, FeedbackUser, Reader

__all__ = ["MIGRATIONS", "FeedbackIn", "MentionFeedback", "router"]

log = logging.getLogger(__name__)
router = APIRouter()
Kind = Literal["wrong_sentiment", "not_about_brand"]
_LABELS = ("negative", "neutral", "positive")

# Schema steps, oldest first; never edit a released step, append a new one.
# `user` is reserved in PostgreSQL, so that column is always written quoted.
MIGRATIONS = (
    """
CREATE TABLE IF NOT EXISTS mention_feedback (
    mention_id TEXT NOT NULL,
    brand TEXT NOT NULL,
    kind TEXT NOT NULL,
    label TEXT,
    model_label TEXT,
    note TEXT NOT NULL,
    "user" TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (mention_id, kind, "user")
);
""",
)


class FeedbackIn(BaseModel):
    kind: Kind
    label: Literal["negative", "neutral", "positive"] | None = None
    note: str = ""


class MentionFeedback:
    """The `mention_feedback` table; one row per (mention, kind, user), the latest wins.

    `training` is where wrong-sentiment corrections also go (`models.feedback`):
    a path, or the state database, which PostgreSQL deployments share.
    """

    def __init__(self, db: StateDB | str | Path, training: StateDB | str | Path | None = None) -> None:
        self._db, self._owned = open_state(db)
        ensure_schema(self._db, "mention_feedback", MIGRATIONS)
        self.training = training

    def close(self) -> None:
        if self._owned:
            self._db.close()

    def record(self, mention: ScoredMention, body: FeedbackIn, user: str) -> None:
        self._db.execute(
            'INSERT INTO mention_feedback (mention_id, brand, kind, label, model_label, note, "user", at)'
            ' VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (mention_id, kind, "user") DO UPDATE SET'
            " brand = excluded.brand, label = excluded.label, model_label = excluded.model_label,"
            " note = excluded.note, at = excluded.at",
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
        if body.kind == "wrong_sentiment" and body.label is not None:
            self._train(mention, body.label, user)

    def _train(self, mention: ScoredMention, label: str, user: str) -> None:
        if self.training is None:
            return
        try:
            from models.feedback import Correction, FeedbackStore
        except ImportError:  # the training corrections module is optional here
            return
        store = FeedbackStore(self.training)
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
        rows = self._db.execute(
            'SELECT kind, label, model_label, note, "user", at FROM mention_feedback WHERE mention_id = ?'
            " ORDER BY at",
            (mention_id,),
        ).rows
        return [row.as_dict() for row in rows]


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
