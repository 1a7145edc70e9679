"""Bluesky posts through `app.bsky.feed.searchPosts`, with app-password auth when configured.

`GET {base}/xrpc/app.bsky.feed.searchPosts?q=...&sort=latest&limit=100&since=...`
answers `{"cursor": ..., "posts": [PostView]}`; `cursor` pages further back
within one search. Across polls the source remembers the newest `indexedAt`
it committed and asks with `since=` from there, so a poll reads only what is
new, and the seen-item memory drops the overlap at the boundary.

The public AppView (`public.api.bsky.app`) answers unauthenticated searches
but may refuse them under load; with `identifier` and `app_password` the source
opens a session (`com.atproto.server.createSession` on `service_url`) and
searches through that PDS with the session's bearer token, renewed before the
access token's two-hour lifetime runs out.

Limits: the AppView allows about 3,000 requests per 5 minutes per IP.
"""

from __future__ import annotations

import time
from typing import Any

from crawlers.api_source import ApiSource, Batch, as_list, parse_time
from crawlers.factory import register_source
from crawlers.state import FetchState
from crawlers.text import language_tag
from listener.config import BlueskySourceConfig, Limits
from listener.errors import SourceError
from listener.records import Document

__all__ = ["BlueskySource"]

SEARCH = "/xrpc/app.bsky.feed.searchPosts"
SESSION = "/xrpc/com.atproto.server.createSession"
_SESSION_LIFETIME = 90 * 60.0  # access JWTs last about two hours


class BlueskySource(ApiSource):
    source_type = "bluesky"

    def __init__(self, config: BlueskySourceConfig, limits: Limits, state: FetchState, **kw: Any) -> None:
        super().__init__(config.name, config.poll_interval, limits, state, **kw)
        self.config = config
        self._session: tuple[str, float] | None = None

    @classmethod
    def from_config(cls, config: BlueskySourceConfig, limits: Limits, state: FetchState) -> BlueskySource:
        return cls(config, limits, state)

    def fetch(self, cursor: str | None) -> Batch:
        base, headers = self._endpoint()
        url = base + SEARCH
        params: dict[str, Any] = {"q": self.config.query, "sort": "latest", "limit": self.config.limit}
        if cursor:
            params["since"] = cursor
        posts: list[Any] = []
        for _ in range(self.config.max_pages):
            data = self.client.get(url, params=params, headers=headers).data
            page = as_list(data, "posts", url=url)
            posts.extend(page)
            more = data.get("cursor")
            if not page or not isinstance(more, str) or not more:
                break
            params = {**params, "cursor": more}
        stamps = [p.get("indexedAt") for p in posts if isinstance(p, dict) and parse_time(p.get("indexedAt"))]
        newest = max((s for s in [cursor, *stamps] if s), key=_instant, default=None)
        return Batch(self.convert_all(posts, self._document), newest)

    def _document(self, post: dict[str, Any]) -> Document | None:
        record = post["record"]
        author = post.get("author") or {}
        handle = author.get("handle") or author.get("did")
        uri = str(post["uri"])
        langs = record.get("langs") or []
        return self.document(
            uri,
            text=str(record.get("text") or ""),
            url=f"https://bsky.app/profile/{handle}/post/{uri.rsplit('/', 1)[-1]}" if handle else None,
            author=handle,
            published=parse_time(record.get("createdAt")) or parse_time(post.get("indexedAt")),
            language=language_tag(langs[0]) if langs and isinstance(langs[0], str) else None,
            engagement={
                "likes": post.get("likeCount"),
                "replies": post.get("replyCount"),
                "reposts": post.get("repostCount"),
                "quotes": post.get("quoteCount"),
            },
        )

    def _endpoint(self) -> tuple[str, dict[str, str]]:
        if not (self.config.identifier and self.config.app_password):
            return self.config.base_url, {}
        return self.config.service_url, {"Authorization": f"Bearer {self._access_jwt()}"}

    def _access_jwt(self) -> str:
        if self._session is not None and self._session[1] > time.monotonic():
            return self._session[0]
        assert self.config.app_password is not None
        url = self.config.service_url + SESSION
        password = self.config.app_password.get_secret_value()
        login = {"identifier": self.config.identifier, "password": password}
        answer = self.client.request("POST", url, json=login).data
        token = answer.get("accessJwt") if isinstance(answer, dict) else None
        if not isinstance(token, str):
            raise SourceError(f"{url}: no accessJwt in the answer (check identifier/app_password)")
        self._session = (token, time.monotonic() + _SESSION_LIFETIME)
        return token


def _instant(stamp: str) -> float:
    parsed = parse_time(stamp)
    return parsed.timestamp() if parsed else 0.0


register_source(BlueskySourceConfig)(BlueskySource.from_config)
