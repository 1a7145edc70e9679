"""The composition root: the one place that builds stages and what they work with.

Both deployments come through here. The one-process monitor (`listener run`)
builds every stage over the embedded engines and runs them as threads; the
distributed deployment runs `listener run --stage NAME` once per container,
which builds just that stage over Kafka, Elasticsearch and PostgreSQL. A stage
is built by the same builder either way, so the two cannot drift apart: a
stage that gains a collaborator gains it in both.

`Wiring` opens each shared part (bus, search store, state databases,
notifiers, the response desk) lazily and once, so a `match` process never
loads the sentiment model and only `index` opens the search store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING

from listener.config import Config
from listener.datadir import DataDir, StateDatabases
from listener.records import Document, encode

if TYPE_CHECKING:
    from fastapi import FastAPI

    from alerts.interactivity import InteractivityServer
    from alerts.notifier import Notifier
    from alerts.response import Desk
    from alerts.slack import SlackNotifier
    from crawlers.scheduler import Scheduler
    from crawlers.state import FetchState
    from models.classifier import Classifier
    from pipelines.bus import Bus
    from pipelines.stage import Stage
    from pipelines.store import MentionStore

__all__ = ["BUS_STAGES", "SERVICES", "STAGES", "Wiring", "migrate", "open_bus", "open_store", "schemas"]

log = logging.getLogger(__name__)

# Stages that consume a bus topic, in flow order; each is one consumer group.
BUS_STAGES = ("match", "classify", "index", "detect", "notify", "incidents")
# Processes that are not bus consumers: the sources, the web app, Slack's button endpoint.
SERVICES = ("crawl", "web", "interactivity")
STAGES = ("crawl", *BUS_STAGES, "web", "interactivity")


def open_store(config: Config) -> MentionStore:
    """The search store `store.engine` names; Elasticsearch needs the `elasticsearch` extra."""
    if config.store.engine == "elasticsearch":
        from pipelines.store_elasticsearch import ElasticsearchStore

        return ElasticsearchStore.from_config(config)
    from pipelines.store_sqlite import EmbeddedStore

    config.data_dir.mkdir(parents=True, exist_ok=True)
    return EmbeddedStore(DataDir(config.data_dir).store)


def open_bus(config: Config) -> Bus:
    """The bus `bus.engine` names; Kafka needs the `kafka` extra."""
    if config.bus.engine == "kafka":
        from pipelines.bus_kafka import KafkaBus

        return KafkaBus.from_config(config)
    from pipelines.bus_sqlite import EmbeddedBus

    config.data_dir.mkdir(parents=True, exist_ok=True)
    return EmbeddedBus(DataDir(config.data_dir).bus)


@dataclass
class Wiring:
    """Everything one process needs, built on first use from the config.

    Notifiers, state databases, bus and store may be given (tests, benchmarks,
    the demo); otherwise they come from the config. `close()` closes only what
    it opened.
    """

    config: Config
    classifier_factory: Callable[[], Classifier]
    given_notifiers: Sequence[Notifier] = ()
    given_state: StateDatabases | None = None
    given_bus: Bus | None = None
    given_store: MentionStore | None = None
    # Wall time for the alerting stages; tests and replays move it at will.
    clock: Callable[[], float] = time.time

    # --- shared parts ------------------------------------------------------------------------

    @cached_property
    def data(self) -> DataDir:
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        return DataDir(self.config.data_dir)

    @cached_property
    def state(self) -> StateDatabases:
        return self.given_state or StateDatabases(self.data, self.config.state)

    @cached_property
    def bus(self) -> Bus:
        return self.given_bus or open_bus(self.config)

    @cached_property
    def store(self) -> MentionStore:
        return self.given_store or open_store(self.config)

    @cached_property
    def fetch_state(self) -> FetchState:
        from crawlers.state import FetchState

        return FetchState(self.state.db("fetch"))

    @cached_property
    def slack(self) -> SlackNotifier | None:
        """The Slack notifier (posts alerts, escalations, digests, source notices), if configured."""
        from alerts.slack import SlackNotifier

        if self.given_notifiers:
            return next((n for n in self.given_notifiers if isinstance(n, SlackNotifier)), None)
        if self.config.slack.bot_token is None:
            return None
        from listener.brand_settings import LiveBrands

        # Channels saved in the web app win over watch.yaml's, from the next alert on.
        live = LiveBrands(self.config.brands, self.state.db("brand_settings"))
        return SlackNotifier.from_config(self.config.slack, self.config.brands, channels=live.channel)

    @cached_property
    def notifiers(self) -> list[Notifier]:
        if self.given_notifiers:
            return list(self.given_notifiers)
        from alerts.console import ConsoleNotifier

        found: list[Notifier] = [ConsoleNotifier()]
        if self.slack is not None:
            found.append(self.slack)
        return found

    def desk(self) -> Desk:
        """A response desk (incidents, silences, on-call roster) over the shared state."""
        from alerts.response import Desk

        return Desk.from_state(self.state, self.config, self.clock)

    def interactivity(self) -> InteractivityServer | None:
        """Slack's button endpoint on its own port, when Slack and its signing secret are set."""
        secret = self.config.slack.signing_secret
        if self.slack is None or secret is None:
            return None
        from alerts.interactivity import InteractivityServer
        from alerts.replays import ReplayLog

        return InteractivityServer(
            self.desk(),
            self.slack,
            secret.get_secret_value(),
            self.config.slack.interactivity_host,
            self.config.slack.interactivity_port,
            replays=ReplayLog(self.state.db("slack_replays")),  # shared with every other copy
        )

    def web_app(self) -> FastAPI:
        """The web app over this process's store and state."""
        from listener.web import create_app

        return create_app(self.config, self.store, state=self.state)

    def serve_web(self, host: str, port: int, stop: threading.Event | None = None) -> None:
        """Serve the web app until `stop` is set (or Ctrl-C)."""
        import uvicorn

        server = uvicorn.Server(
            uvicorn.Config(self.web_app(), host=host, port=port, log_level="warning", proxy_headers=True)
        )
        if stop is not None:

            def exit_on_stop() -> None:
                stop.wait()
                server.should_exit = True

            threading.Thread(target=exit_on_stop, name="web-stop", daemon=True).start()
        server.run()

    # --- stages ------------------------------------------------------------------------------

    def stage(self, name: str) -> Stage:
        """The named bus stage (see BUS_STAGES)."""
        try:
            builder = _BUILDERS[name]
        except KeyError:
            raise ValueError(f"unknown stage {name!r}; choose one of {', '.join(BUS_STAGES)}") from None
        return builder(self)

    def stages(self) -> list[Stage]:
        """Every bus stage, as the one-process monitor runs them."""
        return [self.stage(name) for name in BUS_STAGES]

    def scheduler(self) -> tuple[Scheduler, Callable[[], None]]:
        """The sources' scheduler, and the tick that follows sources saved in the web app."""
        from crawlers.factory import build_sources
        from crawlers.health import HealthLog
        from crawlers.scheduler import Scheduler
        from listener.live_sources import SourceSync

        scheduler = Scheduler(
            build_sources(self.config, self.fetch_state),
            self.fetch_state,
            publish=self.publish_documents,
            health=HealthLog(self.state.db("source_health")),
        )
        settings = self.state.db("brand_settings")
        sync = SourceSync(scheduler, self.config.brands, settings, self.config.limits, self.fetch_state)
        return scheduler, sync.check

    def publish_documents(self, docs: list[Document]) -> None:
        self.bus.publish_many("documents", [(doc.source, encode(doc)) for doc in docs])

    def close(self) -> None:
        """Close what this object opened; what was given stays open for whoever gave it."""
        opened = self.__dict__
        if "bus" in opened and self.given_bus is None:
            self.bus.close()
        if "store" in opened and self.given_store is None:
            self.store.close()
        if "state" in opened and self.given_state is None:
            self.state.close()


