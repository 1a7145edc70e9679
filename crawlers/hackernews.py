"""Hacker News stories and comments through the public Algolia search API.

`GET {base}/search_by_date?query=...&tags=(story,comment)&numericFilters=created_at_i>=T&page=N`
returns hits newest first, `hitsPerPage` at a time, with `nbPages` telling how
far paging goes (https://hn.algolia.com/api). The cursor is the newest
`created_at_i` already committed; asking from that second again (>=) costs a
few repeats, which the seen-item memory drops, and never misses a hit that
arrived in the same second.

Limits: no key needed; Algolia allows about 10,000 requests an hour per IP.
"""

from __future__ import annotations

from typing import Any

from crawlers.api_source import ApiSource, Batch, as_list, parse_time, plain_text
from crawlers.factory import register_source
from crawlers.state import FetchState
from listener.config import HackerNewsSourceConfig, Limits
from listener.records import Document

__all__ = ["HackerNewsSource"]

ITEM_URL = "https://news.ycombinator.com/item?id={}"


class HackerNewsSource(ApiSource):
    source_type = "hackernews"

    def __init__(self, config: HackerNewsSourceConfig, limits: Limits, state: FetchState, **kw: Any) -> None:
        super().__init__(config.name, config.poll_interval, limits, state, **kw)
        self.config = config

    @classmethod
    def from_config(
        cls, config: HackerNewsSourceConfig, limits: Limits, state: FetchState
    ) -> HackerNewsSource:
        return cls(config, limits, state)

    def fetch(self, cursor: str | None) -> Batch:
        url = f"{self.config.base_url}/search_by_date"
        params: dict[str, Any] = {
            "query": self.config.query,
            "tags": "(" + ",".join(self.config.tags) + ")",
            "hitsPerPage": self.config.hits_per_page,
        }
        if cursor:
            params["numericFilters"] = f"created_at_i>={int(cursor)}"
        documents: list[Document] = []
        newest = int(cursor) if cursor else 0
        ceiling = int(self._now().timestamp()) + _FUTURE_SLACK
        for page in range(self.config.max_pages):
            response = self.client.get(url, params={**params, "page": page})
            hits = as_list(response.data, "hits", url=url)
            documents.extend(self.convert_all(hits, self._document))
            newest = max([newest, *(_stamp(hit, ceiling) for hit in hits)])
            pages = response.data.get("nbPages")
            if not hits or not isinstance(pages, int) or page + 1 >= pages:
                break
        return Batch(documents, str(newest) if newest else None)

    def _document(self, hit: dict[str, Any]) -> Document | None:
        object_id = str(hit["objectID"])
        tags = hit.get("_tags") or []
        is_comment = "comment" in tags or hit.get("comment_text")
        title = None if is_comment else plain_text(hit.get("title"))
        body = plain_text(hit.get("comment_text") if is_comment else hit.get("story_text"))
        if is_comment and hit.get("story_title"):
            title = f"Re: {plain_text(hit.get('story_title'))}"
        text = body if is_comment else "\n\n".join(part for part in (title, body) if part)
        return self.document(
            object_id,
            text=text,
            title=title,
            url=ITEM_URL.format(object_id),
            author=hit.get("author"),
            published=parse_time(hit.get("created_at_i")) or parse_time(hit.get("created_at")),
            engagement={"score": hit.get("points"), "replies": hit.get("num_comments")},
        )


# A hit stamped later than this past the fetch time is not believed: as the cursor, it would
# make every later poll ask for items from the far future, and so see nothing again.
_FUTURE_SLACK = 86_400


def _stamp(hit: Any, ceiling: int) -> int:
    value = hit.get("created_at_i") if isinstance(hit, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value <= ceiling else 0


register_source(HackerNewsSourceConfig)(HackerNewsSource.from_config)
