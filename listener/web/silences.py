"""Silences over the API: responders mute a brand (or one rule) during a known outage.

The same `silences.db` the CLI and the Slack "Mute 1h" button write, so a
silence made anywhere is honoured by the notify path and listed everywhere.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from alerts.silences import Silence, SilenceStore
from listener.config import parse_duration
from listener.errors import IncidentError
from listener.web.accounts import User
from listener.web.brands import brand_names
from listener.web.security import Csrf, Reader, require

__all__ = ["router"]

router = APIRouter()
Responder = Annotated[User, Depends(require("incidents"))]


class SilenceIn(BaseModel):
    brand: str
    duration: str = Field(description="how long, e.g. 30m, 2h, 1d")
    rule: str | None = Field(default=None, description="one rule only; all of the brand's rules if absent")
    reason: str = ""


def _store(request: Request) -> SilenceStore:
    return SilenceStore(request.app.state.state.db("silences"))


def _json(silence: Silence, now: float) -> dict[str, Any]:
    return asdict(silence) | {"active": silence.active(now)}


@router.get("/api/silences", tags=["silences"], summary="Active silences (or all, with include_expired)")
def api_list(request: Request, _user: Reader, include_expired: bool = False) -> list[dict[str, Any]]:
    store, now = _store(request), time.time()
    try:
        return [_json(s, now) for s in store.listed(now=now, include_expired=include_expired)]
    finally:
        store.close()


@router.post(
    "/api/silences", tags=["silences"], summary="Mute a brand or rule for a while", dependencies=Csrf
)
def api_add(request: Request, user: Responder, body: SilenceIn) -> dict[str, Any]:
    brand = next((b for b in brand_names(request) if b.casefold() == body.brand.casefold()), None)
    if brand is None:
        raise HTTPException(404, "no such brand")
    try:
        seconds = parse_duration(body.duration)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    store, now = _store(request), time.time()
    try:
        made = store.add(brand, seconds, now=now, by=user.name, rule=body.rule, reason=body.reason)
    except IncidentError as exc:
        raise HTTPException(400, str(exc)) from None
    finally:
        store.close()
    return _json(made, now)


@router.delete("/api/silences/{silence_id}", tags=["silences"], summary="End a silence", dependencies=Csrf)
def api_remove(request: Request, _user: Responder, silence_id: int) -> dict[str, Any]:
    store, now = _store(request), time.time()
    try:
        return _json(store.remove(silence_id, now=now), now)
    except IncidentError as exc:
        raise HTTPException(404, str(exc)) from None
    finally:
        store.close()
