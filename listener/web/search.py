"""Search: the page, the JSON API and CSV/JSON export, over one request builder.

The query language is the CLI's; a syntax error comes back with the same
caret rendering and column. `site:` and `lang:` filters from the form are
added to the parsed query as field nodes, so every store back end applies
them the way it applies the query language's own field filters.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from listener.config import parse_duration
from listener.errors import QuerySyntaxError
from listener.query.ast import And, Field, Node
from listener.query.matcher import normalise_field
from listener.query.parser import parse
from listener.web.brands import brand_names
from listener.web.render import clean_text, page
from listener.web.security import Reader
from pipelines.store import SHOWN_COUNT_LIMIT, Hit, MentionStore, SearchRequest

__all__ = ["COUNT_LIMIT", "EXPORT_LIMIT", "BadSearch", "SearchParams", "build_request", "hit_json", "router"]

EXPORT_LIMIT = 50_000
PER_PAGE = 20
COUNT_LIMIT = SHOWN_COUNT_LIMIT  # past it the page and the API say "10,000+"
router = APIRouter()


@dataclass
class SearchParams:
    """The search form's fields, as strings, exactly as the user sent them."""

    q: str = ""
    brand: str = ""
    sentiment: str = ""
    source: str = ""
    site: str = ""
    lang: str = ""
    since: str = ""
    until: str = ""
    order: str = "newest"
    page: int = 1
    stories: bool = False


class BadSearch(ValueError):
    """A search the user has to correct; `caret` is the rendered query error, if any."""

    def __init__(self, message: str, caret: str = "", column: int | None = None) -> None:
        super().__init__(message)
        self.caret = caret
        self.column = column


