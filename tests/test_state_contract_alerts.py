"""The alerting stores keep their promises on every state engine (SQLite and PostgreSQL).

Incidents, silences, the detector's state, the digest log and the source-notice
log are shared by several processes in the distributed deployment: the web
app, Slack's buttons, and more than one copy of `detect` and `notify`. These
stories run each store over both engines, and the shared-use ones from two
threads with their own transactions, as two processes would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
from alertstory import RULE, Clock, make_alert, scored
from state_engines import migrated

from alerts import digest, incidents, silences, source_notices
from alerts import state as detector
from alerts.digest import DigestLog
from alerts.incidents import IncidentStore
from alerts.silences import SilenceStore
from alerts.source_notices import NoticeLog
from alerts.stages import DetectStage
from alerts.state import BrandState, DetectorStore, OpenSpike, read_spikes
from listener.errors import IncidentError
from listener.records import Alert, ScoredMention, SentimentLabel
from listener.statedb import StateDB

T = 1_700_000_000.0
R = TypeVar("R")


def incident_store(db: StateDB) -> IncidentStore:
    return IncidentStore(migrated(db, "incidents", incidents.MIGRATIONS))


def at_once(*calls: Callable[[], R]) -> list[R | Exception]:
    """Run the calls in threads released together; each one's result or the error it raised."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], R]) -> R | Exception:
        start.wait()
        try:
            return call()
        except Exception as exc:  # the story inspects who lost
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


# --- incidents ---------------------------------------------------------------------------------


def test_a_firing_alert_opens_one_incident_however_often_it_arrives(state_db: StateDB) -> None:
    store = incident_store(state_db)
    alert = make_alert()
    incident, opened = store.open_for(alert, T, responder="Dana", escalate_at=T + 900, remind_at=T + 3600)
    again, reopened = store.open_for(alert, T + 5)
    assert (opened, reopened) == (True, False) and again == incident
    assert (incident.state, incident.responder, incident.observed, incident.expected) == (
        "open",
        "Dana",
        17,
        1.2,
    )
    assert store.get(incident.id) == store.by_alert(alert.id) == incident
    assert store.get(incident.id + 100) is None and store.by_alert("nope") is None
    assert [(e.kind, e.actor) for e in store.events(incident.id)] == [("opened", "Dana")]


def test_two_notify_copies_opening_one_alert_at_once_share_one_incident(state_db: StateDB) -> None:
    first, second = incident_store(state_db), incident_store(state_db)
    alert = make_alert()
    results = at_once(partial(first.open_for, alert, T), partial(second.open_for, alert, T))
    assert all(isinstance(r, tuple) for r in results), results
    opened = [r for r in results if isinstance(r, tuple) and r[1]]
    assert len(opened) == 1
    assert {r[0].id for r in results if isinstance(r, tuple)} == {opened[0][0].id}
    assert [e.kind for e in first.events(opened[0][0].id)] == ["opened"]


def test_the_owner_acknowledges_and_resolves_with_a_note_and_others_are_refused(state_db: StateDB) -> None:
    store = incident_store(state_db)
    incident, _ = store.open_for(make_alert(), T, escalate_at=T + 900)
    with pytest.raises(IncidentError, match="not acknowledged"):
        store.resolve(incident.id, "Dana", "fixed", T + 10)
    owned = store.acknowledge(incident.id, "Dana", T + 60)
    assert (owned.state, owned.owner, owned.acked_at, owned.escalate_at) == (
        "acknowledged",
        "Dana",
        T + 60,
        None,
    )
    assert store.acknowledge(incident.id, "Dana", T + 61) == owned  # a repeat changes nothing
    with pytest.raises(IncidentError, match="owned by Dana"):
        store.acknowledge(incident.id, "Sam", T + 62)
    with pytest.raises(IncidentError, match="only they or a brand admin"):
        store.resolve(incident.id, "Sam", "not mine", T + 63)
    with pytest.raises(IncidentError, match="needs a note"):
        store.resolve(incident.id, "Dana", "  ", T + 64)
    done = store.resolve(incident.id, "Lee", "rolled back the release", T + 600, admins={"Lee"})
    assert (done.state, done.resolved_by, done.note, done.resolved_at) == (
        "resolved",
        "Lee",
        "rolled back the release",
        T + 600,
    )
    with pytest.raises(IncidentError, match="already resolved by Lee"):
        store.resolve(incident.id, "Dana", "again", T + 700)
    with pytest.raises(IncidentError, match="no incident"):
        store.acknowledge(incident.id + 1, "Dana", T)
    kinds = [(e.kind, e.actor) for e in store.events(incident.id)]
    assert kinds == [("opened", None), ("acknowledged", "Dana"), ("resolved", "Lee")]


