"""The alerting stages: `detect` (scored mentions -> alerts) and `notify` (alerts -> people).

A resolved alert carries the id of the alert it resolves, so downstream
(incidents, Slack threads) can pair them; `(id, status)` is what identifies
one notification.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from alerts.notify import ALERTS_TOPIC, NotifyStage  # the notify stage's steps live in alerts.notify
from alerts.spike import DetectorSettings, SpikeDetector
from alerts.state import DetectorStore
from listener.config import AlertRule
from listener.records import Record, ScoredMention
from listener.statedb import StateDB
from pipelines.stage import Output

__all__ = ["ALERTS_TOPIC", "DetectStage", "NotifyStage"]

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DetectStage:
    """Counts negative mentions per brand and emits firing/resolved alerts.

    State is saved in one transaction per batch; a batch redelivered after a
    crash is recognised by mention id and not counted twice.

    Several copies may share one database: each batch locks the rows of the
    brands it evaluates (every configured brand, in one order, so two copies
    never deadlock) and reloads a brand whose version moved since this copy
    last saved it. Another copy's spike is then seen, never fired again.
    """

    name = "detect"
    input_topic = "mentions.scored"
    # Seconds between empty `handle([])` calls from the runner, so that a spike on a
    # brand that has gone quiet still resolves.
    idle_tick = 15.0

    def __init__(
        self,
        rules: Mapping[str, AlertRule],
        channels: Mapping[str, str | None],
        state_path: DetectorStore | StateDB | str | Path,
        clock: Callable[[], datetime] = _utcnow,
        settings: DetectorSettings | None = None,
    ) -> None:
        self.rules = {brand.casefold(): (brand, rule) for brand, rule in rules.items()}
        self.channels = {brand.casefold(): channel for brand, channel in channels.items()}
        self._owns_store = not isinstance(state_path, DetectorStore)  # a given store is its giver's
        self.store = state_path if isinstance(state_path, DetectorStore) else DetectorStore(state_path)
        self.clock = clock
        self.settings = settings or DetectorSettings()
        self._detectors: dict[str, SpikeDetector] = {}
        self._versions: dict[str, int] = {}  # the stored version each cached detector matches

    def detector(self, brand: str) -> SpikeDetector | None:
        key = brand.casefold()
        if key not in self.rules:
            return None
        if key not in self._detectors:
            name, rule = self.rules[key]
            state, self._versions[key] = self.store.load_versioned(name)
            self._detectors[key] = SpikeDetector(
                name,
                rule,
                state,
                clock=self.clock,
                settings=self.settings,
                channel=self.channels.get(key),
            )
        return self._detectors[key]

    def handle(self, records: Sequence[Record]) -> list[Output]:
        try:
            with self.store.transaction():
                self._claim()
                return self._handle(records)
        except BaseException:
            # In-memory state may be ahead of the rolled-back file; reload it next time.
            self._detectors.clear()
            self._versions.clear()
            raise

    def _claim(self) -> None:
        """Lock every brand this batch evaluates; forget detectors another copy has moved past."""
        for key in sorted(self.rules):
            version = self.store.lock(self.rules[key][0])
            if key in self._detectors and self._versions.get(key) != version:
                log.info("detect: %s changed elsewhere; reloading its state", self.rules[key][0])
                del self._detectors[key]

    def _handle(self, records: Sequence[Record]) -> list[Output]:
        for record in records:
            if not isinstance(record, ScoredMention):
                log.warning("detect: ignoring a %s on mentions.scored", type(record).__name__)
                continue
            detector = self.detector(record.brand)
            if detector is None:
                log.debug("detect: brand %r has no alert rule; ignored", record.brand)
                continue
            if self.store.first_sighting(detector.brand, record.id, detector.bucket_of(record)):
                detector.update(record)
        # Every configured brand is evaluated, so the wall clock can close a silent brand's spike.
        outputs: list[Output] = []
        for key in self.rules:
            detector = self.detector(key)
            assert detector is not None
            for alert in detector.evaluate():
                log.info(
                    "detect: %s %s for %s (%d vs %.1f expected)",
                    alert.status,
                    alert.rule,
                    alert.brand,
                    alert.observed,
                    alert.expected,
                )
                self.store.log_alert(alert)
                outputs.append(Output(topic=ALERTS_TOPIC, key=alert.brand, record=alert))
            self._versions[key] = self.store.save(detector.brand, detector.state)
            horizon = detector.prune_horizon()
            if horizon is not None:
                self.store.forget_seen_before(detector.brand, horizon)
        return outputs

    def close(self) -> None:
        if self._owns_store:
            self.store.close()
