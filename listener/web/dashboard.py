"""The per-brand dashboard: volume by sentiment over a window, negative share, who is talking."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from alerts.evidence import mention_terms, top_counts
from alerts.state import SpikeMark, read_spikes
from listener.query.tokens import tokenize
from listener.web.brands import brand_names
from listener.web.chart import COLOURS, Span, stacked_bars
from listener.web.render import page
from listener.web.security import Reader
from pipelines.store import Bucket, MentionStore, SearchRequest
from pipelines.store_top import top_values

__all__ = ["WINDOWS", "Summary", "router", "summarise"]

# window name -> (length in seconds, bucket in seconds): 30 to 60 bars each
WINDOWS: dict[str, tuple[int, int]] = {
    "1h": (3600, 120),
    "6h": (6 * 3600, 600),
    "24h": (86400, 1800),
    "7d": (7 * 86400, 4 * 3600),
    "30d": (30 * 86400, 12 * 3600),
}
TERM_SAMPLE = 1000
router = APIRouter()


@dataclass(frozen=True)
class Summary:
    brand: str
    window: str
    start: datetime
    end: datetime
    bucket_seconds: int
    buckets: list[Bucket]
    counts: dict[str, int]
    top: dict[str, list[tuple[str, int]]]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def negative_share(self) -> float:
        scored = self.total - self.counts.get("unscored", 0)
        return self.counts.get("negative", 0) / scored if scored else 0.0


def summarise(store: MentionStore, brand: str, window: str, now: datetime | None = None) -> Summary:
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}")
    length, bucket = WINDOWS[window]
    end = now or datetime.now(UTC)
    start = end - timedelta(seconds=length)
    request = SearchRequest(brand=brand, since=start, until=end, limit=0)
    top: dict[str, list[tuple[str, int]]] = {
        f: top_values(store, request, f, 10) for f in ("source", "site", "author")
    }
    top["term"] = _top_terms(store, request, brand)
    buckets = store.histogram(request, bucket)
    counts = dict.fromkeys(("negative", "neutral", "positive", "unscored"), 0)
    for b in buckets:  # the histogram already counts every label, so no second query
        for label, n in b.counts.items():
            counts[label] = counts.get(label, 0) + n
    return Summary(brand, window, start, end, bucket, buckets, counts, top)


def _top_terms(store: MentionStore, request: SearchRequest, brand: str) -> list[tuple[str, int]]:
    """Words in the newest `TERM_SAMPLE` mentions of the window, each counted once per mention."""
    sample = store.search(replace(request, limit=TERM_SAMPLE))
    exclude = frozenset(tokenize(brand))
    counts: Counter[str] = Counter()
    for hit in sample.hits:
        counts.update(mention_terms(hit.mention, exclude))
    return list(top_counts(counts, 10))


def spikes(request: Request, s: Summary) -> list[SpikeMark]:
    """The detector's spikes in the window, whether or not an incident was opened for them."""
    state = request.app.state.state
    # Embedded: the detector's file, opened read-only so the web app never creates or locks it.
    source = state.db("detector") if state.shared else state.data.file("detector")
    return read_spikes(source, s.brand, s.start.timestamp(), s.end.timestamp())


def spike_spans(request: Request, s: Summary) -> list[Span]:
    out = []
    for spike in spikes(request, s):
        state = "open" if spike.ended is None else "resolved"
        label = (
            f"spike ({state}, {spike.rule}) from {_utc(spike.started):%m-%d %H:%M} UTC: "
            f"up to {spike.peak} negative against {spike.expected:.1f} expected"
        )
        end = None if spike.ended is None else _utc(spike.ended)
        out.append(Span(_utc(spike.started), end, label))
    return out


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _brand(request: Request, brand: str | None) -> str:
    names: list[str] = brand_names(request)
    if brand is None:
        return names[0]
    for name in names:
        if name.casefold() == brand.casefold():
            return name
    raise HTTPException(404, "no such brand")


@router.get("/api/dashboard/{brand}", tags=["dashboard"], summary="Volume, sentiment and top voices")
def api_dashboard(request: Request, _user: Reader, brand: str, window: str = "24h") -> dict[str, Any]:
    name = _brand(request, brand)
    if window not in WINDOWS:
        raise HTTPException(400, f"window must be one of {', '.join(WINDOWS)}")
    s = summarise(request.app.state.store, name, window)
    return {
        "brand": s.brand,
        "window": s.window,
        "start": s.start.isoformat(),
        "end": s.end.isoformat(),
        "bucket_seconds": s.bucket_seconds,
        "counts": s.counts,
        "total": s.total,
        "negative_share": round(s.negative_share, 4),
        "buckets": [{"start": b.start.isoformat(), "counts": b.counts} for b in s.buckets],
        "top": {k: [{"value": v, "count": n} for v, n in rows] for k, rows in s.top.items()},
        "spikes": [
            {
                "alert_id": m.alert_id,
                "rule": m.rule,
                "start": _utc(m.started).isoformat(),
                "end": None if m.ended is None else _utc(m.ended).isoformat(),
                "peak": m.peak,
                "expected": m.expected,
            }
            for m in spikes(request, s)
        ],
    }


@router.get("/", include_in_schema=False)
@router.get("/dashboard", include_in_schema=False)
def dashboard_page(request: Request, _user: Reader, brand: str | None = None, window: str = "24h") -> Any:
    name = _brand(request, brand)
    if window not in WINDOWS:
        window = "24h"
    s = summarise(request.app.state.store, name, window)
    marks = [
        (datetime.fromtimestamp(i.opened_at, UTC), f"incident #{i.id} ({i.state}): {i.observed} negative")
        for i in request.app.state.incidents.find(None, limit=200)
        if i.brand.casefold() == name.casefold()
    ]
    chart = stacked_bars(s.buckets, s.start, s.end, s.bucket_seconds, marks, spike_spans(request, s))
    return page(
        request,
        "dashboard.html",
        summary=s,
        chart=chart,
        windows=list(WINDOWS),
        brands=brand_names(request),
        colours=COLOURS,
    )