def test_two_processes_acknowledging_one_incident_leave_one_owner(state_db: StateDB) -> None:
    web, slack = incident_store(state_db), incident_store(state_db)
    for n in range(5):
        incident, _ = web.open_for(make_alert(id=f"alert-{n}"), T)
        results = at_once(
            partial(web.acknowledge, incident.id, "Dana", T + 30),
            partial(slack.acknowledge, incident.id, "Sam", T + 30),
        )
        refused = [r for r in results if isinstance(r, IncidentError)]
        assert len(refused) == 1, results
        owner = web.get(incident.id)
        assert owner is not None and owner.owner in ("Dana", "Sam")
        assert f"owned by {owner.owner}" in str(refused[0])
        assert [e.actor for e in web.events(incident.id) if e.kind == "acknowledged"] == [owner.owner]


def test_updates_the_posted_message_and_the_spike_end_go_on_the_trail(state_db: StateDB) -> None:
    store = incident_store(state_db)
    alert = make_alert(observed=17)
    assert store.record_update(alert, T) is None  # no incident for it (silenced, say)
    incident, _ = store.open_for(alert, T, remind_at=T + 3600)
    rising = store.record_update(make_alert(status="update", revision=1, observed=30), T + 60)
    falling = store.record_update(make_alert(status="update", revision=2, observed=25), T + 120)
    assert rising is not None and falling is not None and (rising.observed, falling.observed) == (30, 30)
    ended = store.record_update(make_alert(status="resolved", observed=2), T + 900)
    assert ended is not None and (ended.spike_ended_at, ended.remind_at, ended.state) == (
        T + 900,
        None,
        "open",
    )
    store.attach_message(alert.id, "#acme", "1700000000.000100")
    store.attach_message(alert.id, "#other", "1700000999.000100")  # the first post stays the thread
    posted = store.get(incident.id)
    assert posted is not None and (posted.channel, posted.ts) == ("#acme", "1700000000.000100")
    store.add_event(incident.id, T + 950, "note", "Dana", "customers told")
    with pytest.raises(IncidentError):
        store.add_event(incident.id + 1, T, "note", "Dana")
    trail = [(e.kind, e.detail) for e in store.events(incident.id)]
    assert trail[1:] == [
        ("update", "30 negative (update 1)"),
        ("update", "25 negative (update 2)"),
        ("spike-ended", "back to 2"),
        ("note", "customers told"),
    ]


