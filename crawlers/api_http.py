"""JSON over HTTP for the API sources, with per-host back-off and a circuit breaker.

Public APIs tell a client how hard it may call them (429 with `Retry-After`,
Reddit's `X-Ratelimit-*` headers) and fail in ways a client must survive
(5xx, timeouts, a body cut off mid-JSON, fields that change). Every such
failure becomes a `SourceError` naming the URL, so the scheduler backs the
source off; and the host itself is remembered in a `HostGate`, shared by every
source in the process, so two sources on one API never double the pressure:

* a 429, or an exhausted rate-limit budget, closes the host until the time the
  API named;
* consecutive failures (5xx, timeouts, refused connections) back the host off
  exponentially and, past a threshold, open its circuit: calls fail at once,
  without touching the network, until a cool-down passes; then one trial call
  is let through (half-open), and its outcome closes or re-opens the circuit.
"""

from __future__ import annotations

import email.utils
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from crawlers.deadline import bounded, deadline_message
from crawlers.http import failure_reason, mount_deadline
from listener.config import Limits
from listener.errors import SourceError

__all__ = ["DEFAULT_GATE", "ApiClient", "ApiResponse", "HostGate", "RateLimited", "retry_after_seconds"]

_CHUNK = 64 * 1024
Clock = Callable[[], float]


class RateLimited(SourceError):
    """The API asked us to wait; `retry_after` is in seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _Host:
    failures: int = 0
    closed_until: float = 0.0  # no calls before this (monotonic seconds)
    reason: str = ""
    circuit_open: bool = False


@dataclass
class HostGate:
    """Per-host back-off and circuit breaker; thread-safe."""

    base_delay: float = 1.0
    max_delay: float = 600.0
    open_after: int = 5  # consecutive failures that open the circuit
    cool_down: float = 900.0
    clock: Clock = time.monotonic
    _hosts: dict[str, _Host] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, host: str) -> None:
        """Raise if `host` may not be called now."""
        with self._lock:
            state = self._hosts.get(host)
            if state is None:
                return
            wait = state.closed_until - self.clock()
            if wait > 0:
                what = "circuit open" if state.circuit_open else "backing off"
                raise SourceError(f"{host}: {what} for another {wait:.0f}s after {state.reason}")

    def success(self, host: str) -> None:
        with self._lock:
            self._hosts.pop(host, None)

    def failure(self, host: str, reason: str) -> None:
        with self._lock:
            state = self._hosts.setdefault(host, _Host())
            state.failures += 1
            state.reason = reason
            state.circuit_open = state.failures >= self.open_after
            delay = self.cool_down if state.circuit_open else self._delay(state.failures)
            state.closed_until = self.clock() + delay

    def block(self, host: str, seconds: float, reason: str) -> None:
        """The host told us when to come back; a rate limit is not a failure of the host."""
        with self._lock:
            state = self._hosts.setdefault(host, _Host())
            state.reason = reason
            state.closed_until = max(state.closed_until, self.clock() + max(0.0, seconds))

    def status(self, host: str) -> dict[str, Any]:
        with self._lock:
            state = self._hosts.get(host, _Host())
            return {
                "failures": state.failures,
                "circuit_open": state.circuit_open,
                "closed_for": max(0.0, state.closed_until - self.clock()),
                "reason": state.reason,
            }

    def _delay(self, failures: int) -> float:
        return float(min(self.max_delay, self.base_delay * 2.0 ** min(failures - 1, 30)))


DEFAULT_GATE = HostGate()


@dataclass(frozen=True)
class ApiResponse:
    url: str
    status: int
    data: Any
    headers: Mapping[str, str]


def retry_after_seconds(value: str | None, default: float = 60.0) -> float:
    """`Retry-After` is either delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return default
    value = value.strip()
    if value.replace(".", "", 1).isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


class ApiClient:
    """A `requests` session that speaks JSON and reports every failure as `SourceError`."""

    def __init__(
        self,
        limits: Limits,
        *,
        user_agent: str | None = None,
        gate: HostGate | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.limits = limits
        self.gate = gate or DEFAULT_GATE
        self.session = session or requests.Session()
        mount_deadline(self.session)
        self.session.headers["User-Agent"] = user_agent or limits.user_agent
        self.session.headers["Accept"] = "application/json"

    def get(self, url: str, *, params: Mapping[str, Any] | None = None, **options: Any) -> ApiResponse:
        return self.request("GET", url, params=params, **options)

    def request(self, method: str, url: str, **options: Any) -> ApiResponse:
        host = urlsplit(url).netloc
        self.gate.check(host)
        deadline = time.monotonic() + self.limits.timeout
        with bounded(self.limits.timeout) as watch:
            try:
                with self.session.request(
                    method, url, timeout=self.limits.timeout, stream=True, **options
                ) as response:
                    self._check_status(host, url, response)
                    body = self._read(url, response, deadline)
                    headers = {k.lower(): v for k, v in response.headers.items()}
                    final_url = response.url
                if watch.expired:  # a body without a length ends quietly when its socket is shut
                    raise requests.Timeout()
            except requests.RequestException as exc:
                if watch.expired or isinstance(exc, requests.Timeout):
                    self.gate.failure(host, "a timeout")
                    raise SourceError(deadline_message(url, self.limits.timeout)) from None
                self.gate.failure(host, "a connection failure")
                raise SourceError(f"{url}: request failed ({failure_reason(exc)})") from None
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            self.gate.failure(host, "an unreadable body")
            raise SourceError(f"{url}: response is not valid JSON (truncated?): {exc}") from None
        self.gate.success(host)
        self._note_budget(host, headers)
        return ApiResponse(final_url, 200, data, headers)

    def close(self) -> None:
        self.session.close()

    def _check_status(self, host: str, url: str, response: requests.Response) -> None:
        status = response.status_code
        if status == 429:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            self.gate.block(host, wait, "HTTP 429")
            raise RateLimited(f"{url}: HTTP 429 rate limited; retry after {wait:.0f}s", wait)
        if status >= 500:
            self.gate.failure(host, f"HTTP {status}")
            raise SourceError(f"{url}: HTTP {status} (server error)")
        if status >= 400:
            # A client error is ours (bad token, bad query): retrying sooner will not help the host.
            raise SourceError(f"{url}: HTTP {status} (client error)")

    def _read(self, url: str, response: requests.Response, deadline: float) -> bytes:
        limit = self.limits.max_document_bytes
        received = bytearray()
        for chunk in response.iter_content(_CHUNK):
            received.extend(chunk)
            if len(received) > limit:
                raise SourceError(f"{url}: response exceeds max_document_bytes={limit}")
            if time.monotonic() > deadline:
                raise requests.Timeout()
        return bytes(received)

    def _note_budget(self, host: str, headers: Mapping[str, str]) -> None:
        """Reddit (and others) announce the remaining request budget; respect it before a 429."""
        remaining = _number(headers.get("x-ratelimit-remaining"))
        reset = _number(headers.get("x-ratelimit-reset"))
        if remaining is not None and reset is not None and remaining < 1:
            self.gate.block(host, reset, "an exhausted rate-limit budget")


def _number(value: str | None) -> float | None:
    try:
        return None if value is None else float(value)
    except ValueError:
        return None
