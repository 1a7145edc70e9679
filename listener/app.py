"""The embedded deployment: every stage of `listener.wiring` as threads of one process.

Nothing here builds a stage; `Wiring` does, for this process and for every
`listener run --stage` process alike.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from alerts.notifier import Notifier
from listener.config import Config
from listener.datadir import StateDatabases
from listener.wiring import Wiring, guard, open_bus, open_store
from models.classifier import Classifier
from pipelines.runtime import StageRunner
from pipelines.stage import Stage

__all__ = ["Housekeeping", "Monitor", "open_bus", "open_store"]

log = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL = 3600.0
SOURCE_HEALTH_INTERVAL = 60.0
SEEN_MEMORY = 30 * 86400.0


@dataclass
class Housekeeping:
    """Retention, run hourly by whichever process owns the data it trims.

    The monitor runs all of it; in the distributed deployment `index` expires
    mentions and `crawl` prunes seen ids (Kafka keeps its own topic retention).
    """

    wiring: Wiring
    mentions: bool = True
    seen_ids: bool = True
    bus_log: bool = True

    def run_once(self, now: float | None = None) -> None:
        config = self.wiring.config
        now = time.time() if now is None else now
        deleted = trimmed = pruned = 0
        if self.mentions:
            cutoff = datetime.fromtimestamp(now - config.store.retention, UTC)
            deleted = self.wiring.store.delete_older_than(cutoff)
        if self.bus_log:
            trimmed = sum(self.wiring.bus.trim_all(max_age=config.bus.retention).values())
        if self.seen_ids:
            # Feeds rarely re-list items older than a month; one that does becomes an idempotent upsert.
            horizon = now - max(config.bus.retention, SEEN_MEMORY)
            pruned = self.wiring.fetch_state.prune_seen(horizon)
        log.info(
            "housekeeping: %d mentions expired, %d bus messages trimmed, %d seen ids pruned",
            deleted,
            trimmed,
            pruned,
        )

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.run_once()
            stop.wait(HOUSEKEEPING_INTERVAL)


def source_health_loop(wiring: Wiring, stop: threading.Event) -> None:
    """Tell brand channels about failing or silent sources (only when Slack is configured)."""
    if wiring.slack is None:
        return
    from alerts.source_notices import SourceNotices

    notices = SourceNotices(wiring.config, wiring.slack, state=wiring.state)
    while not stop.wait(SOURCE_HEALTH_INTERVAL):
        try:
            notices.check()
        except Exception:  # health notices must never take the process down
            log.exception("source health check failed; trying again in %.0fs", SOURCE_HEALTH_INTERVAL)


@dataclass
class Monitor:
    """Every stage of the embedded deployment, as threads of one process."""

    config: Config
    classifier_factory: Callable[[], Classifier]
    notifiers: Sequence[Notifier] = ()
    poll_timeout: float = 0.5
    state: StateDatabases | None = None
    _threads: list[threading.Thread] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.wiring = Wiring(self.config, self.classifier_factory, self.notifiers, self.state)
        self.bus = self.wiring.bus
        self.store = self.wiring.store
        self.fetch_state = self.wiring.fetch_state
        self.scheduler, self._follow_sources = self.wiring.scheduler()
        self.runners: list[StageRunner] = []
        self.interactivity: Any = None  # the Slack endpoint, when slack.signing_secret is set

    def build_stages(self) -> list[Stage]:
        """Loads the model, which takes a few seconds; called once by `start`."""
        return self.wiring.stages()

    def start(self, stop: threading.Event) -> None:
        self.runners = [
            StageRunner(self.bus, stage, poll_timeout=self.poll_timeout) for stage in self.build_stages()
        ]
        self.interactivity = self.wiring.interactivity()
        if self.interactivity is not None:
            self.interactivity.start()
        targets: list[tuple[str, Callable[[], None]]] = [
            ("sources", lambda: self.scheduler.run_forever(stop, on_tick=self._follow_sources)),
            ("housekeeping", lambda: Housekeeping(self.wiring).run_forever(stop)),
            ("source-health", lambda: source_health_loop(self.wiring, stop)),
            *((f"stage-{r.stage.name}", _runner_loop(r, stop)) for r in self.runners),
        ]
        for name, target in targets:
            thread = threading.Thread(target=guard(name, target, stop), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def housekeeping(self) -> None:
        """Retention: old mentions leave the index, consumed messages the bus, old ids the seen-list."""
        Housekeeping(self.wiring).run_once()

    def join(self, timeout: float = 10.0) -> None:
        self.scheduler.close()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        if self.interactivity is not None:
            self.interactivity.stop()
        self.scheduler.close()
        self.wiring.close()


def _runner_loop(runner: StageRunner, stop: threading.Event) -> Callable[[], None]:
    return lambda: runner.run_forever(stop)
