"""One stage as its own process: `listener run --stage classify`.

In the distributed deployment every stage runs in its own process (container).
Bus stages join the consumer group named after the stage, so any number of
copies of a stage share its topic's partitions. The stage itself, and
everything it works with, is built by `listener.wiring`, exactly as the
one-process monitor builds it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from listener.app import Housekeeping, source_health_loop
from listener.config import Config
from listener.datadir import StateDatabases
from listener.wiring import BUS_STAGES, STAGES, Wiring, guard
from models.classifier import Classifier
from pipelines.runtime import StageRunner
from pipelines.stage import Stage

__all__ = ["STAGES", "build_stage", "run_stage"]

log = logging.getLogger(__name__)


def build_stage(name: str, config: Config, classifier_factory: Callable[[], Classifier]) -> Stage:
    """The named bus stage, built from the config alone, as `run --stage` builds it."""
    return Wiring(config, classifier_factory).stage(name)


def run_stage(
    name: str,
    config: Config,
    stop: threading.Event,
    classifier_factory: Callable[[], Classifier],
    *,
    metrics: tuple[str, int] | None = None,
    web: tuple[str, int] = ("127.0.0.1", 8080),
    state: StateDatabases | None = None,
) -> None:
    """Run one stage until `stop` is set; between batches, so everything done is committed.

    With `metrics` (host, port), `/metrics` and `/healthz` are served from the
    start, so a health check sees "starting" while the model loads.
    """
    from listener.observability import MetricsServer, set_process_stage

    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; choose one of {', '.join(STAGES)}")
    set_process_stage(name)
    wiring = Wiring(config, classifier_factory, given_state=state)
    runners: list[StageRunner] = []
    server = None
    if metrics is not None:
        host, port = metrics
        server = MetricsServer(
            lambda: runners, wiring.bus, host, port, expect_runners=name in BUS_STAGES
        ).start()
    try:
        if name in BUS_STAGES:
            _bus_stage(name, wiring, runners, stop)
        else:
            _SERVICES[name](wiring, stop, web)
    finally:
        if server is not None:
            server.stop()
        wiring.close()


def _bus_stage(name: str, wiring: Wiring, runners: list[StageRunner], stop: threading.Event) -> None:
    runners.append(StageRunner(wiring.bus, wiring.stage(name)))
    log.info("stage %s: consuming %s in group %s", name, runners[0].stage.input_topic, runners[0].group)
    side: threading.Thread | None = None
    if name == "index":  # the process that owns the search store expires old mentions
        keeping = Housekeeping(wiring, seen_ids=False, bus_log=False)
        side = threading.Thread(target=guard("housekeeping", lambda: keeping.run_forever(stop), stop))
        side.daemon = True
        side.start()
    runners[0].run_forever(stop)


def _crawl(wiring: Wiring, stop: threading.Event, _web: tuple[str, int]) -> None:
    scheduler, follow = wiring.scheduler()
    keeping = Housekeeping(wiring, mentions=False, bus_log=False)
    for label, target in (
        ("housekeeping", lambda: keeping.run_forever(stop)),
        ("source-health", lambda: source_health_loop(wiring, stop)),
    ):
        threading.Thread(target=guard(label, target, stop), name=label, daemon=True).start()
    try:
        scheduler.run_forever(stop, on_tick=follow)
    finally:
        scheduler.close()


def _interactivity(wiring: Wiring, stop: threading.Event, _web: tuple[str, int]) -> None:
    server = wiring.interactivity()
    if server is None:
        raise ValueError("the interactivity stage needs slack.bot_token and slack.signing_secret")
    server.start()
    try:
        stop.wait()
    finally:
        server.stop()


def _web(wiring: Wiring, stop: threading.Event, web: tuple[str, int]) -> None:
    wiring.serve_web(web[0], web[1], stop)


_SERVICES: dict[str, Callable[[Wiring, threading.Event, tuple[str, int]], None]] = {
    "crawl": _crawl,
    "interactivity": _interactivity,
    "web": _web,
}
