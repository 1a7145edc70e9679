"""Mastodon's streaming API: hashtag statuses as they are posted, behind the polling seam.

`GET {instance}/api/v1/streaming/hashtag?tag=T` (or `hashtag/local`) with a
bearer token answers with server-sent events that never end: `event: update`
with a status as JSON in `data:`, `delete` and others (ignored), and `:`
comment lines as heartbeats. One reader thread per hashtag keeps its
connection open and puts statuses into a bounded buffer; it never waits on the
pipeline, and if the pipeline falls behind by more than `buffer` statuses the
oldest are dropped and counted. `poll()` hands over the buffer.

A lost connection is retried with exponential backoff (0.2 s doubling, at
most 60 s); a connection that sends nothing, not even a heartbeat, for
`idle_timeout` counts as lost. Mastodon's stream cannot be resumed from a
cursor: statuses posted while disconnected are not replayed. Pair the stream
with a polling `mastodon` source on the same hashtags when gaps matter.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import requests

from crawlers.api_source import parse_time, plain_text
from crawlers.factory import register_source
from crawlers.state import FetchState
from crawlers.stream_buffer import StreamBuffer, reconnect_delay
from crawlers.text import language_tag, site_of, web_url
from listener.config import Limits, MastodonStreamSourceConfig
from listener.records import Document, document_id

__all__ = ["MastodonStreamSource", "sse_events"]

log = logging.getLogger(__name__)
def sse_events(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(event, data) for each server-sent event; comments (heartbeats) are skipped."""
    event, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)


def _lines(response: requests.Response) -> Iterator[str]:
    """Lines as soon as they arrive (`iter_lines` waits for a full chunk: a small event would sit)."""
    raw = response.raw
    raw.decode_content = True
    pending = b""
    while chunk := raw.read1(65536):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.rstrip(b"\r").decode("utf-8", "replace")


class MastodonStreamSource:
    source_type = "mastodon"

    def __init__(self, config: MastodonStreamSourceConfig, limits: Limits, state: FetchState) -> None:
        self.config = config
        self.name = config.name
        self.poll_interval = float(config.poll_interval)
        self.limits = limits
        self.state = state
        self.connections = 0
        self._buffer = StreamBuffer(config.buffer)
        self._lock = threading.Lock()  # guards the open responses
        self._stop = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._responses: set[requests.Response] = set()

    @classmethod
    def from_config(
        cls, config: MastodonStreamSourceConfig, limits: Limits, state: FetchState
    ) -> MastodonStreamSource:
        return cls(config, limits, state)

    @property
    def dropped(self) -> int:
        return self._buffer.dropped

    def poll(self) -> Iterator[Document]:
        self._ensure_readers()
        batch, _ = self._buffer.drain()
        fresh = self.state.unseen(self.name, (d.id for d in batch))
        yield from (d for d in batch if d.id in fresh)

    def commit(self, documents: Iterable[Document]) -> None:
        self.state.commit_poll(self.name, {d.id for d in documents})

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            responses = list(self._responses)
        for response in responses:
            response.close()  # unblocks a reader waiting for the next line
        for thread in self._threads.values():
            thread.join(timeout=5)

    # --- the reader threads -------------------------------------------------------------

    def _ensure_readers(self) -> None:
        for tag in self.config.hashtags:
            tag = tag.lstrip("#").casefold()
            thread = self._threads.get(tag)
            if thread is None or not thread.is_alive():
                thread = threading.Thread(
                    target=self._read_forever,
                    args=(tag,),
                    name=f"mastodon-stream-{self.name}-{tag}",
                    daemon=True,
                )
                self._threads[tag] = thread
                thread.start()

    def _read_forever(self, tag: str) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                delivered = self._read_once(tag)
            except Exception as exc:  # every network failure means: wait, then reconnect
                log.warning("%s: mastodon stream #%s lost (%s); reconnecting", self.name, tag, exc)
                delivered = False
            failures = 0 if delivered else failures + 1
            self._stop.wait(reconnect_delay(failures))

    def _read_once(self, tag: str) -> bool:
        """Read one connection until it ends; True when it delivered at least one event."""
        kind = "hashtag/local" if self.config.local else "hashtag"
        token = self.config.access_token.get_secret_value()
        response = requests.get(
            f"{self.config.instance}/api/v1/streaming/{kind}",
            params={"tag": tag},
            headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
            stream=True,
            timeout=(self.limits.timeout, float(self.config.idle_timeout)),
        )
        with self._lock:
            self._responses.add(response)
        try:
            response.raise_for_status()
            self.connections += 1
            delivered = False
            for event, data in sse_events(_lines(response)):
                delivered = True
                if event == "update":
                    self._handle(data)
                if self._stop.is_set():
                    break
            return delivered
        finally:
            with self._lock:
                self._responses.discard(response)
            response.close()

    def _handle(self, data: str) -> None:
        try:
            status = json.loads(data)
            doc = self._document(status) if isinstance(status, dict) else None
        except (ValueError, KeyError, TypeError):
            doc = None
        if doc is None:
            log.warning("%s: unreadable mastodon status skipped", self.name)
            return
        self._buffer.push(doc)

    def _document(self, status: dict[str, Any]) -> Document | None:
        shown = status.get("reblog") or status
        account = shown.get("account") or {}
        text = "\n\n".join(
            p for p in (plain_text(shown.get("spoiler_text")), plain_text(shown.get("content"))) if p
        )
        if not text.strip():
            return None
        link = web_url(shown.get("url") or shown.get("uri"))
        fetched = datetime.now(UTC)
        counts = {"likes": "favourites_count", "replies": "replies_count", "reposts": "reblogs_count"}
        return Document(
            id=document_id(self.name, str(shown.get("uri") or shown["id"])),
            source=self.name,
            source_type=self.source_type,
            url=link,
            site=site_of(link) if link else None,
            author=account.get("acct") or account.get("username") or None,
            text=text.strip(),
            published=parse_time(shown.get("created_at")) or fetched,
            fetched=fetched,
            language=language_tag(shown.get("language")),
            engagement={k: int(shown[f]) for k, f in counts.items() if isinstance(shown.get(f), int)},
        )


register_source(MastodonStreamSourceConfig)(MastodonStreamSource.from_config)