def test_escalations_and_reminders_come_due_and_move_on(state_db: StateDB) -> None:
    store = incident_store(state_db)
    quiet, _ = store.open_for(make_alert(id="a1"), T, escalate_at=T + 900, remind_at=T + 3600)
    held, _ = store.open_for(make_alert(id="a2"), T, escalate_at=T + 900, remind_at=T + 1800)
    assert store.due(T + 899) == []
    assert [i.id for i in store.due(T + 900)] == [quiet.id, held.id]
    store.escalated(quiet.id, 1, T + 900, T + 1800, "level 1: Lee")
    store.acknowledge(held.id, "Sam", T + 901)
    store.escalated(held.id, 1, T + 902, T + 1800, "level 1: Lee")  # acknowledged meanwhile
    up, owned = store.get(quiet.id), store.get(held.id)
    assert up is not None and (up.level, up.escalate_at) == (1, T + 1800)
    assert owned is not None and (owned.state, owned.level, owned.escalate_at) == ("acknowledged", 0, None)
    assert [i.id for i in store.due(T + 1800)] == [quiet.id, held.id]  # its reminder is due
    store.reminded(held.id, T + 1800, T + 5400)
    store.reminded(quiet.id, T + 1800, None)
    assert [i.id for i in store.due(T + 1801)] == [quiet.id]  # only its next escalation
    assert [e.kind for e in store.events(held.id)][-2:] == ["escalated", "reminded"]
    with pytest.raises(IncidentError):
        store.reminded(held.id + 10, T, None)


def test_incidents_are_found_by_state_and_brand_in_any_case_and_timed(state_db: StateDB) -> None:
    store = incident_store(state_db)
    opened = []
    for n, (brand, when) in enumerate(
        [("Acme", T), ("acme", T + 100), ("Globex", T + 200), ("Acme", T + 300)]
    ):
        incident, _ = store.open_for(make_alert(id=f"a{n}", brand=brand), when)
        opened.append(incident)
    store.acknowledge(opened[0].id, "Dana", T + 60)
    store.resolve(opened[0].id, "Dana", "done", T + 600)
    store.acknowledge(opened[1].id, "Sam", T + 400)
    store.add_event(opened[1].id, T + 500, "not-real", "Sam")
    assert [i.id for i in store.find(brand="ACME")] == [opened[3].id, opened[1].id, opened[0].id]
    assert [i.id for i in store.find(state="open")] == [opened[3].id, opened[2].id]
    assert [i.id for i in store.find(limit=1)] == [opened[3].id]
    assert [i.id for i in store.opened_between(T + 100, T + 300)] == [opened[1].id, opened[2].id]
    assert [i.id for i in store.opened_between(T + 100, brand="acme")] == [opened[1].id, opened[3].id]
    by_brand = {s.key: s for s in store.stats("brand", until=T + 250)}
    assert set(by_brand) == {"Acme", "acme", "Globex"}
    assert (by_brand["Acme"].median_ack, by_brand["Acme"].median_resolve) == (60, 600)
    assert by_brand["acme"].not_real == 1
    people = {s.key: s for s in store.stats("responder", brand="Acme")}
    assert set(people) == {"Dana", "Sam", "(nobody)"}
    assert (people["Sam"].acknowledged, people["Sam"].worst_ack, people["(nobody)"].incidents) == (1, 300, 1)


def test_a_store_leaves_a_shared_database_open_when_it_closes(state_db: StateDB) -> None:
    store = incident_store(state_db)
    store.open_for(make_alert(), T)
    store.close()
    assert len(incident_store(state_db).find()) == 1


# --- silences -----------------------------------------------------------------------------------


def test_a_silence_mutes_a_brand_or_one_rule_until_it_ends_or_is_removed(state_db: StateDB) -> None:
    store = SilenceStore(migrated(state_db, "silences", silences.MIGRATIONS))
    with pytest.raises(IncidentError, match="positive"):
        store.add("Acme", 0, now=T, by="Dana")
    brand = store.add("Acme", 3600, now=T, by="Dana", reason="launch day")
    rule = store.add("Globex", 600, now=T, by="Sam", rule="negative-spike")
    assert (brand.brand, brand.rule, brand.starts, brand.ends, brand.created_by, brand.reason) == (
        "Acme",
        None,
        T,
        T + 3600,
        "Dana",
        "launch day",
    )
    assert store.matching("ACME", "any-rule", T + 10) == brand
    assert store.matching("Globex", "negative-spike", T + 10) == rule
    assert store.matching("Globex", "volume", T + 10) is None
    assert store.listed(now=T + 700) == [brand]  # Globex's has ended
    assert store.listed(now=T + 700, include_expired=True) == [brand, rule]
    removed = store.remove(brand.id, now=T + 800)
    assert removed.removed_at == T + 800 and store.matching("Acme", "x", T + 900) is None
    with pytest.raises(IncidentError, match="no active silence"):
        store.remove(brand.id, now=T + 900)
    assert store.suppressed("alert-1") is False
    store.suppress("alert-1", rule, T + 5)
    store.suppress("alert-1", brand, T + 6)  # the first silence to hide it is kept
    assert store.suppressed("alert-1") is True
    store.close()


