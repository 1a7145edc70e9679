"""Source health over the API: a silent source looks exactly like a quiet brand, so show it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from crawlers.health_report import source_health
from listener.web.security import Reader

__all__ = ["router"]

router = APIRouter()


@router.get("/api/sources", tags=["sources"], summary="Health of every configured source")
def api_sources(request: Request, _user: Reader, window: float = 86400.0) -> dict[str, Any]:
    """The same rows as `listener sources status --json`: last success and error, items per hour,
    error rate, publication-to-arrival lag, and flags (failing, silent, stale) where they apply."""
    rows = source_health(request.app.state.config, window=window)
    return {"sources": rows, "flagged": [row["source"] for row in rows if row["flags"]]}
