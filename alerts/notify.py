"""The notify stage as a chain of small steps, in Alertmanager's shape.

    silence -> open or join incident -> dedup -> notify with retry -> record

Each step is a small object that can be built and tested alone; `NotifyStage`
only composes them. The first two act once per alert; the last three once per
`Delivery` (one alert status for one notifier), so a notifier that failed is
retried without re-sending through the ones that worked.

Dedup is where two copies of the stage meet: with a shared outbox, its claim
holds the delivery's row lock from before the notifier is called until the
delivery is recorded, so of two copies handling one alert during a Kafka
rebalance exactly one posts it (see `alerts.outbox`).

A resolved alert carries the id of the alert it resolves, so `(id, status)`
names one message, and the firing message's reference (Slack's ts) is what the
later messages of that alert reply under.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from alerts.notifier import Notifier
from alerts.outbox import Outbox
from alerts.response import Desk
from listener.errors import NotifierError
from listener.records import Alert, Record
from pipelines.stage import Output

__all__ = [
    "ALERTS_TOPIC",
    "Dedup",
    "Delivery",
    "NotifyStage",
    "OpenIncident",
    "RecordDelivery",
    "Retry",
    "SilenceFilter",
    "status_key",
]

log = logging.getLogger(__name__)

ALERTS_TOPIC = "alerts"


def status_key(alert: Alert) -> str:
    """What one message is: firing, the n-th update, or the spike's end after n updates (a
    spike back within its cool-down continues with an update, so it can end twice)."""
    if alert.status == "update" or (alert.status == "resolved" and alert.revision):
        return f"{alert.status}-{alert.revision}"
    return alert.status


@dataclass(frozen=True)
class Delivery:
    """One message: an alert at one status, for the notifier at `notifier` in the stage's list."""

    alert: Alert
    notifier: int

    @property
    def status(self) -> str:
        return status_key(self.alert)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.alert.id, self.status, self.notifier)


class SilenceFilter:
    """Step 1: a spike that fired under a silence is not posted, nor are its updates and end."""

    def __init__(self, desk: Desk | None) -> None:
        self.desk = desk

    def __call__(self, alert: Alert) -> bool:
        """True when the alert goes on down the chain."""
        if self.desk is None or self.desk.admit(alert):
            return True
        log.info("notify: %s alert %s for %s is silenced", alert.status, alert.id, alert.brand)
        return False


class OpenIncident:
    """Step 2: a firing alert's incident exists before its message, so the buttons find it.

    Opening is idempotent: when the incidents stage opened it first, this joins it.
    """

    def __init__(self, desk: Desk | None) -> None:
        self.desk = desk

    def __call__(self, alert: Alert) -> None:
        if self.desk is not None and alert.status == "firing":
            self.desk.open(alert)


class Dedup:
    """Step 3: what was sent, remembered for the process and, with an outbox, across
    restarts and across copies of the stage."""

    def __init__(self, outbox: Outbox | None = None, remember: int = 10_000) -> None:
        self.outbox = outbox
        self._remember = remember
        self._sent: dict[tuple[str, str, int], str | None] = {}

    @contextmanager
    def claim(self, delivery: Delivery) -> Iterator[bool]:
        """True: deliver now, and `record` inside the block. False: it was sent already."""
        alert_id, status, notifier = delivery.key
        if delivery.key in self._sent or (
            self.outbox is not None and self.outbox.state(alert_id, status, notifier) == "sent"
        ):
            log.debug("notify: %s %s already sent by notifier %d", status, alert_id, notifier)
            yield False
            return
        if self.outbox is None:
            yield True
            return
        with self.outbox.claim(alert_id, status, notifier) as found:
            if found.already_sent:
                log.info("notify: %s %s was sent by another copy meanwhile", status, alert_id)
            elif found.attempts > 1:
                log.warning(
                    "notify: %s alert %s may have been sent before (attempt %d); "
                    "sending again rather than lose it",
                    status,
                    alert_id,
                    found.attempts,
                )
            yield not found.already_sent

    def record(self, delivery: Delivery, ref: str | None) -> None:
        """Mark it sent; inside `claim`, this commits with the claim."""
        self._sent[delivery.key] = ref
        if self.outbox is not None:
            self.outbox.sent(*delivery.key, ref)
        if len(self._sent) > self._remember:
            del self._sent[next(iter(self._sent))]

    def thread(self, delivery: Delivery) -> str | None:
        """The firing message a later message replies under, once it was sent."""
        alert = delivery.alert
        if alert.status == "firing":
            return None
        if self.outbox is not None:
            return self.outbox.ref(alert.id, "firing", delivery.notifier)
        return self._sent.get((alert.id, "firing", delivery.notifier))


