"""Reddit posts and comments through the public JSON listings, as Reddit asks to be read.

* Posts: `GET {base}/search.json?q=...&sort=new` (or `/r/a+b/search.json` with
  `restrict_sr=1` when subreddits are configured), newest first, paged with
  `after`. Comments: `GET {base}/r/a+b/comments.json`, the newest comments of
  the configured subreddits (Reddit's search does not return comments).
* Every request carries the User-Agent form Reddit requires,
  `<platform>:<app id>:<version> (by /u/<username>)`; generic agents are throttled.
* `X-Ratelimit-Remaining` / `X-Ratelimit-Reset` are honoured before Reddit has
  to answer 429 (the API client closes the host until the reset).
* With `client_id` and `client_secret` (a "script" or "web" app), the source
  gets an application-only OAuth token (`grant_type=client_credentials`) and
  reads from `oauth.reddit.com`, where the limit is 100 requests a minute
  instead of about 10.

The cursor is the newest `created_utc` committed per stream (posts, comments);
paging stops at the first page that reaches back past it.
"""

from __future__ import annotations

import json
import time
from typing import Any

from crawlers.api_http import ApiClient
from crawlers.api_source import ApiSource, Batch, as_list, parse_time, plain_text
from crawlers.factory import register_source
from crawlers.state import FetchState
from listener.config import Limits, RedditSourceConfig
from listener.errors import SourceError
from listener.records import Document

__all__ = ["RedditSource"]

WEB = "https://www.reddit.com"
_THINGS = ("t1", "t3")  # comment, link


class RedditSource(ApiSource):
    source_type = "reddit"

    def __init__(self, config: RedditSourceConfig, limits: Limits, state: FetchState, **kw: Any) -> None:
        kw.setdefault("client", ApiClient(limits, user_agent=config.user_agent))
        super().__init__(config.name, config.poll_interval, limits, state, **kw)
        self.client.session.headers["User-Agent"] = config.user_agent
        self.config = config
        self._token: tuple[str, float] | None = None  # (access token, monotonic expiry)

    @classmethod
    def from_config(cls, config: RedditSourceConfig, limits: Limits, state: FetchState) -> RedditSource:
        return cls(config, limits, state)

    def fetch(self, cursor: str | None) -> Batch:
        marks: dict[str, float] = json.loads(cursor) if cursor else {}
        base, headers, suffix = self._endpoint()
        subs = "+".join(self.config.subreddits)
        prefix = f"{base}/r/{subs}" if subs else base
        params: dict[str, Any] = {"q": self.config.query, "sort": "new", "type": "link", "raw_json": 1}
        if subs:
            params["restrict_sr"] = 1
        streams = {"posts": (f"{prefix}/search{suffix}", params)}
        if self.config.comments and subs:
            streams["comments"] = (f"{prefix}/comments{suffix}", {"raw_json": 1})
        documents: list[Document] = []
        for stream, (url, query) in streams.items():
            docs, newest = self._read_stream(url, query, headers, marks.get(stream, 0.0))
            documents.extend(docs)
            marks[stream] = newest
        return Batch(documents, json.dumps(marks, sort_keys=True))

    def _read_stream(
        self, url: str, params: dict[str, Any], headers: dict[str, str], since: float
    ) -> tuple[list[Document], float]:
        documents: list[Document] = []
        newest, after = since, None
        for _ in range(self.config.max_pages):
            query = {**params, "limit": self.config.limit, **({"after": after} if after else {})}
            listing = self.client.get(url, params=query, headers=headers).data
            children = as_list(listing, "data", "children", url=url)
            things = [c.get("data") for c in children if isinstance(c, dict) and c.get("kind") in _THINGS]
            documents.extend(self.convert_all(things, self._document))
            stamps = [float(_get(t, "created_utc")) for t in things if _is_number(_get(t, "created_utc"))]
            newest = max([newest, *stamps])
            after = listing["data"].get("after")
            if not after or not stamps or min(stamps) <= since:
                break
        return documents, newest

    def _document(self, thing: dict[str, Any]) -> Document | None:
        is_comment = "body" in thing
        title = None if is_comment else plain_text(thing.get("title"))
        body = plain_text(thing.get("body") if is_comment else thing.get("selftext"))
        text = body if is_comment else "\n\n".join(p for p in (title, body) if p)
        permalink = thing.get("permalink")
        return self.document(
            str(thing["name"]),
            text=text,
            title=title or _reply_title(thing.get("link_title")),
            url=f"{WEB}{permalink}" if isinstance(permalink, str) and permalink.startswith("/") else None,
            author=thing.get("author"),
            published=parse_time(thing.get("created_utc")),
            engagement={
                "score": _int(thing.get("score")),
                "replies": _int(thing.get("num_comments")),
                "reposts": _int(thing.get("num_crossposts")),
            },
        )

    def _endpoint(self) -> tuple[str, dict[str, str], str]:
        """Base URL, auth header and path suffix: OAuth when credentials are configured."""
        if not (self.config.client_id and self.config.client_secret):
            return self.config.base_url, {}, ".json"
        return self.config.oauth_base_url, {"Authorization": f"bearer {self._access_token()}"}, ""

    def _access_token(self) -> str:
        if self._token is not None and self._token[1] > time.monotonic():
            return self._token[0]
        assert self.config.client_id and self.config.client_secret
        url = f"{self.config.base_url}/api/v1/access_token"
        answer = self.client.request(
            "POST",
            url,
            data={"grant_type": "client_credentials"},
            auth=(self.config.client_id, self.config.client_secret.get_secret_value()),
        ).data
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str):
            raise SourceError(f"{url}: no access_token in the answer (check client_id/client_secret)")
        lifetime = float(answer.get("expires_in") or 3600)
        self._token = (token, time.monotonic() + max(60.0, lifetime - 60.0))
        return token


def _get(thing: Any, key: str) -> Any:
    return thing.get(key) if isinstance(thing, dict) else None


def _reply_title(link_title: Any) -> str | None:
    return f"Re: {plain_text(link_title)}" if link_title else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int(value: Any) -> int | None:
    return int(value) if _is_number(value) else None


register_source(RedditSourceConfig)(RedditSource.from_config)
