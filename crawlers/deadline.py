"""One deadline for a whole HTTP request: connecting, headers and body together.

`requests` (and urllib3 under it) bound each socket operation, never the
request: a server that sends one byte every second never trips a read timeout,
whether it trickles the status line, the headers or the body. Such a server
held a poll worker for as long as it liked, and four of them stopped every
other source.

`bounded(seconds)` starts a timer for the fetch running on this thread. Every
connection made through a session that mounts `DeadlineAdapter` registers its
socket with that timer, when it is opened and again before each response is
read (a kept-alive socket is reused without reopening). When the time is up
the timer shuts the registered sockets down: whatever read is blocked returns
at once, the request fails, and `Deadline.expired` tells the caller why, so it
can say so plainly instead of reporting a cut-off connection.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.response import HTTPResponse

__all__ = ["Deadline", "DeadlineAdapter", "bounded", "deadline_message"]

_current = threading.local()


def deadline_message(url: str, seconds: float) -> str:
    return f"{url}: timed out: no complete answer within {seconds:g} s"


class Deadline:
    """The deadline of one fetch; shuts down every socket it watches when it passes."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if self.expired:
                _shut(sock)
            else:
                self._sockets.append(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)

    def start(self) -> None:
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()


def _shut(sock: socket.socket) -> None:
    # The plain socket's shutdown, even for TLS: it wakes a read blocked in another
    # thread without touching the TLS object that read is using.
    with suppress(OSError):  # already closed, or handed over to a TLS wrapper
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


@contextmanager
def bounded(seconds: float) -> Iterator[Deadline]:
    """Bound every request this thread makes inside the block to `seconds` in total."""
    deadline = Deadline(seconds)
    outer = getattr(_current, "deadline", None)
    _current.deadline = deadline
    deadline.start()
    try:
        yield deadline
    finally:
        deadline.cancel()
        _current.deadline = outer


def _watch(sock: socket.socket | None) -> None:
    deadline: Deadline | None = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.watch(sock)


class _Connection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch(sock)
        return sock

    def getresponse(self) -> HTTPResponse:  # type: ignore[override]
        _watch(self.sock)
        return super().getresponse()


class _HTTPSConnection(_Connection, HTTPSConnection):
    """The same watching, over TLS (`_Connection`'s `super()` reaches HTTPSConnection here)."""


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """An adapter whose connections answer to the deadline of `bounded`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _HTTPSPool}
