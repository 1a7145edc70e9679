"""The Bluesky Jetstream firehose, filtered locally: a streaming source behind the polling seam.

Jetstream (`{url}/subscribe?wantedCollections=app.bsky.feed.post&cursor=T`)
sends every new post on the network as JSON over a websocket:
`{"did", "time_us", "kind": "commit", "commit": {"operation": "create",
"collection": "app.bsky.feed.post", "rkey", "record": {"text", "createdAt", "langs"}}}`.

A reader thread keeps the connection open and puts posts that contain one of
the `keywords` (whole words, any case) into a bounded buffer; it never waits
on the pipeline, and if the pipeline falls behind by more than `buffer` posts
the oldest are dropped and counted. `poll()` hands over what the buffer holds;
`commit()` stores, as the cursor, the `time_us` the reader had reached when
the poll was taken. On a dropped connection, and after a restart, the reader
reconnects from the committed cursor minus `rewind` seconds (Jetstream's
advice, since events are only roughly ordered); the seen-item memory drops
what comes back twice.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from crawlers.api_source import parse_time
from crawlers.factory import register_source
from crawlers.state import FetchState, PendingPoll
from crawlers.stream_buffer import StreamBuffer, reconnect_delay
from crawlers.text import language_tag
from listener.config import JetstreamSourceConfig, Limits
from listener.records import Document, document_id

__all__ = ["JetstreamSource"]

log = logging.getLogger(__name__)

class JetstreamSource:
    source_type = "jetstream"

    def __init__(self, config: JetstreamSourceConfig, limits: Limits, state: FetchState) -> None:
        self.config = config
        self.name = config.name
        self.poll_interval = float(config.poll_interval)
        self.limits = limits
        self.state = state
        self.connections = 0
        self._words = re.compile(r"\b(" + "|".join(re.escape(k) for k in config.keywords) + r")\b", re.I)
        self._buffer = StreamBuffer(config.buffer)  # its mark: time_us of the last event read
        self._pending: PendingPoll | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, config: JetstreamSourceConfig, limits: Limits, state: FetchState) -> JetstreamSource:
        return cls(config, limits, state)

    @property
    def reached(self) -> int | None:
        """`time_us` of the last event the reader has seen (None before the first)."""
        return self._buffer.mark

    @property
    def dropped(self) -> int:
        return self._buffer.dropped

    def poll(self) -> Iterator[Document]:
        self._ensure_reader()
        batch, reached = self._buffer.drain()
        fresh = self.state.unseen(self.name, (d.id for d in batch))
        docs = [d for d in batch if d.id in fresh]
        cursor = None if reached is None else str(reached)
        self._pending = PendingPoll(cursor=cursor, new_ids={d.id for d in docs}, complete=True)
        yield from docs

    def commit(self, documents: Iterable[Document]) -> None:
        pending, self._pending = self._pending, None
        self.state.settle(self.name, pending, (d.id for d in documents))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # --- the reader thread --------------------------------------------------------------

    def _ensure_reader(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            name = f"jetstream-{self.name}"
            self._thread = threading.Thread(target=self._read_forever, name=name, daemon=True)
            self._thread.start()

    def _read_forever(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._read_once()
                failures = 0
            except Exception as exc:  # every network failure means: wait, reconnect from the cursor
                failures += 1
                log.warning("%s: jetstream connection lost (%s); reconnecting", self.name, exc)
            self._stop.wait(reconnect_delay(failures))

    def _read_once(self) -> None:
        from websockets.sync.client import connect

        with connect(self._subscribe_url(), open_timeout=self.limits.timeout, max_size=2**20) as socket:
            self.connections += 1
            while not self._stop.is_set():
                try:
                    message = socket.recv(timeout=0.5)
                except TimeoutError:
                    continue
                self._handle(message)

    def _subscribe_url(self) -> str:
        url = f"{self.config.url}/subscribe?wantedCollections=app.bsky.feed.post"
        reached = self._buffer.mark
        stored = self.state.get_cursor(self.name)
        start = reached if reached is not None else (int(stored) if stored else None)
        if start is None:
            return url
        return f"{url}&cursor={max(0, start - int(self.config.rewind * 1_000_000))}"

    def _handle(self, message: str | bytes) -> None:
        try:
            event = json.loads(message)
            stamp = int(event["time_us"])
            if parse_time(stamp / 1_000_000) is None:  # no real time: skipped, never the cursor
                raise ValueError(f"time_us {stamp} out of range")
        except (ValueError, KeyError, TypeError, OverflowError):
            log.warning("%s: unreadable jetstream message skipped", self.name)
            return
        self._buffer.push(self._document(event), mark=stamp)

    def _document(self, event: dict[str, Any]) -> Document | None:
        commit = event.get("commit") or {}
        record = commit.get("record") or {}
        if event.get("kind") != "commit" or commit.get("operation") != "create":
            return None
        text = record.get("text")
        if not isinstance(text, str) or not self._words.search(text):
            return None
        did, rkey = str(event.get("did")), str(commit.get("rkey"))
        uri = f"at://{did}/app.bsky.feed.post/{rkey}"
        stamp = parse_time(int(event["time_us"]) / 1_000_000)
        langs = record.get("langs") or []
        assert stamp is not None
        return Document(
            id=document_id(self.name, uri),
            source=self.name,
            source_type=self.source_type,
            url=f"https://bsky.app/profile/{did}/post/{rkey}",
            site="bsky.app",
            author=did,
            text=text,
            published=parse_time(record.get("createdAt")) or stamp,
            fetched=stamp,
            language=language_tag(langs[0]) if langs and isinstance(langs[0], str) else None,
        )


register_source(JetstreamSourceConfig)(JetstreamSource.from_config)
