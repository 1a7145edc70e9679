"""Source changes saved in the web app reach the running scheduler without a restart.

`SourceSync.check` runs on the scheduler's own thread (its `on_tick` hook):
when the effective brands changed, it compares each source section by name
with what the scheduler runs, and adds, removes or rebuilds only the sources
whose settings differ. A change that cannot be built (a name defined two
ways, a broken section) is logged and the scheduler keeps its sources.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crawlers.factory import build_source, sections_by_name
from crawlers.scheduler import Scheduler
from crawlers.state import FetchState
from listener.brand_settings import BrandsWatcher
from listener.config import BrandConfig, Limits
from listener.errors import ListenerError
from listener.statedb import StateDB
from listener.textsafe import terminal_safe

__all__ = ["SourceSync"]

log = logging.getLogger(__name__)


class SourceSync:
    """Keeps `scheduler`'s sources equal to the effective brands' sources."""

    def __init__(
        self,
        scheduler: Scheduler,
        brands: Sequence[BrandConfig],
        settings: StateDB | Path,
        limits: Limits,
        state: FetchState,
        *,
        check_every_s: float = 5.0,
    ) -> None:
        self.scheduler = scheduler
        self.limits = limits
        self.state = state
        self.watcher = BrandsWatcher(brands, settings, check_every_s)
        self.running: dict[str, Any] = sections_by_name(brands)

    def check(self) -> None:
        brands = self.watcher.changed()
        if brands is None:
            return
        try:
            wanted = sections_by_name(brands)
            built = {
                name: build_source(section, self.limits, self.state)
                for name, section in wanted.items()
                if self.running.get(name) != section
            }
        except (ListenerError, ValueError) as exc:
            log.warning(
                "sources: keeping the running sources; the saved ones cannot be used: %s",
                terminal_safe(str(exc)),
            )
            return
        for name in [n for n in self.running if n not in wanted]:
            self.scheduler.set_source(name, None)
            log.info("sources: %s switched off", terminal_safe(name))
        for name, source in built.items():
            # A source whose settings changed starts afresh: another URL must not get the old validators.
            self.scheduler.set_source(name, source, fresh=name in self.running)
            log.info(
                "sources: %s %s", terminal_safe(name), "reconfigured" if name in self.running else "added"
            )
        self.running = wanted
