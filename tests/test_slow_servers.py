"""A hostile or broken server that answers one byte at a time cannot hold a poll worker.

`limits.timeout` is the time a whole fetch may take: connecting, the status
line and headers, and the body. Here two servers on loopback trickle their
answer a byte every 0.2 s, one in its headers and one in its body; both are
given up on once the timeout passes, say so in the log and in the source's
health, and a normal feed polled beside them still arrives.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from api_server import FakeClock
from fixture_server import FixtureServer

from crawlers.api_http import ApiClient, HostGate
from crawlers.feed import FeedSource
from crawlers.health import FAILING_AFTER
from crawlers.scheduler import Scheduler
from crawlers.state import FetchState
from listener.config import FeedSourceConfig, Limits
from listener.errors import SourceError

RSS = "application/rss+xml; charset=utf-8"
BYTE_EVERY = 0.2
TIMEOUT = 1.0

ONE_ITEM = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
    b"<item><title>Acme Air news</title><link>http://example.test/1</link></item>"
    + b" " * 5000
    + b"</channel></rss>"
)


class TricklingServer:
    """A raw socket server that sends its answer one byte every `BYTE_EVERY` seconds.

    `prefix` goes out at once; `trickle` then goes out byte by byte, on every connection.
    """

    def __init__(self, prefix: bytes, trickle: bytes) -> None:
        self.prefix, self.trickle = prefix, trickle
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/feed"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)  # the request
                conn.sendall(self.prefix)
                for byte in self.trickle:
                    if self.stop.wait(BYTE_EVERY):
                        return
                    conn.sendall(bytes([byte]))
            except OSError:
                return  # the client gave up: what we want

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


@pytest.fixture
def slow_headers() -> Iterator[TricklingServer]:
    headers = b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nX-Pad: " + b"a" * 4000 + b"\r\n\r\n"
    server = TricklingServer(b"", headers + ONE_ITEM)
    yield server
    server.close()


@pytest.fixture
def slow_body() -> Iterator[TricklingServer]:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(ONE_ITEM)
    server = TricklingServer(head, ONE_ITEM)
    yield server
    server.close()


@pytest.fixture
def slow_body_unsized() -> Iterator[TricklingServer]:
    """No Content-Length: the body ends when the connection does, so a cut looks like an end."""
    server = TricklingServer(b"HTTP/1.0 200 OK\r\nContent-Type: application/rss+xml\r\n\r\n", ONE_ITEM)
    yield server
    server.close()


def test_trickling_servers_fail_on_time_are_shown_failing_and_do_not_hold_up_a_normal_feed(
    tmp_path, slow_headers, slow_body, slow_body_unsized, caplog
):
    caplog.set_level(logging.WARNING)
    clock = FakeClock()
    published: list[str] = []
    with FixtureServer() as fixtures, FetchState(tmp_path / "fetch.db") as state:
        canary_url = fixtures.add("/feed", ONE_ITEM, content_type=RSS)
        hostile = {"headers": slow_headers.url, "body": slow_body.url, "unsized": slow_body_unsized.url}
        sources = [
            FeedSource(
                FeedSourceConfig(type="feed", name=n, url=u, poll_interval=60), Limits(timeout=TIMEOUT), state
            )
            for n, u in [*hostile.items(), ("canary", canary_url)]
        ]
        publish = lambda docs: published.extend(d.source for d in docs)  # noqa: E731
        with Scheduler(sources, state, publish, clock) as scheduler:
            rounds = []
            for _ in range(FAILING_AFTER):
                started = time.monotonic()
                summary = scheduler.run_once()
                rounds.append(time.monotonic() - started)
                assert set(summary.failed) == set(hostile)
                assert "canary" in summary.polled
                for name, url in hostile.items():
                    assert summary.failed[name] == f"{url}: timed out: no complete answer within 1 s"
                clock.advance(10_000)
            health = {name: scheduler.health.report(name, now=time.time()) for name in hostile}

    # Given up on once the timeout passed, not when the trickled bytes (over 15 min of them) ran out.
    assert max(rounds) < 2 * TIMEOUT + 0.5, rounds
    assert published == ["canary"]  # polled every round; its one item arrives once
    assert all(h.flags == ("failing",) for h in health.values()), health
    logged = caplog.text
    assert all(f"{url}: timed out: no complete answer within 1 s" in logged for url in hostile.values())


def test_an_api_that_trickles_its_headers_fails_on_time(slow_headers):
    client = ApiClient(Limits(timeout=TIMEOUT), gate=HostGate())
    started = time.monotonic()
    with pytest.raises(SourceError, match="timed out: no complete answer within 1 s"):
        client.get(slow_headers.url)
    assert time.monotonic() - started < 2 * TIMEOUT