# --- digest and source-notice logs --------------------------------------------------------------


def test_a_brands_week_is_recorded_once_whatever_its_case(state_db: StateDB) -> None:
    log = DigestLog(migrated(state_db, "digests", digest.MIGRATIONS))
    assert not log.posted("Acme", T)
    log.record("Acme", T, T + 5, "1700000005.000100")
    log.record("ACME", T, T + 9, None)  # a second process at the hour changes nothing
    assert log.posted("acme", T) and not log.posted("Acme", T + 604800)
    log.close()


def test_the_flags_last_announced_for_a_source_survive_a_restart(state_db: StateDB) -> None:
    db = migrated(state_db, "source_notices", source_notices.MIGRATIONS)
    log = NoticeLog(db)
    assert log.flags("hn") == ""
    log.announced("hn", "failing", T)
    log.announced("hn", "failing,silent", T + 60)
    log.close()
    again = NoticeLog(db)
    assert (again.flags("hn"), again.flags("rss")) == ("failing,silent", "")
    again.announced("hn", "", T + 120)
    assert again.flags("hn") == ""


# --- detector state -----------------------------------------------------------------------------


def detector_store(db: StateDB) -> DetectorStore:
    return DetectorStore(migrated(db, "detector", detector.MIGRATIONS))


def test_every_save_bumps_the_brands_version_and_a_failed_batch_keeps_the_old_state(
    state_db: StateDB,
) -> None:
    store = detector_store(state_db)
    assert store.load_versioned("Acme")[1] == 0 and store.load("Acme") == BrandState()
    with store.transaction():
        assert store.lock("Acme") == 0  # an empty row to lock, for a brand never saved
        assert store.save("Acme", BrandState(negative={5: 2}, open_spike=OpenSpike("a1", T, T + 60))) == 1
    with pytest.raises(RuntimeError), store.transaction():
        assert store.lock("Acme") == 1
        store.save("Acme", BrandState())
        raise RuntimeError("the batch failed")
    state, version = store.load_versioned("Acme")
    assert version == 1 and state.negative == {5: 2} and state.open_spike == OpenSpike("a1", T, T + 60)


def test_a_redelivered_mention_counts_once_until_it_is_older_than_the_baseline(state_db: StateDB) -> None:
    store = detector_store(state_db)
    assert store.first_sighting("Acme", "m1", 10) and store.first_sighting("Acme", "m2", 20)
    assert not store.first_sighting("Acme", "m1", 10)
    assert store.first_sighting("Globex", "m1", 10)  # per brand
    store.forget_seen_before("Acme", 15)
    assert store.first_sighting("Acme", "m1", 10) and not store.first_sighting("Acme", "m2", 20)


def test_the_spike_log_marks_each_spike_for_the_dashboard_from_the_shared_database(
    state_db: StateDB, tmp_path: Path
) -> None:
    assert read_spikes(state_db, "Acme", 0, 2 * T) == []  # the detector has not run here yet
    store = detector_store(state_db)
    firing = make_alert(observed=17)
    for alert in (firing, firing, make_alert(status="update", revision=1, observed=30)):
        store.log_alert(alert)
    store.log_alert(make_alert(status="update", revision=2, observed=21))
    started = firing.window_start.timestamp()
    [mark] = read_spikes(state_db, "ACME", started - 60, started + 60)
    assert (mark.alert_id, mark.rule, mark.started, mark.ended, mark.peak) == (
        firing.id,
        "negative-spike",
        started,
        None,
        30,
    )
    store.log_alert(make_alert(status="resolved", observed=2))
    [ended] = read_spikes(state_db, "Acme", started, started + 3600)
    assert ended.ended == firing.window_end.timestamp() and ended.expected == 1.2
    assert read_spikes(state_db, "Acme", started + 3600, started + 7200) == []
    missing = tmp_path / "nowhere" / "detector.db"
    assert read_spikes(missing, "Acme", 0, 2 * T) == [] and not missing.exists()
    store.close()


