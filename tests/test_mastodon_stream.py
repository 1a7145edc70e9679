"""Mastodon's streaming API: hashtag statuses arrive as they are posted, the stream comes back
after the instance hangs up, and a stalled stream never holds the pipeline up."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from crawlers.factory import build_sources
from crawlers.mastodon_stream import MastodonStreamSource, sse_events
from crawlers.state import FetchState
from listener.config import Limits, MastodonStreamSourceConfig, load_config
from listener.records import Document

TOKEN = "stream-token"


def status(n: int, text: str) -> str:
    """A status as Mastodon's streaming API sends it (the REST status entity)."""
    return json.dumps({
        "id": str(110_000 + n), "uri": f"https://social.example/users/u{n}/statuses/{110_000 + n}",
        "url": f"https://social.example/@u{n}/{110_000 + n}", "created_at": "2025-11-20T14:00:00.000Z",
        "content": f"<p>{text}</p>", "spoiler_text": "", "language": "en",
        "account": {"acct": f"u{n}@social.example", "username": f"u{n}"},
        "favourites_count": n, "replies_count": 0, "reblogs_count": 2 * n,
    })  # fmt: skip


class Instance:
    """Loopback streaming endpoint: scripted SSE per connection; the first hangs up, later ones stall."""

    def __init__(self, scripts: list[str], *, heartbeat: bool = True) -> None:
        self.scripts = scripts
        self.requests: list[tuple[str, str | None]] = []
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                number = len(outer.requests)
                outer.requests.append((self.path, self.headers.get("Authorization")))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self.send_error(401)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                self.wfile.write(outer.scripts[min(number, len(outer.scripts) - 1)].encode())
                self.wfile.flush()
                if number > 0:
                    while not outer.release.wait(0.2):  # stays open, heartbeats only (if any)
                        if heartbeat:
                            self.wfile.write(b":thump\n\n")
                            self.wfile.flush()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def event(name: str, data: str) -> str:
    return f"event: {name}\ndata: {data}\n\n"


@pytest.fixture
def instance() -> Iterator[Instance]:
    first = ":)\n\n" + event("update", status(1, "Zephyro Fiber is down again")) + event("delete", "110001")
    first += event("update", "{truncated")
    server = Instance([first, event("update", status(2, "zephyro support finally called back"))])
    yield server
    server.close()


def source(url: str, tmp_path: Path, **extra: object) -> MastodonStreamSource:
    config = MastodonStreamSourceConfig.model_validate(
        {"type": "mastodon_stream", "name": "masto-live", "instance": url, "access_token": TOKEN,
         "hashtags": ["#Zephyro"], **extra}
    )  # fmt: skip
    return MastodonStreamSource(config, Limits(timeout=2.0), FetchState(tmp_path / "fetch.db"))


def drain(src: MastodonStreamSource, want: int, deadline: float = 10.0) -> list[Document]:
    got: list[Document] = []
    end = time.monotonic() + deadline
    while len(got) < want and time.monotonic() < end:
        batch = list(src.poll())
        src.commit(batch)
        got += batch
        time.sleep(0.05)
    return got


def test_statuses_arrive_across_a_hang_up_and_a_stall_never_blocks_a_poll(
    instance: Instance, tmp_path: Path
) -> None:
    src = source(instance.url, tmp_path)
    try:
        docs = drain(src, 2)
        assert [d.text for d in docs] == [
            "Zephyro Fiber is down again",
            "zephyro support finally called back",
        ]
        first = docs[0]
        assert first.author == "u1@social.example" and first.site == "social.example"
        assert first.engagement == {"likes": 1, "replies": 0, "reposts": 2}
        assert src.connections >= 2, "the source reconnected after the instance hung up"
        assert all(path == "/api/v1/streaming/hashtag?tag=zephyro" for path, _ in instance.requests)
        assert all(auth == f"Bearer {TOKEN}" for _, auth in instance.requests)

        started = time.monotonic()
        assert list(src.poll()) == []  # the open stream has nothing new: the poll returns at once
        assert time.monotonic() - started < 1.0
    finally:
        src.close()


def test_a_slow_pipeline_loses_the_oldest_statuses_and_counts_them(tmp_path: Path) -> None:
    script = "".join(event("update", status(n, f"zephyro post {n}")) for n in range(1, 6))
    server = Instance([script, ""])
    src = source(server.url, tmp_path, buffer=2)
    try:
        src._ensure_readers()
        end = time.monotonic() + 10
        while src.dropped < 3 and time.monotonic() < end:
            time.sleep(0.05)
        assert [d.text for d in src.poll()] == ["zephyro post 4", "zephyro post 5"]
        assert src.dropped == 3
    finally:
        src.close()
        server.close()


def test_a_refused_token_is_retried_with_backoff_not_in_a_tight_loop(tmp_path: Path) -> None:
    server = Instance([""])
    config = MastodonStreamSourceConfig.model_validate(
        {
            "type": "mastodon_stream",
            "name": "m",
            "instance": server.url,
            "access_token": "wrong",
            "hashtags": ["x"],
        }
    )
    src = MastodonStreamSource(config, Limits(timeout=2.0), FetchState(tmp_path / "fetch.db"))
    try:
        assert list(src.poll()) == []
        time.sleep(1.6)
        # Backoff 0.4 s, 0.8 s, 1.6 s ...: a handful of tries, not hundreds.
        assert 1 <= len(server.requests) <= 4
    finally:
        src.close()
        server.close()


def test_a_stream_gone_quiet_without_heartbeats_is_reopened(tmp_path: Path) -> None:
    server = Instance([event("update", status(1, "zephyro one")), ""], heartbeat=False)
    src = source(server.url, tmp_path, idle_timeout="0.5s")
    try:
        assert [d.text for d in drain(src, 1)] == ["zephyro one"]
        end = time.monotonic() + 10
        while len(server.requests) < 3 and time.monotonic() < end:
            time.sleep(0.05)
        assert len(server.requests) >= 3, "a silent connection is given up and opened again"
    finally:
        src.close()
        server.close()


def test_the_parser_follows_the_event_stream_format() -> None:
    lines = [
        ": heartbeat",
        "",
        "event: update",
        'data: {"a":',
        "data: 1}",
        "",
        "data:plain",
        "",
        "event: x",
        "",
    ]
    assert list(sse_events(lines)) == [("update", '{"a":\n1}'), ("message", "plain")]


def test_the_stream_is_configured_per_brand_like_any_source(tmp_path: Path) -> None:
    path = tmp_path / "watch.yaml"
    path.write_text(
        "data_dir: data\nbrands:\n  - name: zephyro\n    queries: ['zephyro']\n    sources:\n"
        "      - type: mastodon_stream\n        name: masto-live\n        instance: https://social.example\n"
        "        access_token: t\n        hashtags: [zephyro]\n"
    )
    config = load_config(path)
    (built,) = build_sources(config, FetchState(tmp_path / "fetch.db"))
    assert isinstance(built, MastodonStreamSource)
    path.write_text(path.read_text().replace("        access_token: t\n", ""))
    with pytest.raises(Exception, match="access_token"):
        load_config(path)
