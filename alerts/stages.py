"""The alerting stages: `detect` (scored mentions -> alerts) and `notify` (alerts -> people).

A resolved alert carries the id of the alert it resolves, so downstream
(incidents, Slack threads) can pair them; `(id, status)` is what identifies
one notification.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from alerts.notify import ALERTS_TOPIC, NotifyStage  # the notify stage's steps live in alerts.notify
from alerts.spike import DetectorSettings, SpikeDetector
from alerts.state import DetectorStore
from listener.config import AlertRule
from listener.records import Alert, Record, ScoredMention
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
        *,
        redeliver_after: float = 30.0,
    ) -> None:
        self.rules = {brand.casefold(): (brand, rule) for brand, rule in rules.items()}
        # An alert staged this long ago (wall seconds) and still unconfirmed was lost on its way
        # to the bus. Younger ones may be another copy's, being published right now.
        self.redeliver_after = redeliver_after
        self.channels = {brand.casefold(): channel for brand, channel in channels.items()}
        self._owns_store = not isinstance(state_path, DetectorStore)  # a given store is its giver's
        self.store = state_path if isinstance(state_path, DetectorStore) else DetectorStore(state_path)
        self.clock = clock
        self.settings = settings or DetectorSettings()
        self._detectors: dict[str, SpikeDetector] = {}
        self._versions: dict[str, int] = {}  # the stored version each cached detector matches
        self._emitted: list[Alert] = []  # the last batch's alerts, confirmed by after_commit
        self._forgotten: dict[str, int] = {}  # the seen-id horizon last applied, per brand
        self._evaluated: dict[str, datetime] = {}  # when each brand was last evaluated

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
        """Count, evaluate and save in one transaction, which also keeps every alert decided in
        the detector's outbox; `after_commit` clears them once the runner has published them.

        Saving state before the alert is on the bus would be commit-then-publish: a crash in
        between would leave the windows evaluated and the alert gone for good. Instead an alert
        still unconfirmed `redeliver_after` seconds after it was decided is emitted again with
        the next batch or idle tick (downstream is idempotent by alert id and status, so a
        repeat costs nothing; the wait keeps a copy from repeating one another copy is still
        publishing).
        """
        due = self._due(records)
        try:
            with self.store.transaction():
                self._claim(due)
                pending = self.store.unconfirmed(staged_before=time.time() - self.redeliver_after)
                if pending:
                    log.warning("detect: emitting %d alert(s) again that were never confirmed", len(pending))
                outputs = [Output(ALERTS_TOPIC, a.brand, a) for a in pending] + self._handle(records, due)
        except BaseException:
            # In-memory state may be ahead of the rolled-back file; reload it next time.
            self._detectors.clear()
            self._versions.clear()
            self._forgotten.clear()
            raise
        self._emitted = [o.record for o in outputs if isinstance(o.record, Alert)]
        return outputs

    def after_commit(self) -> None:
        if self._emitted:
            with self.store.transaction():
                self.store.confirm(self._emitted)
            self._emitted = []

    def _due(self, records: Sequence[Record]) -> list[str]:
        """The brands this batch evaluates: those it has mentions of, and any not evaluated for
        `idle_tick` (so the clock still closes a silent brand's spike while others are busy);
        every brand on an idle tick. Two copies then lock only what they work on, and a copy
        busy with its own brands does not hold another copy's."""
        now = self.clock()
        if not records:
            return sorted(self.rules)
        named = {r.brand.casefold() for r in records if isinstance(r, ScoredMention)}
        stale = {
            key
            for key in self.rules
            if key not in self._evaluated or (now - self._evaluated[key]).total_seconds() >= self.idle_tick
        }
        return sorted((named & set(self.rules)) | stale)

    def _claim(self, due: Sequence[str]) -> None:
        """Lock the brands this batch evaluates, in name order (two copies never deadlock);
        forget detectors another copy has moved past."""
        for key in due:
            version = self.store.lock(self.rules[key][0])
            if key in self._detectors and self._versions.get(key) != version:
                log.info("detect: %s changed elsewhere; reloading its state", self.rules[key][0])
                del self._detectors[key]

    def _handle(self, records: Sequence[Record], due: Sequence[str]) -> list[Output]:
        self._count(records)
        outputs: list[Output] = []
        now = self.clock()
        for key in due:
            self._evaluated[key] = now
            outputs += self._evaluate(key)
        return outputs

    def _count(self, records: Sequence[Record]) -> None:
        """Count the batch's mentions not seen before, recording them all in one statement."""
        offered: list[tuple[SpikeDetector, ScoredMention]] = []
        for record in records:
            if not isinstance(record, ScoredMention):
                log.warning("detect: ignoring a %s on mentions.scored", type(record).__name__)
                continue
            detector = self.detector(record.brand)
            if detector is None:
                log.debug("detect: brand %r has no alert rule; ignored", record.brand)
                continue
            offered.append((detector, record))
        fresh = self.store.first_sightings([(d.brand, m.id, d.bucket_of(m)) for d, m in offered])
        for detector, mention in offered:
            if (detector.brand, mention.id) in fresh:
                fresh.discard((detector.brand, mention.id))  # a repeat within the batch counts once
                detector.update(mention)

    def _evaluate(self, key: str) -> list[Output]:
        """The brand's closed windows judged, then what changed of its state saved."""
        detector = self.detector(key)
        assert detector is not None
        outputs: list[Output] = []
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
            self.store.stage_alert(alert)
            outputs.append(Output(topic=ALERTS_TOPIC, key=alert.brand, record=alert))
        # An unchanged state keeps its version, so no other copy reloads it for nothing.
        version = self.store.save_changes(detector.brand, detector.state)
        if version is not None:
            self._versions[key] = version
        horizon = detector.prune_horizon()
        if horizon is not None and horizon > self._forgotten.get(key, horizon - 1):
            self.store.forget_seen_before(detector.brand, horizon)
            self._forgotten[key] = horizon
        return outputs

    def close(self) -> None:
        if self._owns_store:
            self.store.close()