def _moment(text: str, name: str, now: datetime) -> datetime | None:
    """`7d`/`2h` means that long ago; otherwise an ISO date or date-time (UTC if no zone)."""
    text = text.strip()
    if not text:
        return None
    try:
        return now - timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadSearch(
            f"{name} must be a duration such as 7d or 24h, or a date such as 2026-11-01"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _query(params: SearchParams) -> Node | None:
    try:
        node = parse(params.q) if params.q.strip() else None
    except QuerySyntaxError as exc:
        raise BadSearch(exc.message, exc.render(), exc.column) from None
    fields: list[Node] = []
    if params.site.strip():
        fields.append(Field("site", normalise_field("site", params.site)))
    if params.lang.strip():
        fields.append(Field("lang", normalise_field("lang", params.lang)))
    parts = ([node] if node is not None else []) + fields
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def build_request(params: SearchParams, *, limit: int = PER_PAGE, offset: int | None = None) -> SearchRequest:
    """Raises `BadSearch` with a message for the user; never lets bad input reach the store."""
    now = datetime.now(UTC)
    if params.sentiment and params.sentiment not in ("negative", "neutral", "positive", "unscored"):
        raise BadSearch("sentiment must be negative, neutral, positive or unscored")
    if params.order not in ("newest", "relevance"):
        raise BadSearch("order must be newest or relevance")
    since, until = _moment(params.since, "since", now), _moment(params.until, "until", now)
    if since and until and since > until:
        raise BadSearch("since is after until")
    page_no = max(1, params.page)
    return SearchRequest(
        query=_query(params),
        brand=params.brand.strip() or None,
        sentiment=params.sentiment or None,
        source=params.source.strip() or None,
        since=since,
        until=until,
        order="relevance" if params.order == "relevance" else "newest",
        limit=limit,
        offset=(page_no - 1) * limit if offset is None else offset,
        collapse_story=params.stories,
        count_limit=COUNT_LIMIT,
    )


def hit_json(hit: Hit) -> dict[str, Any]:
    m = hit.mention
    return {
        "id": m.id,
        "brand": m.brand,
        "sentiment": m.sentiment.label.value,
        "source": m.source,
        "site": m.site,
        "author": m.author,
        "language": m.language,
        "published": m.published.isoformat(),
        "title": m.title,
        "url": m.url,
        "text": m.text,
        "snippet": hit.snippet,
        "score": hit.score,
        "story_members": hit.members,
    }


def _params(
    q: str = "",
    brand: str = "",
    sentiment: str = "",
    source: str = "",
    site: str = "",
    lang: str = "",
    since: str = "",
    until: str = "",
    order: str = "newest",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    stories: bool = False,
) -> SearchParams:
    """`stories=1` collapses near-duplicates (reposts, syndicated copies) to one hit per story."""
    return SearchParams(q, brand, sentiment, source, site, lang, since, until, order, page, stories)


Params = Annotated[SearchParams, Depends(_params)]


def _bad(exc: BadSearch) -> JSONResponse:
    body: dict[str, Any] = {"detail": str(exc)}
    if exc.caret:
        body.update(caret=exc.caret, column=exc.column)
    return JSONResponse(body, status_code=400)


@router.get("/api/search", tags=["search"], summary="Search stored mentions with the query language")
def api_search(
    request: Request,
    _user: Reader,
    params: Params,
    per_page: Annotated[int, Query(ge=1, le=500)] = PER_PAGE,
) -> Any:
    store: MentionStore = request.app.state.store
    try:
        result = store.search(build_request(params, limit=per_page))
    except BadSearch as exc:
        return _bad(exc)
    return {
        "total": result.total,
        "total_at_least": result.total_at_least,  # total is a lower bound (COUNT_LIMIT reached)
        "page": params.page,
        "per_page": per_page,
        "hits": [hit_json(h) for h in result.hits],
    }


@router.get("/search", include_in_schema=False)
def search_page(request: Request, _user: Reader, params: Params) -> Any:
    store: MentionStore = request.app.state.store
    error: BadSearch | None = None
    result = None
    try:
        result = store.search(build_request(params))
    except BadSearch as exc:
        error = exc
    pages = 0 if result is None else (result.total + PER_PAGE - 1) // PER_PAGE
    return page(
        request,
        "search.html",
        status_code=400 if error else 200,
        params=params,
        result=result,
        error=error,
        pages=pages,
        brands=brand_names(request),
        query_string=_query_string(params),
    )


def _query_string(params: SearchParams) -> str:
    from urllib.parse import urlencode

    fields = {k: v for k, v in vars(params).items() if k != "page" and v}
    return urlencode(fields)


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    """Text a spreadsheet will not run: a leading formula character gets a quote."""
    text = "" if value is None else clean_text(str(value))
    return "'" + text if text.startswith(_FORMULA) else text


def _all_hits(store: MentionStore, request: SearchRequest) -> Iterator[Hit]:
    offset = 0
    while offset < EXPORT_LIMIT:
        chunk = store.search(SearchRequest(**{**_fields(request), "limit": 500, "offset": offset}))
        yield from chunk.hits
        if len(chunk.hits) < 500:
            return
        offset += 500


def _fields(request: SearchRequest) -> dict[str, Any]:
    return {name: getattr(request, name) for name in SearchRequest.__dataclass_fields__}


@router.get("/api/search/export", tags=["search"], summary="Every matching mention as CSV or JSON lines")
def export(
    request: Request,
    _user: Reader,
    params: Params,
    format: Literal["csv", "json"] = "csv",
) -> Response:
    store: MentionStore = request.app.state.store
    try:
        search = build_request(params)
    except BadSearch as exc:
        return _bad(exc)
    columns = [
        "id",
        "published",
        "brand",
        "sentiment",
        "source",
        "site",
        "author",
        "language",
        "title",
        "url",
        "text",
    ]

    def rows() -> Iterator[str]:
        if format == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(columns)
            for hit in _all_hits(store, search):
                row = hit_json(hit)
                writer.writerow([_cell(row[c]) for c in columns])
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
            yield buffer.getvalue()
        else:
            for hit in _all_hits(store, search):
                yield json.dumps(hit_json(hit), ensure_ascii=False) + "\n"

    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    name = "mentions.csv" if format == "csv" else "mentions.jsonl"
    return StreamingResponse(
        rows(), media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
