"""The notify chain step by step, and two notify copies sharing one outbox.

silence -> open or join incident -> dedup -> notify with retry -> record: each
step is driven alone here, over both state engines where it keeps state. The
last tests are the distributed deployment's rebalance: two notify copies
handle one alert at once against one shared outbox, and Slack sees it once.
"""

from __future__ import annotations

import logging
import threading

import pytest
from alertstory import T0, make_alert
from slack_sdk import WebClient
from slack_server import TOKEN, FakeSlack, fake_slack
from state_engines import migrated

from alerts import incidents, outbox, silences
from alerts.console import ConsoleNotifier
from alerts.incidents import IncidentStore
from alerts.notify import (
    Dedup,
    Delivery,
    NotifyStage,
    OpenIncident,
    RecordDelivery,
    Retry,
    SilenceFilter,
    status_key,
)
from alerts.oncall import Roster
from alerts.outbox import Outbox
from alerts.response import Desk
from alerts.silences import SilenceStore
from alerts.slack import SlackNotifier
from listener.errors import NotifierError
from listener.records import Alert
from listener.statedb import StateDB

NOW = T0.timestamp() + 600


def desk_on(db: StateDB) -> Desk:
    return Desk(
        IncidentStore(migrated(db, "incidents", incidents.MIGRATIONS)),
        SilenceStore(migrated(db, "silences", silences.MIGRATIONS)),
        Roster({}),
        lambda: NOW,
    )


def outbox_on(db: StateDB) -> Outbox:
    return Outbox(migrated(db, "outbox", outbox.MIGRATIONS))


def slack_notifier(slack: FakeSlack) -> SlackNotifier:
    client = WebClient(token=TOKEN, base_url=slack.url, retry_handlers=[], timeout=5)
    return SlackNotifier(client, {"Acme": "#acme"})


class Scripted:
    """A notifier that fails as told, then delivers; it records what it was asked to do."""

    def __init__(self, *failures: NotifierError) -> None:
        self.failures = list(failures)
        self.calls: list[tuple[str, str | None]] = []

    def send(self, alert: Alert) -> str | None:
        return self._deliver(alert, None)

    def reply(self, alert: Alert, thread_ref: str) -> str | None:
        return self._deliver(alert, thread_ref)

    def channel(self, alert: Alert) -> str | None:
        return "#scripted"

    def _deliver(self, alert: Alert, thread: str | None) -> str | None:
        self.calls.append((alert.status, thread))
        if self.failures:
            raise self.failures.pop(0)
        return f"ref-{len(self.calls)}"


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


# --- 1. silence ------------------------------------------------------------------------------


def test_a_spike_that_fired_under_a_silence_stays_quiet_to_its_end(state_db: StateDB) -> None:
    desk = desk_on(state_db)
    desk.silences.add("Acme", 3600, now=T0.timestamp(), by="Dana")
    admit = SilenceFilter(desk)
    fired = make_alert()
    assert not admit(fired)
    assert not admit(fired.model_copy(update={"status": "resolved"}))
    assert admit(make_alert(id="other-brand", brand="Globex"))
    assert SilenceFilter(None)(fired)  # without a desk nothing is silenced


# --- 2. open or join incident ------------------------------------------------------------------


def test_a_firing_alert_opens_one_incident_and_a_redelivery_joins_it(state_db: StateDB) -> None:
    desk = desk_on(state_db)
    open_incident = OpenIncident(desk)
    fired = make_alert()
    open_incident(fired)
    open_incident(fired)
    open_incident(fired.model_copy(update={"status": "update", "revision": 1}))
    (incident,) = desk.incidents.find()
    assert incident.alert_id == fired.id and incident.state == "open"


# --- 3. dedup --------------------------------------------------------------------------------


def test_dedup_claims_a_message_once_and_threads_the_later_ones_under_it(state_db: StateDB) -> None:
    dedup = Dedup(outbox_on(state_db))
    fired = Delivery(make_alert(), 0)
    with dedup.claim(fired) as mine:
        assert mine
        dedup.record(fired, "1700.000001")
    with dedup.claim(fired) as mine:
        assert not mine
    resolved = Delivery(fired.alert.model_copy(update={"status": "resolved"}), 0)
    assert dedup.thread(fired) is None and dedup.thread(resolved) == "1700.000001"
    restarted = Dedup(outbox_on(state_db))  # a new process on the same outbox
    with restarted.claim(fired) as mine:
        assert not mine
    assert restarted.thread(resolved) == "1700.000001"


def test_a_claim_whose_delivery_dies_is_released_and_counted(state_db: StateDB) -> None:
    box = outbox_on(state_db)
    alert = make_alert()
    with pytest.raises(RuntimeError), box.claim(alert.id, "firing", 0) as claim:
        assert not claim.already_sent and claim.attempts == 1
        raise RuntimeError("killed mid-call")
    assert box.state(alert.id, "firing", 0) == "sending"
    with box.claim(alert.id, "firing", 0) as claim:
        assert not claim.already_sent and claim.attempts == 2
        box.sent(alert.id, "firing", 0, "ts-1")
    with box.claim(alert.id, "firing", 0) as claim:
        assert claim.already_sent
    assert box.ref(alert.id, "firing", 0) == "ts-1"
    box.forget_before(float("inf"))
    assert box.state(alert.id, "firing", 0) is None


def test_dedup_without_an_outbox_remembers_a_bounded_number_of_messages() -> None:
    dedup = Dedup(remember=2)
    first, *rest = [Delivery(make_alert(id=f"a{i}"), 0) for i in range(3)]
    for delivery in (first, *rest):
        with dedup.claim(delivery) as mine:
            assert mine
            dedup.record(delivery, None)
    with dedup.claim(first) as mine:
        assert mine  # forgotten: the oldest went first
    with dedup.claim(rest[-1]) as mine:
        assert not mine


