"""Wiring: one deployment's sources, stages and sinks on one bus.

This is the only place that knows which engine implements which seam, so the
stages themselves stay identical between the embedded deployment (everything
here, in threads) and a distributed one (one stage per process).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alerts.console import ConsoleNotifier
from alerts.digest import incidents_stage
from alerts.escalation import Announcer
from alerts.notifier import Notifier
from alerts.outbox import Outbox
from alerts.response import Desk
from alerts.stages import NotifyStage
from crawlers.factory import build_sources
from crawlers.scheduler import Scheduler
from crawlers.state import FetchState
from listener.brand_settings import LiveDetectStage
from listener.config import Config
from listener.live_sources import SourceSync
from listener.records import Document, encode
from listener.stages import ClassifyStage, IndexStage
from listener.stories import StoryIndex
from listener.watch_versions import LiveMatchStage
from models.classifier import Classifier
from pipelines.bus import Bus
from pipelines.bus_sqlite import EmbeddedBus
from pipelines.runtime import StageRunner
from pipelines.stage import Stage
from pipelines.store import MentionStore
from pipelines.store_sqlite import EmbeddedStore

__all__ = ["Monitor", "open_bus", "open_store"]

log = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL = 3600.0
SOURCE_HEALTH_INTERVAL = 60.0
SEEN_MEMORY = 30 * 86400.0


def open_store(config: Config) -> MentionStore:
    """The search store `store.engine` names; Elasticsearch needs the `elasticsearch` extra."""
    if config.store.engine == "elasticsearch":
        from pipelines.store_elasticsearch import ElasticsearchStore

        return ElasticsearchStore.from_config(config)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    return EmbeddedStore(config.data_dir / "store.db")


def open_bus(config: Config) -> Bus:
    """The bus `bus.engine` names; Kafka needs the `kafka` extra."""
    if config.bus.engine == "kafka":
        from pipelines.bus_kafka import KafkaBus

        return KafkaBus.from_config(config)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    return EmbeddedBus(config.data_dir / "bus.db")


def _default_notifiers(config: Config) -> list[Notifier]:
    notifiers: list[Notifier] = [ConsoleNotifier()]
    if config.slack.bot_token is not None:
        from alerts.slack import SlackNotifier
        from listener.brand_settings import LiveBrands

        # Channels saved in the web app win over watch.yaml's, from the next alert on.
        live = LiveBrands(config.brands, config.data_dir / "web.db")
        notifiers.append(SlackNotifier.from_config(config.slack, config.brands, channels=live.channel))
    return notifiers


@dataclass
class Monitor:
    """Every stage of the embedded deployment, as threads of one process."""

    config: Config
    classifier_factory: Callable[[], Classifier]
    notifiers: Sequence[Notifier] = ()
    poll_timeout: float = 0.5
    _threads: list[threading.Thread] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        data: Path = self.config.data_dir
        data.mkdir(parents=True, exist_ok=True)
        self.bus = open_bus(self.config)
        self.store = open_store(self.config)
        self.fetch_state = FetchState(data / "fetch.db")
        self.sources = build_sources(self.config, self.fetch_state)
        self.scheduler = Scheduler(self.sources, self.fetch_state, publish=self._publish_documents)
        # Sources switched on, off or added in the web app reach the scheduler without a restart.
        self.source_sync = SourceSync(
            self.scheduler, self.config.brands, data / "web.db", self.config.limits, self.fetch_state
        )
        self.runners: list[StageRunner] = []
        self.interactivity: Any = None  # the Slack endpoint, when slack.signing_secret is set

    def _publish_documents(self, docs: list[Document]) -> None:
        self.bus.publish_many("documents", [(doc.source, encode(doc)) for doc in docs])

    def build_stages(self) -> list[Stage]:
        """Loads the model, which takes a few seconds; called once by `start`."""
        notifiers = list(self.notifiers) or _default_notifiers(self.config)
        return [
            LiveMatchStage(self.config.brands, self.config.data_dir / "web.db"),
            ClassifyStage(self.classifier_factory(), brand_targeting=self.config.classifier.brand_targeting),
            IndexStage(self.store, stories=StoryIndex(self.config.data_dir / "stories.db")),
            LiveDetectStage(
                self.config.brands, self.config.data_dir / "web.db", self.config.data_dir / "detector.db"
            ),
            NotifyStage(
                notifiers,
                outbox=Outbox(self.config.data_dir / "outbox.db"),
                desk=Desk.open_dir(self.config.data_dir, self.config),
            ),
            incidents_stage(self.config, self._slack(notifiers)),  # escalation + weekly digest
        ]

    def _slack(self, notifiers: Sequence[Notifier]) -> Announcer | None:
        """The Slack notifier, which also posts escalations and serves the buttons' endpoint."""
        slack = next((n for n in notifiers if hasattr(n, "post_text")), None)
        secret = self.config.slack.signing_secret
        if slack is not None and secret is not None and self.interactivity is None:
            from alerts.interactivity import InteractivityServer

            self.interactivity = InteractivityServer(
                Desk.open_dir(self.config.data_dir, self.config),
                slack,  # type: ignore[arg-type]
                secret.get_secret_value(),
                self.config.slack.interactivity_host,
                self.config.slack.interactivity_port,
            ).start()
        return slack  # type: ignore[return-value]

    def start(self, stop: threading.Event) -> None:
        self.runners = [
            StageRunner(self.bus, stage, poll_timeout=self.poll_timeout) for stage in self.build_stages()
        ]
        targets: list[tuple[str, Callable[[], None]]] = [
            ("sources", lambda: self.scheduler.run_forever(stop, on_tick=self.source_sync.check)),
            ("housekeeping", lambda: self._housekeeping_loop(stop)),
            ("source-health", lambda: self._source_health_loop(stop)),
            *((f"stage-{r.stage.name}", _runner_loop(r, stop)) for r in self.runners),
        ]
        for name, target in targets:
            thread = threading.Thread(target=_guard(name, target, stop), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def housekeeping(self) -> None:
        """Retention: old mentions leave the index, consumed messages the bus, old ids the seen-list."""
        now = time.time()
        cutoff = datetime.fromtimestamp(now - self.config.store.retention, UTC)
        deleted = self.store.delete_older_than(cutoff)
        # Kafka applies its own topic retention on the brokers; only the embedded log is trimmed here.
        trim_all = getattr(self.bus, "trim_all", None)
        trimmed = sum(trim_all(max_age=self.config.bus.retention).values()) if trim_all else 0
        # Feeds rarely re-list items older than a month; one that does becomes an idempotent upsert.
        pruned = self.fetch_state.prune_seen(now - max(self.config.bus.retention, SEEN_MEMORY))
        log.info(
            "housekeeping: %d mentions expired, %d bus messages trimmed, %d seen ids pruned",
            deleted,
            trimmed,
            pruned,
        )

    def _source_health_loop(self, stop: threading.Event) -> None:
        """Tell brand channels about failing or silent sources (only when Slack is configured)."""
        notifiers = list(self.notifiers) or _default_notifiers(self.config)
        slack = next((n for n in notifiers if hasattr(n, "post_text")), None)
        if slack is None:
            return
        from alerts.source_notices import SourceNotices

        notices = SourceNotices(self.config, slack)  # type: ignore[arg-type]
        while not stop.wait(SOURCE_HEALTH_INTERVAL):
            try:
                notices.check()
            except Exception:  # health notices must never take the monitor down
                log.exception("source health check failed; trying again in %.0fs", SOURCE_HEALTH_INTERVAL)

    def _housekeeping_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.housekeeping()
            stop.wait(HOUSEKEEPING_INTERVAL)

    def join(self, timeout: float = 10.0) -> None:
        self.scheduler.close()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        if self.interactivity is not None:
            self.interactivity.stop()
        self.scheduler.close()
        self.bus.close()
        self.store.close()


def _runner_loop(runner: StageRunner, stop: threading.Event) -> Callable[[], None]:
    return lambda: runner.run_forever(stop)


def _guard(name: str, target: Callable[[], None], stop: threading.Event) -> Callable[[], None]:
    """A crashed thread stops the whole monitor loudly instead of leaving a silent hole."""

    def run() -> None:
        try:
            target()
        except Exception:
            log.exception("%s crashed; stopping the monitor", name)
            stop.set()

    return run
