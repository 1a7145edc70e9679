"""Mastodon statuses from any instance: hashtag timelines, and search with an access token.

* `GET {instance}/api/v1/timelines/tag/{tag}?limit=40&min_id=...` is public on
  most instances (some require a token: set `access_token`).
* `GET {instance}/api/v2/search?q=...&type=statuses&min_id=...` needs a user
  token; without one Mastodon returns no statuses, so `query` without
  `access_token` is refused at start-up rather than silently empty.

Paging follows the `Link` header: with `min_id=<cursor>` the instance returns
the statuses just after the cursor, and `rel="prev"` points at the next newer
page; the walk stops at an empty page or `max_pages`. The first poll reads only
the newest page (a backlog of years is not news). The cursor is the newest
status id per timeline; ids are snowflakes, compared as integers.

Limits: 300 requests per 5 minutes per account or IP by default.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from requests.utils import parse_header_links

from crawlers.api_source import ApiSource, Batch, as_list, parse_time, plain_text
from crawlers.factory import register_source
from crawlers.state import FetchState
from crawlers.text import language_tag
from listener.config import Limits, MastodonSourceConfig
from listener.errors import ConfigError, SourceError
from listener.records import Document

__all__ = ["MastodonSource"]


class MastodonSource(ApiSource):
    source_type = "mastodon"

    def __init__(self, config: MastodonSourceConfig, limits: Limits, state: FetchState, **kw: Any) -> None:
        if config.query and config.access_token is None:
            raise ConfigError([f"source {config.name!r}: query: Mastodon search needs access_token"])
        if not config.query and not config.hashtags:
            raise ConfigError([f"source {config.name!r}: give hashtags, or a query with an access_token"])
        super().__init__(config.name, config.poll_interval, limits, state, **kw)
        self.config = config

    @classmethod
    def from_config(cls, config: MastodonSourceConfig, limits: Limits, state: FetchState) -> MastodonSource:
        return cls(config, limits, state)

    def fetch(self, cursor: str | None) -> Batch:
        marks: dict[str, str] = json.loads(cursor) if cursor else {}
        documents: list[Document] = []
        for stream, url, params in self._streams():
            statuses, newest = self._walk(url, params, marks.get(stream))
            documents.extend(self.convert_all(statuses, self._document))
            if newest:
                marks[stream] = newest
        return Batch(documents, json.dumps(marks, sort_keys=True))

    def _streams(self) -> list[tuple[str, str, dict[str, Any]]]:
        base = self.config.instance
        out: list[tuple[str, str, dict[str, Any]]] = []
        for tag in self.config.hashtags:
            tag = tag.lstrip("#").casefold()  # Mastodon matches hashtags case-insensitively
            out.append((f"tag:{tag}", f"{base}/api/v1/timelines/tag/{quote(tag, safe='')}", {}))
        if self.config.query:
            params = {"q": self.config.query, "type": "statuses", "resolve": "false"}
            out.append(("search", f"{base}/api/v2/search", params))
        return out

    def _walk(self, url: str, params: dict[str, Any], since: str | None) -> tuple[list[Any], str | None]:
        headers = {}
        if self.config.access_token is not None:
            headers["Authorization"] = f"Bearer {self.config.access_token.get_secret_value()}"
        statuses: list[Any] = []
        query: dict[str, Any] | None = {**params, "limit": self.config.limit}
        if since:
            query = {**(query or {}), "min_id": since}
        next_url = url
        for _ in range(self.config.max_pages if since else 1):
            response = self.client.get(next_url, params=query, headers=headers)
            if "statuses" in params.get("type", ""):
                page = as_list(response.data, "statuses", url=url)
            else:
                page = _timeline(response.data, url)
            if not page:
                break
            statuses.extend(page)
            newer = _link(response.headers.get("link"), "prev")
            if newer is None:
                break
            next_url, query = newer, None  # the link carries every parameter
        ids = [int(s["id"]) for s in statuses if isinstance(s, dict) and str(s.get("id", "")).isdigit()]
        newest = max([int(since)] if since and since.isdigit() else [], default=0)
        newest = max([newest, *ids])
        return statuses, str(newest) if newest else since

    def _document(self, status: dict[str, Any]) -> Document | None:
        shown = status.get("reblog") or status
        account = shown.get("account") or {}
        spoiler = plain_text(shown.get("spoiler_text"))
        body = plain_text(shown.get("content"))
        return self.document(
            str(shown.get("uri") or shown["id"]),
            text="\n\n".join(p for p in (spoiler, body) if p),
            url=shown.get("url") or shown.get("uri"),
            author=account.get("acct") or account.get("username"),
            published=parse_time(shown.get("created_at")),
            language=language_tag(shown.get("language")),
            engagement={
                "likes": shown.get("favourites_count"),
                "replies": shown.get("replies_count"),
                "reposts": shown.get("reblogs_count"),
            },
        )


def _timeline(data: Any, url: str) -> list[Any]:
    if not isinstance(data, list):
        raise SourceError(f"{url}: expected a list of statuses, got {type(data).__name__}")
    return data


def _link(header: str | None, rel: str) -> str | None:
    for link in parse_header_links(header or ""):
        if link.get("rel") == rel and link.get("url"):
            return str(link["url"])
    return None


register_source(MastodonSourceConfig)(MastodonSource.from_config)

# The streaming source is a sibling module; loading the `mastodon` entry point registers both.
from crawlers import mastodon_stream as _stream  # noqa: E402, F401
