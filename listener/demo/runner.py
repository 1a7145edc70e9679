"""`listener demo`: the generated world on loopback, the real pipeline on top.

Nothing here is special-cased for the demo except the world and its config:
the sources, stages, model and notifiers are the product's own.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from alerts.console import ConsoleNotifier
from alerts.notifier import Notifier
from listener.app import Monitor
from listener.config import Config, load_config
from listener.demo.config import write_demo_config
from listener.demo.server import DemoServer
from listener.demo.world import build_world
from listener.records import Alert
from models.loader import load_classifier

if TYPE_CHECKING:
    from listener.web.background import BackgroundWeb

__all__ = ["AlertLatch", "run_demo"]

Echo = Callable[[str], None]


class AlertLatch:
    """A notifier that only remembers that an alert went out (for `--until-alert`)."""

    def __init__(self) -> None:
        self.fired = threading.Event()
        self.alerts: list[Alert] = []

    def send(self, alert: Alert) -> str | None:
        self.alerts.append(alert)
        if alert.status == "firing":
            self.fired.set()
        return None

    def reply(self, alert: Alert, thread_ref: str) -> str | None:
        return self.send(alert)

    def channel(self, alert: Alert) -> str | None:
        return None


def run_demo(*, until_alert: bool, timeout: float, data_dir: Path, seed: int, echo: Echo) -> int:
    started = time.monotonic()
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    world = build_world(seed=seed, t0=time.time())
    latch = AlertLatch()
    notifiers: list[Notifier] = [ConsoleNotifier(), latch]
    with DemoServer(world) as server:
        config_path = write_demo_config(data_dir / "watch.yaml", server.url, data_dir)
        config = load_config(config_path)
        echo(f"Demo world for {world.brand} serving on {server.url}")
        echo(f"Config: {config_path}   Data: {data_dir}")
        echo("Loading the sentiment model and starting the pipeline...")
        monitor = Monitor(
            config, classifier_factory=lambda: load_classifier(config.classifier), notifiers=notifiers
        )
        stop = threading.Event()
        monitor.start(stop)
        web = None if until_alert else _start_web(config, echo)
        echo(f"Pipeline running ({time.monotonic() - started:.0f}s). Progress every 10s; Ctrl-C stops.")
        code = _watch(monitor, latch, stop, until_alert, timeout, started, echo)
        stop.set()
        if web is not None:
            web.stop()
        monitor.join()
        monitor.close()
    echo("\nSearch what was indexed:")
    echo(f"  listener search -c {config_path} 'outage OR down' --sentiment negative")
    return code


def _start_web(config: Config, echo: Echo) -> BackgroundWeb:
    """The web app beside the pipeline, on a free loopback port (not under --until-alert)."""
    from listener.web.background import BackgroundWeb

    web = BackgroundWeb(config).start()
    echo(f"Web app: {web.url}/  (first login, one use: {web.first_login})")
    return web


def _watch(
    monitor: Monitor,
    latch: AlertLatch,
    stop: threading.Event,
    until_alert: bool,
    timeout: float,
    started: float,
    echo: Echo,
) -> int:
    next_report = time.monotonic() + 10.0
    try:
        while not stop.is_set():
            if latch.fired.wait(0.5) and until_alert:
                echo(f"First alert after {time.monotonic() - started:.0f}s (model loading included).")
                return 0
            if time.monotonic() >= next_report:
                echo(_progress(monitor, started))
                next_report += 10.0
            if until_alert and time.monotonic() - started > timeout:
                echo(f"No alert within {timeout:.0f}s.")
                return 1
    except KeyboardInterrupt:
        echo("Stopping.")
        return 0
    echo("The monitor stopped unexpectedly; see the log above.")
    return 1


def _progress(monitor: Monitor, started: float) -> str:
    stats = {runner.stage.name: runner.stats.snapshot() for runner in monitor.runners}

    def count(stage: str, field: str) -> int:
        snapshot = stats.get(stage)
        return int(getattr(snapshot, field)) if snapshot is not None else 0

    return (
        f"[{time.monotonic() - started:4.0f}s] documents {count('match', 'messages_in')}"
        f" -> mentions {count('match', 'messages_out')} -> scored {count('classify', 'messages_out')}"
        f" -> indexed {count('index', 'messages_in')}; alerts {count('detect', 'messages_out')}"
    )