# --- detect copies sharing one database --------------------------------------------------------


def detect_copy(db: StateDB, clock: Clock) -> DetectStage:
    return DetectStage(
        {"Acme": RULE}, {"Acme": None}, migrated(db, "detector", detector.MIGRATIONS), clock=clock
    )


def minute(clock: Clock, negatives: int) -> list[ScoredMention]:
    """A minute of Acme's mentions (two neutral among the negatives), delivered at its end."""
    start = clock.now
    labels = [SentimentLabel.NEGATIVE] * negatives + [SentimentLabel.NEUTRAL] * 2
    batch = [scored(start + timedelta(seconds=i * 55 / len(labels)), label) for i, label in enumerate(labels)]
    clock.now = start + timedelta(minutes=1)
    return batch


def crisis() -> list[int]:
    """Negatives per minute: a quiet hour, five busy minutes, then half an hour of calm."""
    return [1 if m % 5 == 0 else 0 for m in range(60)] + [4] * 5 + [0] * 30


def alerts(outputs: Sequence[Any]) -> list[Alert]:
    return [o.record for o in outputs if isinstance(o.record, Alert)]


def test_two_detect_copies_taking_turns_on_one_brand_fire_its_spike_once(state_db: StateDB) -> None:
    clock = Clock()
    copies = [detect_copy(state_db, clock), detect_copy(state_db, clock)]
    out: list[Alert] = []
    for n, negatives in enumerate(crisis()):
        out += alerts(copies[n % 2].handle(minute(clock, negatives)))
    firing = [a for a in out if a.status == "firing"]
    assert len(firing) == 1
    assert [a.id for a in out if a.status == "resolved"] == [firing[0].id]


def test_two_detect_copies_handed_the_same_batches_in_a_rebalance_fire_once(state_db: StateDB) -> None:
    clock = Clock()
    copies = [detect_copy(state_db, clock), detect_copy(state_db, clock)]
    out: list[Alert] = []
    for negatives in crisis()[:70]:
        batch = minute(clock, negatives)
        for result in at_once(partial(copies[0].handle, batch), partial(copies[1].handle, batch)):
            assert not isinstance(result, Exception), result
            out += alerts(result)
    assert [a.status for a in out if a.status != "update"] == ["firing"]
    sent = [(a.id, a.status, a.revision) for a in out]
    assert len(sent) == len(set(sent))  # no message comes out of both copies


def test_a_copy_that_gets_a_brand_back_continues_from_the_newer_state(state_db: StateDB) -> None:
    clock = Clock()
    first, second = detect_copy(state_db, clock), detect_copy(state_db, clock)
    plan = crisis()
    for negatives in plan[:60]:  # the first copy watches the quiet hour
        assert alerts(first.handle(minute(clock, negatives))) == []
    fired: list[Alert] = []
    for negatives in plan[60:65]:  # a rebalance hands the brand to the second copy
        fired += alerts(second.handle(minute(clock, negatives)))
    [spike] = [a for a in fired if a.status == "firing"]
    back = alerts(first.handle(minute(clock, plan[65])))  # and back again, mid-spike
    current = first.detector("Acme")
    assert current is not None and current.state.open_spike is not None
    assert current.state.open_spike.alert_id == spike.id
    for negatives in plan[66:]:
        back += alerts(first.handle(minute(clock, negatives)))
    assert [(a.status, a.id) for a in back if a.status != "update"] == [("resolved", spike.id)]
