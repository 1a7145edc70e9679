"""One stage as its own process: `listener run --stage classify`.

In the distributed deployment every stage runs in its own process (container),
joined to the consumer group named after the stage, so any number of copies of
a stage share its topic's partitions. Only the stage that is run is built: a
`match` process does not load the sentiment model, and only `index` opens the
search store.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from listener.config import Config
from models.classifier import Classifier
from pipelines.bus import Bus
from pipelines.runtime import StageRunner
from pipelines.stage import Stage

__all__ = ["STAGES", "build_stage", "run_stage"]

log = logging.getLogger(__name__)

STAGES = ("crawl", "match", "classify", "index", "detect", "notify")


def build_stage(name: str, config: Config, classifier_factory: Callable[[], Classifier]) -> Stage:
    """The named bus stage, built from the config alone (`crawl` is not a bus stage)."""
    from alerts.stages import NotifyStage
    from listener.app import _default_notifiers, open_store
    from listener.stages import ClassifyStage, IndexStage
    from listener.watch_versions import LiveMatchStage

    if name == "match":
        return LiveMatchStage(config.brands, config.data_dir / "web.db")
    if name == "classify":
        return ClassifyStage(classifier_factory(), brand_targeting=config.classifier.brand_targeting)
    if name == "index":
        from listener.stories import StoryIndex

        return IndexStage(open_store(config), stories=StoryIndex(config.data_dir / "stories.db"))
    if name == "detect":
        from listener.brand_settings import LiveDetectStage

        return LiveDetectStage(config.brands, config.data_dir / "web.db", config.data_dir / "detector.db")
    if name == "notify":
        from alerts.outbox import Outbox

        # The outbox keeps a restarted notify process from posting an alert twice.
        return NotifyStage(_default_notifiers(config), outbox=Outbox(config.data_dir / "outbox.db"))
    raise ValueError(f"unknown stage {name!r}; choose one of {', '.join(STAGES)}")


def run_stage(
    name: str,
    config: Config,
    stop: threading.Event,
    classifier_factory: Callable[[], Classifier],
    *,
    metrics: tuple[str, int] | None = None,
) -> None:
    """Run one stage until `stop` is set; between batches, so everything done is committed.

    With `metrics` (host, port), `/metrics` and `/healthz` are served from the
    start, so a health check sees "starting" while the model loads.
    """
    from listener.app import open_bus
    from listener.observability import MetricsServer, set_process_stage

    set_process_stage(name)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    bus = open_bus(config)
    runners: list[StageRunner] = []
    server = None
    if metrics is not None:
        host, port = metrics
        server = MetricsServer(lambda: runners, bus, host, port, expect_runners=name != "crawl").start()
    try:
        if name == "crawl":
            _crawl(config, bus, stop)
            return
        runners.append(StageRunner(bus, build_stage(name, config, classifier_factory)))
        log.info("stage %s: consuming %s in group %s", name, runners[0].stage.input_topic, runners[0].group)
        runners[0].run_forever(stop)
    finally:
        if server is not None:
            server.stop()
        bus.close()


def _crawl(config: Config, bus: Bus, stop: threading.Event) -> None:
    from crawlers.factory import build_sources
    from crawlers.scheduler import Scheduler
    from crawlers.state import FetchState
    from listener.records import Document, encode

    def publish(docs: list[Document]) -> None:
        bus.publish_many("documents", [(doc.source, encode(doc)) for doc in docs])

    state = FetchState(config.data_dir / "fetch.db")
    from listener.live_sources import SourceSync

    scheduler = Scheduler(build_sources(config, state), state, publish=publish)
    sync = SourceSync(scheduler, config.brands, config.data_dir / "web.db", config.limits, state)
    try:
        scheduler.run_forever(stop, on_tick=sync.check)
    finally:
        scheduler.close()
