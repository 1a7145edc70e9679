"""Watch terms from the browser: validate, preview against history, save as a new version.

Every save is a new row (brand, queries, who, when) in `listener.watch_versions`;
the monitor's match stage picks the newest version up within seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from listener.config import BrandConfig
from listener.errors import QuerySyntaxError
from listener.query.parser import parse, parse_watch_query
from listener.web.accounts import User
from listener.web.brands import brand_configs, edit_context, find_brand
from listener.web.render import page
from listener.web.search import hit_json
from listener.web.security import Csrf, EditorUser, Reader, current_user
from pipelines.store import MentionStore, SearchRequest, SearchResult

__all__ = ["Problem", "edit_response", "list_rows", "router", "validate"]

MAX_QUERIES = 200
router = APIRouter()


@dataclass(frozen=True)
class Problem:
    line: int
    message: str
    caret: str
    column: int


def validate(queries: list[str]) -> list[Problem]:
    """Every query that is not a valid watch query, by 1-based line."""
    problems: list[Problem] = []
    for line, text in enumerate(queries, 1):
        try:
            parse_watch_query(text)
        except QuerySyntaxError as exc:
            problems.append(Problem(line, exc.message, exc.render(), exc.column))
    if not queries:
        problems.append(Problem(0, "a brand needs at least one watch query", "", 0))
    if len(queries) > MAX_QUERIES:
        problems.append(Problem(0, f"at most {MAX_QUERIES} queries per brand", "", 0))
    return problems


def _search_problems(text: str) -> list[Problem]:
    try:
        parse(text)
    except QuerySyntaxError as exc:
        return [Problem(1, exc.message, exc.render(), exc.column)]
    return []


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def preview(store: MentionStore, queries: list[str], days: int = 7, limit: int = 20) -> SearchResult:
    """What these queries would have matched in stored history (any brand) over the last `days`."""
    from listener.query.ast import Or

    nodes = tuple(parse(q) for q in queries)
    node = nodes[0] if len(nodes) == 1 else Or(nodes)
    since = datetime.now(UTC) - timedelta(days=days)
    return store.search(SearchRequest(query=node, since=since, limit=limit))


def _brand(request: Request, brand: str) -> tuple[str, list[str]]:
    cfg = find_brand(request, brand)
    return cfg.name, list(cfg.queries)


def _may_edit(user: User, brand: str) -> None:
    if not user.may_edit_brand(brand):
        raise HTTPException(403, f"your account may not edit {brand}'s watch terms")


class WatchTermsIn(BaseModel):
    queries: list[str] = Field(description="one watch query per item, in the CLI's query language")


@router.get("/api/query/check", tags=["watch terms"], summary="Validate one watch query")
def api_check(_user: Reader, q: str, watch: bool = True) -> dict[str, Any]:
    """`watch=false` checks a search query, which may be NOT or field filters alone."""
    problems = validate([q]) if watch else _search_problems(q)
    if not problems:
        return {"ok": True}
    return {
        "ok": False,
        "message": problems[0].message,
        "caret": problems[0].caret,
        "column": problems[0].column,
    }


@router.get("/api/watch-terms/{brand}", tags=["watch terms"], summary="A brand's queries and history")
def api_get(request: Request, _user: Reader, brand: str) -> dict[str, Any]:
    name, queries = _brand(request, brand)
    history = request.app.state.watch_terms.history(name)
    return {
        "brand": name,
        "queries": queries,
        "history": [{"queries": v.queries, "author": v.author, "at": v.at.isoformat()} for v in history],
    }


@router.put(
    "/api/watch-terms/{brand}",
    tags=["watch terms"],
    summary="Save a new version of a brand's queries",
    dependencies=Csrf,
)
def api_put(request: Request, user: EditorUser, brand: str, body: WatchTermsIn) -> Any:
    name, _ = _brand(request, brand)
    _may_edit(user, name)
    queries = [q.strip() for q in body.queries if q.strip()]
    problems = validate(queries)
    if problems:
        raise HTTPException(400, [p.__dict__ for p in problems])
    version = request.app.state.watch_terms.save(name, queries, user.name)
    return {"brand": name, "queries": version.queries, "author": version.author, "at": version.at.isoformat()}


@router.get("/api/watch-terms/{brand}/preview", tags=["watch terms"], summary="Matches in the last days")
def api_preview(request: Request, _user: Reader, brand: str, q: str, days: int = 7) -> Any:
    _brand(request, brand)
    problems = validate([q])
    if problems:
        raise HTTPException(400, [p.__dict__ for p in problems])
    result = preview(request.app.state.store, [q], days=max(1, min(days, 365)))
    return {"total": result.total, "days": days, "hits": [hit_json(h) for h in result.hits]}


def list_rows(request: Request) -> list[dict[str, Any]]:
    from listener.web.brand_alerting import is_archived

    rows = []
    for cfg in brand_configs(request):
        history = request.app.state.watch_terms.history(cfg.name)
        last = history[0] if history else None
        archived = is_archived(request, cfg.name)
        rows.append({"brand": cfg.name, "queries": list(cfg.queries), "last": last, "archived": archived})
    return rows


@router.get("/watch-terms", include_in_schema=False)
def list_page(request: Request, _user: Reader) -> Any:
    return page(request, "watch_terms.html", rows=list_rows(request), field_errors={})


def edit_response(request: Request, cfg: BrandConfig, *, text: str | None = None, **extra: Any) -> Any:
    """The brand page: queries (with `text` as typed), alert rule, sources and history."""
    user = current_user(request)
    status = extra.pop("status_code", 200)
    return page(
        request,
        "watch_edit.html",
        status_code=status,
        brand=cfg.name,
        text="\n".join(cfg.queries) if text is None else text,
        history=request.app.state.watch_terms.history(cfg.name),
        editable=user.may_edit_brand(cfg.name),
        **edit_context(request, cfg, **extra),
    )


def _edit(request: Request, name: str, text: str, **extra: Any) -> Any:
    return edit_response(request, find_brand(request, name), text=text, **extra)


@router.get("/watch-terms/{brand}", include_in_schema=False)
def edit_page(request: Request, _user: Reader, brand: str) -> Any:
    name, queries = _brand(request, brand)
    return _edit(request, name, "\n".join(queries))


@router.post("/watch-terms/{brand}", include_in_schema=False, dependencies=Csrf)
async def edit_submit(request: Request, user: EditorUser, brand: str) -> Any:
    name, _ = _brand(request, brand)
    _may_edit(user, name)
    form = await request.form()
    text = str(form.get("queries", ""))
    queries = _lines(text)
    problems = validate(queries)
    if problems:
        return _edit(request, name, text, problems=problems, status_code=400)
    if form.get("action") == "preview":
        result = preview(request.app.state.store, queries)
        return _edit(request, name, text, preview=result)
    request.app.state.watch_terms.save(name, queries, user.name)
    return RedirectResponse(f"/watch-terms/{name}?saved=1", status_code=303)