def test_each_update_of_a_spike_is_its_own_message() -> None:
    alert = make_alert()
    assert status_key(alert) == "firing"
    assert status_key(alert.model_copy(update={"status": "update", "revision": 3})) == "update-3"


# --- 4. notify with retry --------------------------------------------------------------------


def test_retry_backs_off_honours_retry_after_within_reason_and_replies_in_the_thread() -> None:
    sleeps = Sleeps()
    notifier = Scripted(
        NotifierError("reset", retryable=True),
        NotifierError("429", retryable=True, retry_after=9999),
        NotifierError("500", retryable=True),
    )
    retry = Retry(sleeps, attempts=4, backoff=0.5, max_retry_after=30)
    assert retry(notifier, make_alert(status="resolved"), "ts-1") == "ref-4"
    assert sleeps == [0.5, 30.0, 2.0]
    assert notifier.calls == [("resolved", "ts-1")] * 4


def test_retry_gives_up_at_once_on_a_refusal_and_after_the_last_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sleeps = Sleeps()
    refused = Scripted(NotifierError("channel_not_found", retryable=False))
    with caplog.at_level(logging.ERROR), pytest.raises(NotifierError):
        Retry(sleeps)(refused, make_alert())
    assert sleeps == [] and "not retrying" in caplog.text
    down = Scripted(*[NotifierError("down", retryable=True)] * 2)
    with pytest.raises(NotifierError):
        Retry(sleeps, attempts=2)(down, make_alert())
    assert len(down.calls) == 2 and "giving up" in caplog.text
    with pytest.raises(ValueError):
        Retry(sleeps, attempts=0)


# --- 5. record -------------------------------------------------------------------------------


def test_recording_a_firing_message_attaches_it_to_the_incident(state_db: StateDB) -> None:
    desk = desk_on(state_db)
    dedup = Dedup(outbox_on(state_db))
    fired = make_alert()
    desk.open(fired)
    record = RecordDelivery(dedup, desk)
    with dedup.claim(Delivery(fired, 0)) as mine:
        assert mine
        record(Delivery(fired, 0), ConsoleNotifier(), None)  # no reference, nothing to attach
    assert desk.incidents.by_alert(fired.id).ts is None  # type: ignore[union-attr]
    with dedup.claim(Delivery(fired, 1)) as mine:
        assert mine
        record(Delivery(fired, 1), Scripted(), "ts-9")
    incident = desk.incidents.by_alert(fired.id)
    assert incident is not None and (incident.channel, incident.ts) == ("#scripted", "ts-9")
    assert dedup.outbox is not None and dedup.outbox.ref(fired.id, "firing", 1) == "ts-9"


# --- the chain, and two copies of it ----------------------------------------------------------


def test_the_stage_runs_the_chain_and_declares_no_idle_tick(state_db: StateDB) -> None:
    desk = desk_on(state_db)
    notifier = Scripted()
    stage = NotifyStage([notifier], sleep=Sleeps(), outbox=outbox_on(state_db), desk=desk)
    fired = make_alert()
    assert stage.idle_tick is None
    assert stage.handle([fired, fired, fired.model_copy(update={"status": "resolved"})]) == []
    assert notifier.calls == [("firing", None), ("resolved", "ref-1")]
    assert desk.incidents.by_alert(fired.id).ts == "ref-1"  # type: ignore[union-attr]


class SlowSlack(SlackNotifier):
    """Slack taking its time, so the other copy arrives while the post is in flight."""

    def send(self, alert: Alert) -> str | None:
        threading.Event().wait(0.3)
        return super().send(alert)


def handle_at_once(stages: list[NotifyStage], alert: Alert) -> list[BaseException]:
    start = threading.Barrier(len(stages))
    errors: list[BaseException] = []

    def run(stage: NotifyStage) -> None:
        start.wait()
        try:
            stage.handle([alert])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in stages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return errors


def test_two_notify_copies_handling_one_alert_during_a_rebalance_post_it_once(state_db: StateDB) -> None:
    alert = make_alert()
    with fake_slack() as slack:
        client = WebClient(token=TOKEN, base_url=slack.url, retry_handlers=[], timeout=5)
        copies = [
            NotifyStage([SlowSlack(client, {"Acme": "#acme"})], sleep=Sleeps(), outbox=outbox_on(state_db))
            for _ in range(2)
        ]
        assert handle_at_once(copies, alert) == []
        assert len(slack.posted) == 1
        assert outbox_on(state_db).ref(alert.id, "firing", 0) == slack.posted[0].response["ts"]


class Killed(BaseException):
    """The process dying mid-call: no handler catches it, the transaction rolls back."""


class DiesMidCall(SlackNotifier):
    def send(self, alert: Alert) -> str | None:
        raise Killed("the process is killed while Slack is being called")


def test_a_copy_killed_mid_delivery_lets_the_other_deliver_and_say_so(
    state_db: StateDB, caplog: pytest.LogCaptureFixture
) -> None:
    alert = make_alert()
    with fake_slack() as slack:
        client = WebClient(token=TOKEN, base_url=slack.url, retry_handlers=[], timeout=5)
        dying = NotifyStage([DiesMidCall(client, {})], sleep=Sleeps(), outbox=outbox_on(state_db))
        with pytest.raises(Killed):
            dying.handle([alert])
        survivor = NotifyStage([slack_notifier(slack)], sleep=Sleeps(), outbox=outbox_on(state_db))
        with caplog.at_level(logging.WARNING):
            survivor.handle([alert])
        assert len(slack.posted) == 1
        assert "may have been sent before" in caplog.text
