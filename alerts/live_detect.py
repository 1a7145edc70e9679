"""The detect stage as it runs: following alert rules, channels and brands saved in the web app.

Kept apart from `alerts.stages.DetectStage` (which takes its rules once) so
that tests and benchmarks can run a detector over fixed rules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from alerts.spike import DetectorSettings, SpikeDetector
from alerts.stages import DetectStage
from alerts.state import BrandState, DetectorStore
from listener.brand_settings import BrandsWatcher
from listener.config import BrandConfig
from listener.records import Record
from listener.statedb import StateDB
from listener.textsafe import terminal_safe
from pipelines.stage import Output

__all__ = ["LiveDetectStage"]

log = logging.getLogger(__name__)


class LiveDetectStage(DetectStage):
    """`DetectStage` that follows alert rules and brands saved in the web app, without a restart.

    A changed rule rebuilds the brand's detector over its persisted state, so
    the next windows are judged by the new rule. Counts are kept per bucket, so
    a new bucket length restarts the brand's counts (an open spike carries
    over, to resolve or go on under the new rule). A new channel applies from
    the next spike: an open one keeps posting where its thread is. An archived
    brand is dropped (its state stays on disk for when it comes back).
    """

    def __init__(
        self,
        brands: Sequence[BrandConfig],
        path: StateDB | str | Path,
        state_path: DetectorStore | StateDB | str | Path,
        *,
        check_every_s: float = 5.0,
        clock: Callable[[], datetime] | None = None,
        settings: DetectorSettings | None = None,
    ) -> None:
        extra: dict[str, Any] = {} if clock is None else {"clock": clock}
        super().__init__(
            rules={b.name: b.alert for b in brands},
            channels={b.name: b.slack_channel for b in brands},
            state_path=state_path,
            settings=settings,
            **extra,
        )
        self.watcher = BrandsWatcher(brands, path, check_every_s)

    def handle(self, records: Sequence[Record]) -> list[Output]:
        self.follow()
        return super().handle(records)

    def detector(self, brand: str) -> SpikeDetector | None:
        found = super().detector(brand)
        if found is not None and found.state.open_spike is None:
            found.channel = self.channels.get(brand.casefold())
        return found

    def follow(self) -> None:
        brands = self.watcher.changed()
        if brands is None:
            return
        wanted = {b.name.casefold() for b in brands}
        for key in [k for k in self.rules if k not in wanted]:
            name, _ = self.rules.pop(key)
            self._detectors.pop(key, None)
            log.info("detect: %s no longer alerts (archived)", terminal_safe(name))
        for brand in brands:
            key = brand.name.casefold()
            self.channels[key] = brand.slack_channel
            old = self.rules.get(key)
            if old is not None and old[1] == brand.alert:
                continue
            self.rules[key] = (brand.name, brand.alert)
            self._detectors.pop(key, None)
            if old is not None and old[1].bucket != brand.alert.bucket:
                self._restart_counts(brand.name)
            what = "a new rule" if old else "its first rule"
            log.info("detect: %s now alerts by %s", terminal_safe(brand.name), what)

    def _restart_counts(self, brand: str) -> None:
        with self.store.transaction():
            kept = self.store.load(brand).open_spike
            self.store.save(brand, BrandState(open_spike=kept))
            self.store.forget_seen_before(brand, 2**62)
