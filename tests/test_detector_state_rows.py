"""The detector's state is kept as rows, on every state engine: a batch's save writes the header and
the buckets that changed, a restart loads back exactly what was in memory, a state saved whole by
the previous version still loads, and two copies writing one brand never leave a mix of both."""

from __future__ import annotations

import json
import math
from datetime import timedelta

import pytest
from alertstory import RULE, Clock, scored
from state_engines import migrated

from alerts import state as detector
from alerts.stages import DetectStage
from alerts.state import BrandState, DetectorStore, OpenSpike
from listener.records import ScoredMention, SentimentLabel
from listener.statedb import StateDB

MARK = '{"marked":1,'  # a key no bucket row has, and that loading ignores


def store_on(db: StateDB) -> DetectorStore:
    return DetectorStore(migrated(db, "detector", detector.MIGRATIONS))


def stage_on(db: StateDB, clock: Clock) -> DetectStage:
    return DetectStage({"Acme": RULE}, {"Acme": None}, store_on(db), clock=clock)


def minute(clock: Clock, negatives: int, neutral: int = 3) -> list[ScoredMention]:
    """A minute of Acme's mentions, delivered at its end; each negative has its own words, so
    a bucket gathers more words than it keeps once it is older than the window."""
    start = clock.now
    labels = [SentimentLabel.NEGATIVE] * negatives + [SentimentLabel.NEUTRAL] * neutral
    batch = []
    for i, label in enumerate(labels):
        words = " ".join(f"w{int(start.timestamp()) // 60 % 97}x{i}y{k}" for k in range(30))
        batch.append(scored(start + timedelta(seconds=i * 55 / len(labels)), label, text=f"Acme {words}"))
    clock.now = start + timedelta(minutes=1)
    return batch


def rows(db: StateDB, brand: str = "Acme") -> dict[int, str]:
    found = db.execute("SELECT bucket, data FROM brand_bucket WHERE brand = ?", (brand,)).fetchall()
    return {int(bucket): str(data) for bucket, data in found}


def state_of(stage: DetectStage) -> BrandState:
    found = stage.detector("Acme")
    assert found is not None
    return found.state


def test_a_batch_rewrites_only_the_buckets_it_changed(state_db: StateDB) -> None:
    clock = Clock()
    stage = stage_on(state_db, clock)
    for _ in range(20):
        stage.handle(minute(clock, 5))
    before = rows(state_db)
    assert len(before) >= 18
    for bucket, data in before.items():  # mark every row: a row written again loses its mark
        state_db.execute(
            "UPDATE brand_bucket SET data = ? WHERE brand = ? AND bucket = ?",
            (MARK + data[1:], "Acme", bucket),
        )
    batch = minute(clock, 5)
    stage.handle(batch)
    after = rows(state_db)
    rewritten = {b for b, data in after.items() if not data.startswith(MARK)}
    counted = {math.floor(m.published.timestamp() / RULE.bucket) for m in batch}
    state = state_of(stage)
    # The minute's bucket, and at most the two the prune reached: one whose samples aged out,
    # one whose words were cut to the top ones.
    assert counted <= rewritten and len(rewritten - counted) <= 2
    assert all(after[b] == state.bucket_json(b) for b in rewritten)
    assert len(after) - len(rewritten) >= len(before) - 2  # the rest were left alone
    assert store_on(state_db).load("Acme") == state


def test_a_restart_loads_what_was_in_memory_after_every_batch(state_db: StateDB) -> None:
    clock = Clock()
    stage = stage_on(state_db, clock)
    plan = [1 if m % 3 == 0 else 0 for m in range(70)] + [9] * 6 + [0] * 20  # past the baseline span
    for negatives in plan:
        stage.handle(minute(clock, negatives))
        state = state_of(stage)
        assert store_on(state_db).load("Acme") == state
        assert set(rows(state_db)) == state.buckets()
    assert state.open_spike is not None or state.ended_spike is not None  # the burst was a spike
    assert min(state.buckets()) > math.floor((clock.now - timedelta(minutes=70)).timestamp() / 60)


