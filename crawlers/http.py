"""Polite, bounded HTTP GET for the feed reader.

Every failure a fetch can meet (refused connection, timeout, 4xx/5xx, a body
larger than the configured limit) becomes a `SourceError` that names the URL,
so the scheduler can log it and back off without knowing about `requests`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import requests

from crawlers.deadline import DeadlineAdapter, bounded, deadline_message
from listener.config import Limits
from listener.errors import SourceError

__all__ = ["FetchResult", "failure_reason", "fetch", "make_session", "mount_deadline"]

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class FetchResult:
    url: str
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def make_session(limits: Limits) -> requests.Session:
    session = requests.Session()
    mount_deadline(session)
    session.headers["User-Agent"] = limits.user_agent
    session.headers["Accept"] = (
        "application/rss+xml, application/atom+xml, application/rdf+xml, "
        "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
    )
    return session


def mount_deadline(session: requests.Session) -> None:
    """Make `limits.timeout` hold for whole requests made through `session` (see crawlers.deadline)."""
    adapter = DeadlineAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)


def fetch(
    session: requests.Session,
    url: str,
    limits: Limits,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
) -> FetchResult:
    """GET `url` with conditional headers; stream the body and stop at the size limit."""
    headers: dict[str, str] = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    deadline = time.monotonic() + limits.timeout
    with bounded(limits.timeout) as watch:
        try:
            result = _get(session, url, headers, limits, deadline, etag, last_modified)
        except (requests.RequestException, SourceError) as exc:
            if watch.expired:
                raise SourceError(deadline_message(url, limits.timeout)) from None
            if isinstance(exc, SourceError):
                raise
            if isinstance(exc, requests.Timeout):
                raise SourceError(deadline_message(url, limits.timeout)) from None
            if isinstance(exc, requests.ConnectionError):
                raise SourceError(f"{url}: cannot connect ({failure_reason(exc)})") from None
            raise SourceError(f"{url}: request failed ({failure_reason(exc)})") from None
        if watch.expired:  # a body without a length ends quietly when its socket is shut
            raise SourceError(deadline_message(url, limits.timeout))
        return result


def _get(
    session: requests.Session,
    url: str,
    headers: dict[str, str],
    limits: Limits,
    deadline: float,
    etag: str | None,
    last_modified: str | None,
) -> FetchResult:
    with session.get(url, headers=headers, timeout=limits.timeout, stream=True) as response:
        if response.status_code == 304:
            return FetchResult(url=response.url, status=304, etag=etag, last_modified=last_modified)
        _raise_for_status(url, response)
        body = _read_limited(url, response, limits, deadline)
        return FetchResult(
            url=response.url,
            status=response.status_code,
            body=body,
            headers={k.lower(): v for k, v in response.headers.items()},
            etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
        )


def _raise_for_status(url: str, response: requests.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    kind = "server error" if status >= 500 else "client error"
    raise SourceError(f"{url}: HTTP {status} {response.reason or ''} ({kind})".replace("  ", " "))


def _read_limited(url: str, response: requests.Response, limits: Limits, deadline: float) -> bytes:
    limit = limits.max_document_bytes
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(url, limit, f"Content-Length {declared}")
    received = bytearray()
    for chunk in response.iter_content(_CHUNK):
        received.extend(chunk)
        if len(received) > limit:
            raise _too_large(url, limit, "body kept coming")
        if time.monotonic() > deadline:
            raise SourceError(deadline_message(url, limits.timeout))
    return bytes(received)


def _too_large(url: str, limit: int, detail: str) -> SourceError:
    return SourceError(
        f"{url}: response exceeds max_document_bytes={limit} ({detail}); refusing to read more"
    )


def failure_reason(exc: BaseException) -> str:
    # requests nests the useful part (e.g. 'Connection refused') several levels deep.
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "reset by peer"):
        if marker in text:
            return marker
    return text[:300]