def schemas() -> dict[str, tuple[str, ...]]:
    """Every state component's schema steps, by component (the keys of COMPONENT_FILES)."""
    from alerts import digest, incidents, outbox, replays, silences, source_notices
    from alerts import state as detector
    from crawlers import health
    from crawlers import state as fetch
    from listener import brand_settings, stories, watch_versions
    from listener.web import accounts
    from listener.web import feedback as mention_feedback
    from models import feedback as sentiment_feedback

    return {
        "accounts": accounts.MIGRATIONS,
        "brand_settings": brand_settings.MIGRATIONS,
        "watch_versions": watch_versions.MIGRATIONS,
        "mention_feedback": mention_feedback.MIGRATIONS,
        "sentiment_feedback": sentiment_feedback.MIGRATIONS,
        "incidents": incidents.MIGRATIONS,
        "silences": silences.MIGRATIONS,
        "slack_replays": replays.MIGRATIONS,
        "outbox": outbox.MIGRATIONS,
        "detector": detector.MIGRATIONS,
        "stories": stories.MIGRATIONS,
        "fetch": fetch.MIGRATIONS,
        "source_health": health.MIGRATIONS,
        "source_notices": source_notices.MIGRATIONS,
        "digests": digest.MIGRATIONS,
    }


def migrate(state: StateDatabases) -> dict[str, int]:
    """Bring every component's tables to this version's schema; steps applied per component.

    Safe to run again (nothing to apply) and from two hosts at once (they take turns).
    """
    return {name: state.db(name).migrate(name, steps) for name, steps in schemas().items()}


