"""App Store customer reviews of one app, from Apple's public review feed.

`GET {base}/{country}/rss/customerreviews/page={n}/id={app_id}/sortby=mostrecent/json`
returns up to 50 reviews per page, newest first, pages 1 to 10 (Apple serves no
more than 500 reviews per country). Each entry carries the reviewer, a title,
the text, a star rating (`im:rating`), the app version and helpful-vote counts.
The feed collapses a one-review page into an object instead of a list, and
older responses led with an entry describing the app itself (no rating):
both are handled.

The cursor is the newest `updated` time committed; paging stops at a page that
reaches back past it. Limits: undocumented; hourly polls are plenty for reviews.
"""

from __future__ import annotations

from typing import Any

from crawlers.api_source import ApiSource, Batch, as_list, parse_time
from crawlers.factory import register_source
from crawlers.state import FetchState
from listener.config import AppStoreSourceConfig, Limits
from listener.records import Document

__all__ = ["AppStoreSource"]


class AppStoreSource(ApiSource):
    source_type = "appstore"

    def __init__(self, config: AppStoreSourceConfig, limits: Limits, state: FetchState, **kw: Any) -> None:
        super().__init__(config.name, config.poll_interval, limits, state, **kw)
        self.config = config

    @classmethod
    def from_config(cls, config: AppStoreSourceConfig, limits: Limits, state: FetchState) -> AppStoreSource:
        return cls(config, limits, state)

    def page_url(self, page: int) -> str:
        c = self.config
        path = f"rss/customerreviews/page={page}/id={c.app_id}/sortby=mostrecent/json"
        return f"{c.base_url}/{c.country}/{path}"

    def fetch(self, cursor: str | None) -> Batch:
        since = parse_time(cursor)
        reviews: list[Any] = []
        for page in range(1, self.config.max_pages + 1):
            url = self.page_url(page)
            data = self.client.get(url).data
            entries = [e for e in _entries(data, url) if _label(e, "im:rating")]
            reviews.extend(entries)
            times = [t for t in (parse_time(_label(e, "updated")) for e in entries) if t]
            if not entries or (since and times and min(times) <= since):
                break
        stamps = [t for t in (parse_time(_label(e, "updated")) for e in reviews) if t]
        newest = max([*stamps, *([since] if since else [])], default=None)
        return Batch(self.convert_all(reviews, self._document), newest.isoformat() if newest else cursor)

    def _document(self, entry: dict[str, Any]) -> Document | None:
        review_id = _label(entry, "id")
        if not review_id:
            raise KeyError("id")
        title = _label(entry, "title")
        body = _label(entry, "content") or ""
        link = ((entry.get("link") or {}).get("attributes") or {}).get("href")
        return self.document(
            f"{self.config.country}:{review_id}",
            text="\n\n".join(p for p in (title, body) if p),
            title=title,
            url=link,
            author=_label(entry.get("author") or {}, "name"),
            published=parse_time(_label(entry, "updated")),
            engagement={
                "rating": _label(entry, "im:rating"),
                "score": _label(entry, "im:voteSum"),
                "likes": _label(entry, "im:voteCount"),
            },
        )


def _entries(data: Any, url: str) -> list[Any]:
    """A page past the last review has a `feed` with no `entry` at all."""
    feed = as_list(data, "feed", url=url)[0]
    return as_list(feed, "entry", url=url) if "entry" in feed else []


def _label(node: Any, key: str) -> str | None:
    value = node.get(key) if isinstance(node, dict) else None
    label = value.get("label") if isinstance(value, dict) else None
    return label if isinstance(label, str) else None


register_source(AppStoreSourceConfig)(AppStoreSource.from_config)
