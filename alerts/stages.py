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

from alerts.notifier import Notifier
from alerts.outbox import Outbox
from alerts.response import Desk
from alerts.spike import DetectorSettings, SpikeDetector
from alerts.state import DetectorStore
from listener.config import AlertRule
from listener.errors import NotifierError
from listener.records import Alert, Record, ScoredMention
from listener.statedb import StateDB
from pipelines.stage import Output

__all__ = ["ALERTS_TOPIC", "DetectStage", "NotifyStage"]

log = logging.getLogger(__name__)

ALERTS_TOPIC = "alerts"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _status_key(alert: Alert) -> str:
    """What one message is: firing, resolved, or the n-th update of the spike."""
    return f"update-{alert.revision}" if alert.status == "update" else alert.status


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


class NotifyStage:
    """Sends each alert to each notifier, retrying what the notifier says is retryable.

    With an `outbox` (SQLite in the data dir) what was sent survives restarts,
    so a redelivered alert is not posted again, and a resolution is posted as
    a reply to its firing message (notifiers with a `reply` method, e.g.
    Slack threads). Without one, the record lives in memory for the process.
    """

    name = "notify"
    input_topic = ALERTS_TOPIC

    def __init__(
        self,
        notifiers: Sequence[Notifier],
        sleep: Callable[[float], None] = time.sleep,
        *,
        attempts: int = 4,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        max_retry_after: float = 300.0,
        remember: int = 10_000,
        outbox: Outbox | None = None,
        desk: Desk | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.notifiers = list(notifiers)
        self.sleep = sleep
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self._remember = remember
        self._sent: dict[tuple[str, str, int], str | None] = {}
        self.outbox = outbox
        self.desk = desk

    def handle(self, records: Sequence[Record]) -> list[Output]:
        for record in records:
            if not isinstance(record, Alert):
                log.warning("notify: ignoring a %s on alerts", type(record).__name__)
                continue
            if self.desk is not None:
                if not self.desk.admit(record):
                    log.info("notify: %s alert %s for %s is silenced", record.status, record.id, record.brand)
                    continue
                if record.status == "firing":
                    # Before posting, so the message's buttons always find their incident.
                    self.desk.open(record)
            for index, notifier in enumerate(self.notifiers):
                self._notify(record, index, notifier)
        return []

    def _notify(self, record: Alert, index: int, notifier: Notifier) -> None:
        status = _status_key(record)
        key = (record.id, status, index)
        if key in self._sent or self._already_sent(record, index):
            log.debug("notify: %s %s already sent by notifier %d", status, record.id, index)
            return
        if self.outbox is not None:
            self.outbox.sending(record.id, status, index)
        ref = self._deliver(notifier, record, self._thread(record, index))
        self._sent[key] = ref
        if self.outbox is not None:
            self.outbox.sent(record.id, status, index, ref)
        if len(self._sent) > self._remember:
            del self._sent[next(iter(self._sent))]
        channel_of = getattr(notifier, "channel", None)
        if self.desk is not None and record.status == "firing" and ref is not None and callable(channel_of):
            self.desk.incidents.attach_message(record.id, str(channel_of(record)), ref)

    def _already_sent(self, alert: Alert, index: int) -> bool:
        if self.outbox is None:
            return False
        state = self.outbox.state(alert.id, _status_key(alert), index)
        if state == "sending":
            log.warning(
                "notify: %s alert %s may have been sent before a restart; sending again rather than lose it",
                alert.status,
                alert.id,
            )
        return state == "sent"

    def _thread(self, alert: Alert, index: int) -> str | None:
        """The firing message a resolution replies to, if the notifier threads and it was sent."""
        if alert.status == "firing":
            return None
        if self.outbox is not None:
            return self.outbox.ref(alert.id, "firing", index)
        return self._sent.get((alert.id, "firing", index))

    def _deliver(self, notifier: Notifier, alert: Alert, thread: str | None = None) -> str | None:
        label = type(notifier).__name__
        reply = getattr(notifier, "reply", None)
        for attempt in range(1, self.attempts + 1):
            try:
                if thread is not None and callable(reply):
                    result = reply(alert, thread)
                    return None if result is None else str(result)
                return notifier.send(alert)
            except NotifierError as exc:
                if not exc.retryable:
                    log.error(
                        "notify: %s refused %s alert %s for %s, not retrying: %s",
                        label,
                        alert.status,
                        alert.id,
                        alert.brand,
                        exc,
                    )
                    raise
                if attempt == self.attempts:
                    log.error(
                        "notify: %s failed %d times for alert %s; giving up: %s",
                        label,
                        attempt,
                        alert.id,
                        exc,
                    )
                    raise
                delay = self._delay(attempt, exc.retry_after)
                log.warning(
                    "notify: %s failed (attempt %d/%d), retrying in %.1fs: %s",
                    label,
                    attempt,
                    self.attempts,
                    delay,
                    exc,
                )
                self.sleep(delay)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.outbox is not None:
            self.outbox.close()
        if self.desk is not None:
            self.desk.close()

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            # Honour the server, within reason: a stage stuck for an hour helps nobody.
            return min(max(0.0, retry_after), self.max_retry_after)
        return float(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))