class Retry:
    """Step 4: deliver, retrying what the notifier says is retryable, with exponential
    backoff or the server's Retry-After (within `max_retry_after`)."""

    def __init__(
        self,
        sleep: Callable[[float], None] = time.sleep,
        *,
        attempts: int = 4,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        max_retry_after: float = 300.0,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.sleep = sleep
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after

    def __call__(self, notifier: Notifier, alert: Alert, thread: str | None = None) -> str | None:
        """The delivery reference; raises the last `NotifierError` when it gives up."""
        for attempt in range(1, self.attempts + 1):
            try:
                return notifier.send(alert) if thread is None else notifier.reply(alert, thread)
            except NotifierError as exc:
                if not exc.retryable or attempt == self.attempts:
                    _give_up(type(notifier).__name__, alert, attempt, exc)
                    raise
                delay = self.delay(attempt, exc.retry_after)
                log.warning(
                    "notify: %s failed (attempt %d/%d), retrying in %.1fs: %s",
                    type(notifier).__name__,
                    attempt,
                    self.attempts,
                    delay,
                    exc,
                )
                self.sleep(delay)
        raise AssertionError("unreachable")

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            # Honour the server, within reason: a stage stuck for an hour helps nobody.
            return min(max(0.0, retry_after), self.max_retry_after)
        return float(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))


def _give_up(label: str, alert: Alert, attempt: int, exc: NotifierError) -> None:
    if not exc.retryable:
        log.error(
            "notify: %s refused %s alert %s for %s, not retrying: %s",
            label,
            alert.status,
            alert.id,
            alert.brand,
            exc,
        )
    else:
        log.error("notify: %s failed %d times for alert %s; giving up: %s", label, attempt, alert.id, exc)


class RecordDelivery:
    """Step 5: the delivery is marked sent, and a firing message is attached to its incident
    so that escalations thread under it and the buttons rewrite it."""

    def __init__(self, dedup: Dedup, desk: Desk | None) -> None:
        self.dedup = dedup
        self.desk = desk

    def __call__(self, delivery: Delivery, notifier: Notifier, ref: str | None) -> None:
        self.dedup.record(delivery, ref)
        alert = delivery.alert
        if self.desk is None or alert.status != "firing" or ref is None:
            return
        channel = notifier.channel(alert)
        if channel:
            self.desk.incidents.attach_message(alert.id, str(channel), ref)


class NotifyStage:
    """Sends each alert to each notifier through the chain of steps above.

    With an `outbox` what was sent survives restarts and is shared by every copy
    of the stage, and a resolution is posted as a reply to its firing message;
    without one, the record lives in memory for the process. With a `desk`,
    silences apply and incidents open.
    """

    name = "notify"
    input_topic = ALERTS_TOPIC
    idle_tick: float | None = None

    def after_commit(self) -> None:
        """Nothing to confirm: the outbox records each delivery as it happens."""

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
        self.notifiers = list(notifiers)
        self.outbox = outbox
        self.desk = desk
        self.retry = Retry(
            sleep,
            attempts=attempts,
            backoff=backoff,
            max_backoff=max_backoff,
            max_retry_after=max_retry_after,
        )
        self.silence = SilenceFilter(desk)
        self.open_incident = OpenIncident(desk)
        self.dedup = Dedup(outbox, remember)
        self.record = RecordDelivery(self.dedup, desk)

    def handle(self, records: Sequence[Record]) -> list[Output]:
        for record in records:
            if not isinstance(record, Alert):
                log.warning("notify: ignoring a %s on alerts", type(record).__name__)
                continue
            if not self.silence(record):
                continue
            self.open_incident(record)
            for index, notifier in enumerate(self.notifiers):
                self.deliver(Delivery(record, index), notifier)
        return []

    def deliver(self, delivery: Delivery, notifier: Notifier) -> None:
        """Dedup, notify with retry and record one message."""
        with self.dedup.claim(delivery) as mine:
            if mine:
                ref = self.retry(notifier, delivery.alert, self.dedup.thread(delivery))
                self.record(delivery, notifier, ref)

    def close(self) -> None:
        if self.outbox is not None:
            self.outbox.close()
        if self.desk is not None:
            self.desk.close()