def test_a_state_saved_whole_by_the_previous_version_loads_and_is_split_by_the_next_save(
    state_db: StateDB,
) -> None:
    clock = Clock()
    stage = stage_on(state_db, clock)
    for negatives in [2, 0, 5, 1, 3]:
        stage.handle(minute(clock, negatives))
    whole = state_of(stage)
    state_db.execute(
        "INSERT INTO brand_state (brand, state, version) VALUES (?, ?, ?)", ("Old", whole.to_json(), 7)
    )
    store = store_on(state_db)
    old, version = store.load_versioned("Old")
    assert (old, version, rows(state_db, "Old")) == (whole, 7, {})
    with store.transaction():
        assert store.save_changes("Old", old) == 8
    header = state_db.execute("SELECT state FROM brand_state WHERE brand = ?", ("Old",)).scalar()
    assert "negative" not in json.loads(header)
    assert set(rows(state_db, "Old")) == whole.buckets() and len(whole.buckets()) == 5
    assert store_on(state_db).load_versioned("Old") == (whole, 8)


def test_every_save_bumps_the_version_and_a_save_of_nothing_new_keeps_it(state_db: StateDB) -> None:
    store = store_on(state_db)
    state = BrandState(negative={5: 2}, total={5: 4}, open_spike=OpenSpike("a1", 300.0, 360.0))
    with store.transaction():
        assert store.lock("Acme") == 0
        assert store.save("Acme", state) == 1
        assert store.save_changes("Acme", state) is None  # nothing changed: no other copy reloads
        assert store.save("Acme", state) == 2  # but a save is a save
        state.watermark = 400.0
        assert store.save_changes("Acme", state) == 3  # a header-only change is a change


def test_a_copy_saving_after_another_copy_wrote_leaves_its_own_state_whole(state_db: StateDB) -> None:
    """The rows never hold one copy's header with another copy's buckets."""
    first, second = store_on(state_db), store_on(state_db)
    mine = BrandState(negative={5: 2}, total={5: 2, 6: 1})
    first.save("Acme", mine)
    theirs = second.load("Acme")
    theirs.total[7] = 4
    theirs.dirty.add(7)
    assert second.save_changes("Acme", theirs) == 2
    mine.total[6] = 3  # the first copy, unaware, changes only bucket 6
    mine.dirty.add(6)
    assert first.save_changes("Acme", mine) == 3
    assert store_on(state_db).load("Acme") == mine and set(rows(state_db)) == {5, 6}


def test_after_a_rolled_back_batch_the_next_save_writes_the_whole_state(state_db: StateDB) -> None:
    store = store_on(state_db)
    state = BrandState(total={5: 1, 6: 1})
    store.save("Acme", state)
    with pytest.raises(RuntimeError), store.transaction():
        state.total[6] = 2
        state.dirty.add(6)
        store.save_changes("Acme", state)
        raise RuntimeError("the batch failed")
    assert store_on(state_db).load("Acme").total == {5: 1, 6: 1}
    state.total[5] = 9  # marked nowhere: only a whole write saves it, and bucket 6 with it
    assert store.save_changes("Acme", state) == 2
    assert store_on(state_db).load("Acme") == state


def test_a_batch_records_its_mentions_at_once_and_a_repeat_counts_once(state_db: StateDB) -> None:
    store = store_on(state_db)
    offered = [("Acme", f"m{i}", 10 + i % 3) for i in range(700)] + [("Acme", "m1", 10), ("Globex", "m1", 10)]
    fresh = store.first_sightings(offered)
    assert len(fresh) == 701 and ("Globex", "m1") in fresh
    assert store.first_sightings([("Acme", "m5", 12), ("Acme", "m700", 1)]) == {("Acme", "m700")}
    assert not store.first_sighting("Acme", "m6", 10)