# --- one builder per bus stage -------------------------------------------------------------------


def _match(w: Wiring) -> Stage:
    from listener.stages import LiveMatchStage

    return LiveMatchStage(w.config.brands, w.state.db("watch_versions"))


def _classify(w: Wiring) -> Stage:
    from listener.stages import ClassifyStage
    from models.loader import load_classifier
    from models.promotion import PromotedModels

    cfg = w.config.classifier
    promoted = PromotedModels(
        w.config.data_dir / "models",
        w.classifier_factory(),
        lambda path: load_classifier(cfg.model_copy(update={"model": str(path)})),
        clock=w.clock,
    )
    return ClassifyStage(promoted.fallback, brand_targeting=cfg.brand_targeting, promoted=promoted)


def _index(w: Wiring) -> Stage:
    from listener.stages import IndexStage
    from listener.stories import StoryIndex

    return IndexStage(w.store, stories=StoryIndex(w.state.db("stories")))


def _detect(w: Wiring) -> Stage:
    from alerts.live_detect import LiveDetectStage

    def now() -> datetime:
        return datetime.fromtimestamp(w.clock(), UTC)

    return LiveDetectStage(
        w.config.brands, w.state.db("brand_settings"), state_path=w.state.db("detector"), clock=now
    )


def _notify(w: Wiring) -> Stage:
    from alerts.outbox import Outbox
    from alerts.stages import NotifyStage

    # The outbox keeps a restarted (or a second) notify process from posting an alert twice.
    return NotifyStage(w.notifiers, outbox=Outbox(w.state.db("outbox")), desk=w.desk())


def _incidents(w: Wiring) -> Stage:
    """Escalation, reminders and, with Slack, the weekly digest."""
    from alerts.digest import DigestLog, WeeklyDigest
    from alerts.escalation import EscalationStage
    from listener.brand_settings import LiveBrands

    desk = w.desk()
    if w.slack is None:
        return EscalationStage(desk, None)
    weekly = WeeklyDigest(
        desk.incidents,
        LiveBrands(w.config.brands, w.state.db("brand_settings")).current,
        w.slack,
        DigestLog(w.state.db("digests")),
        w.config.slack.default_channel,
    )
    return EscalationStage(desk, w.slack, weekly)


_BUILDERS: dict[str, Callable[[Wiring], Stage]] = {
    "match": _match,
    "classify": _classify,
    "index": _index,
    "detect": _detect,
    "notify": _notify,
    "incidents": _incidents,
}
assert tuple(_BUILDERS) == BUS_STAGES


def guard(name: str, target: Callable[[], None], stop: threading.Event) -> Callable[[], None]:
    """A crashed thread stops the whole process loudly instead of leaving a silent hole."""

    def run() -> None:
        try:
            target()
        except Exception:
            log.exception("%s crashed; stopping", name)
            stop.set()

    return run
