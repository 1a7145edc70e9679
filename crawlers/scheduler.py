"""Poll every source on its own interval, publish what is new, and only then mark it seen.

* Polls run on a small thread pool, so one slow site never holds up the others.
* `publish` is always called from the scheduler's own thread, one batch at a
  time, so the bus client it wraps need not be thread-safe.
* After `publish` returns, the source's `commit(docs)` records the items. If
  `publish` raises, nothing is recorded and the same items come back on the next
  poll, after a back-off; ids are deterministic, so downstream writes stay idempotent.
* A failing source backs off exponentially (interval x 2^failures, capped); the
  failure count lives in the fetch state so a restart does not reset it.
* Every poll's outcome goes to the health log (`crawlers.health`) beside the
  fetch state, so `listener sources status` can tell a broken or silent source
  from a quiet brand.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from crawlers.health import HealthLog
from crawlers.source import Source
from crawlers.state import FetchState
from listener.errors import SourceError
from listener.records import Document

__all__ = ["PUBLISH_MAX_BACKOFF", "PollOutcome", "RunSummary", "Scheduler", "backoff_delay"]

log = logging.getLogger(__name__)

Publish = Callable[[list[Document]], None]
Clock = Callable[[], float]

DEFAULT_MAX_BACKOFF = 6 * 3600.0
PUBLISH_MAX_BACKOFF = 900.0
_PUBLISH_FAILED = "publish failed"


def backoff_delay(interval: float, failures: int, cap: float = DEFAULT_MAX_BACKOFF) -> float:
    """Seconds until the next poll after `failures` consecutive failures."""
    if failures <= 0:
        return interval
    return min(max(cap, interval), interval * 2.0 ** min(failures, 32))


@dataclass(frozen=True)
class PollOutcome:
    source: str
    documents: int = 0
    error: str | None = None
    failures: int = 0
    next_in: float = 0.0  # seconds until this source is due again

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class RunSummary:
    outcomes: list[PollOutcome] = field(default_factory=list)

    @property
    def polled(self) -> list[str]:
        return [o.source for o in self.outcomes]

    @property
    def documents(self) -> int:
        return sum(o.documents for o in self.outcomes if o.ok)

    @property
    def failed(self) -> dict[str, str]:
        return {o.source: o.error for o in self.outcomes if o.error is not None}


class Scheduler:
    def __init__(
        self,
        sources: Sequence[Source],
        state: FetchState,
        publish: Publish,
        clock: Clock = time.monotonic,
        *,
        wall_clock: Clock = time.time,
        max_workers: int = 4,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        health: HealthLog | None = None,
    ) -> None:
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique: {sorted(names)}")
        self.sources = {s.name: s for s in sources}
        self.state = state
        self.publish = publish
        self.clock = clock
        self.max_backoff = max_backoff
        self.wall_clock = wall_clock
        self.health = health if health is not None else HealthLog(state.path)
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="listener-poll")
        self._in_flight: dict[str, Future[list[Document]]] = {}
        self._pending: dict[str, tuple[Source | None, bool]] = {}  # changes waiting for a poll in flight
        self._next_due = {name: self._first_due(src, wall_clock()) for name, src in self.sources.items()}

    def _first_due(self, source: Source, wall_now: float) -> float:
        """After a restart, wait out what is left of the interval (or back-off) instead of
        hammering every site at once."""
        known = self.state.get(source.name)
        if known.last_poll is None:
            return self.clock()
        wait_for = backoff_delay(source.poll_interval, known.failures, self._cap(known.last_error))
        remaining = wait_for - max(0.0, wall_now - known.last_poll)
        return self.clock() + min(max(0.0, remaining), wait_for)

    # --- public API ---------------------------------------------------------------------

    def next_due(self, name: str) -> float:
        return self._next_due[name]

    def due(self) -> list[str]:
        now = self.clock()
        return [n for n, at in self._next_due.items() if at <= now and n not in self._in_flight]

    def run_once(self) -> RunSummary:
        """Poll everything that is due, in parallel, and wait for all of it."""
        started = self._start(self.due())
        wait(list(started.values()))
        return RunSummary([self._finish(name) for name in started])

    def run_forever(
        self, stop: threading.Event, *, tick: float = 0.5, on_tick: Callable[[], None] | None = None
    ) -> None:
        """Keep polling until `stop` is set; a slow poll never delays the others.

        Polls still running at stop are abandoned without committing, so their
        items are simply fetched again on the next start. `on_tick` runs on this
        thread before each round (e.g. to follow source changes saved in the web app).
        """
        while not stop.is_set():
            if on_tick is not None:
                try:
                    on_tick()
                except Exception:  # following changes must never stop the polling
                    log.exception("scheduler: the tick hook failed; polling goes on unchanged")
            self._start(self.due())
            for name in [n for n, f in self._in_flight.items() if f.done()]:
                self._finish(name)
            waiting = [at for n, at in self._next_due.items() if n not in self._in_flight]
            timeout = min([tick, *(max(0.0, at - self.clock()) for at in waiting)])
            if self._in_flight:
                wait(list(self._in_flight.values()), timeout=timeout, return_when=FIRST_COMPLETED)
            else:
                stop.wait(timeout)

    def set_source(self, name: str, source: Source | None, *, fresh: bool = False) -> None:
        """Add, replace (same name, new settings) or remove (`None`) one source while running.

        Call it from the scheduler's own thread (the `on_tick` hook). A source
        with a poll in flight is changed once that poll has been published, so
        what it fetched is neither lost nor committed under the new settings.
        `fresh` forgets the name's validators and cursor first (its settings changed).
        """
        if name in self._in_flight:
            self._pending[name] = (source, fresh)
            return
        if fresh:
            self.state.forget_position(name)
        old = self.sources.pop(name, None)
        self._next_due.pop(name, None)
        if old is not None and old is not source:
            old.close()
        if source is not None:
            self.sources[name] = source
            self._next_due[name] = self._first_due(source, self.wall_clock())

    def close(self) -> None:
        """Stop polls in flight (sources that can, e.g. spider subprocesses) and the pool."""
        for source in self.sources.values():
            source.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ----------------------------------------------------------------------

    def _start(self, names: Iterable[str]) -> dict[str, Future[list[Document]]]:
        started = {}
        for name in names:
            source = self.sources[name]
            future = self._pool.submit(_drain, source)
            self._in_flight[name] = started[name] = future
        return started

    def _finish(self, name: str) -> PollOutcome:
        try:
            return self._finish_poll(name)
        finally:
            if name in self._pending:
                source, fresh = self._pending.pop(name)
                self.set_source(name, source, fresh=fresh)

    def _finish_poll(self, name: str) -> PollOutcome:
        future = self._in_flight.pop(name)
        source = self.sources[name]
        try:
            docs = future.result()
        except Exception as exc:
            return self._failed(source, exc)
        try:
            if docs:
                self.publish(docs)
        except Exception as exc:
            # Nothing is marked seen, so the items come back. Whether the bus or one of the items
            # is to blame, retrying every interval unnoticed helps neither: the source backs off
            # (see `_cap`) and shows as failing, with its notice, like a source whose fetch fails.
            log.error(
                "source %s: publishing %d documents failed; they will come back: %s", name, len(docs), exc
            )
            return self._failed(source, exc, f"{_PUBLISH_FAILED}: {exc}")
        self._commit(source, docs)
        self.state.record_success(name)
        self._note_health(name, ok=True, docs=docs)
        if docs:
            log.info("source %s: %d new documents", name, len(docs))
        return self._schedule(source, PollOutcome(name, len(docs)))

    def _cap(self, last_error: str | None) -> float:
        """A publish failure backs off less far, so the source resumes soon after a bus outage."""
        publish = last_error is not None and last_error.startswith(_PUBLISH_FAILED)
        return min(self.max_backoff, PUBLISH_MAX_BACKOFF) if publish else self.max_backoff

    def _failed(self, source: Source, exc: Exception, message: str | None = None) -> PollOutcome:
        if message is None:
            message = str(exc) if isinstance(exc, SourceError) else f"{type(exc).__name__}: {exc}"
        failures = self.state.record_failure(source.name, message)
        self._note_health(source.name, ok=False, error=message)
        delay = backoff_delay(source.poll_interval, failures, self._cap(message))
        if message.startswith(_PUBLISH_FAILED):
            log.warning("source %s: %d failed in a row, next try in %.0fs", source.name, failures, delay)
        elif isinstance(exc, SourceError):
            log.warning(
                "source %s failed (%d in a row), next try in %.0fs: %s", source.name, failures, delay, message
            )
        else:
            log.error(
                "source %s crashed (%d in a row), next try in %.0fs",
                source.name,
                failures,
                delay,
                exc_info=exc,
            )
        self._next_due[source.name] = self.clock() + delay
        return PollOutcome(source.name, 0, message, failures, delay)

    def _note_health(
        self, name: str, *, ok: bool, docs: Sequence[Document] = (), error: str | None = None
    ) -> None:
        """Health is for people; a failure to write it must never stop polling."""
        now = self.wall_clock()
        lags = [now - doc.published.timestamp() for doc in docs]
        try:
            self.health.record(name, ok=ok, items=len(docs), error=error, lags=lags, when=now)
        except Exception:
            log.exception("source %s: could not record poll health", name)

    def _schedule(self, source: Source, outcome: PollOutcome) -> PollOutcome:
        self._next_due[source.name] = self.clock() + source.poll_interval
        return PollOutcome(outcome.source, outcome.documents, outcome.error, 0, source.poll_interval)

    def _commit(self, source: Source, docs: list[Document]) -> None:
        try:
            source.commit(docs)
        except Exception:
            # Published but not recorded: the items are re-sent next poll, which the
            # deterministic ids turn into harmless upserts.
            log.exception(
                "source %s: could not record %d published documents as seen", source.name, len(docs)
            )


def _drain(source: Source) -> list[Document]:
    """Run a whole poll on a worker thread; the caller publishes on its own thread."""
    return list(source.poll())
