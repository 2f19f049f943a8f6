"""Heartbeat rows: written by the database's clock, replaced per supervisor, pruned, listed with their age."""

from __future__ import annotations

import os
import time
from datetime import timedelta

from sqlalchemy import delete, select, update

from connector import db
from connector.models import Worker as WorkerRow
from connector.sync import heartbeat


def clear(engine) -> None:
    with engine.begin() as conn:
        conn.execute(delete(WorkerRow))


def age_row(engine, worker_id: str, seconds: float) -> None:
    with engine.begin() as conn:
        conn.execute(update(WorkerRow).where(WorkerRow.id == worker_id)
                     .values(beat_at=db.now(conn) - timedelta(seconds=seconds)))


def test_first_beat_inserts_later_beats_update_with_the_claim(engine):
    clear(engine)
    heartbeat.beat(engine, "h:1:a", "sup-1", None)
    (first,) = heartbeat.list_workers(engine)
    assert (first.id, first.pid, first.supervisor, first.claim) == ("h:1:a", os.getpid(), "sup-1", None)
    assert first.started_at == first.beat_at and first.age_seconds < 5
    time.sleep(0.05)
    heartbeat.beat(engine, "h:1:a", "sup-1", "NC-7")
    (second,) = heartbeat.list_workers(engine)
    assert second.claim == "NC-7" and second.beat_at > first.beat_at and second.started_at == first.started_at


def test_a_supervisors_new_worker_replaces_its_dead_predecessor_only(engine):
    clear(engine)
    heartbeat.beat(engine, "h:1:old", "sup-1", "NC-1")
    heartbeat.beat(engine, "h:2:other", "sup-2", None)
    heartbeat.beat(engine, "h:3:alone", None, None)
    heartbeat.beat(engine, "h:4:new", "sup-1", None)
    assert {w.id for w in heartbeat.list_workers(engine)} == {"h:2:other", "h:3:alone", "h:4:new"}
    found = heartbeat.supervised(engine, "sup-1")
    assert found is not None and found.id == "h:4:new"
    assert heartbeat.supervised(engine, "sup-9") is None
    assert heartbeat.of_process(engine, "sup-1", os.getpid()) == ["h:4:new"]


def test_staleness_prune_and_remove(engine):
    clear(engine)
    heartbeat.beat(engine, "h:1:a", None, None)
    heartbeat.beat(engine, "h:2:b", None, None)
    age_row(engine, "h:1:a", 7)
    ages = {w.id: w for w in heartbeat.list_workers(engine)}
    assert ages["h:1:a"].is_stale(2.0) and not ages["h:2:b"].is_stale(2.0)
    assert 6.5 < ages["h:1:a"].age_seconds < 30
    assert not ages["h:1:a"].is_stale(3.0)  # 3 beats of 3 s: 9 s allowed
    assert heartbeat.prune(engine, older_than=5) == 1
    assert [w.id for w in heartbeat.list_workers(engine)] == ["h:2:b"]
    assert heartbeat.remove(engine, "h:2:b") == 1 and heartbeat.list_workers(engine) == []


def test_a_pruned_row_comes_back_at_the_next_beat(engine):
    clear(engine)
    beat = heartbeat.Heartbeat(engine, "h:1:a", "sup", 0.05, lambda: "NC-3")
    beat.beat_once()
    clear(engine)  # e.g. pruned after a long stall
    beat.start()
    deadline = time.monotonic() + 5
    while not heartbeat.list_workers(engine) and time.monotonic() < deadline:
        time.sleep(0.02)
    (row,) = heartbeat.list_workers(engine)
    assert row.claim == "NC-3" and row.supervisor == "sup"
    beat.stop()
    with engine.connect() as conn:
        assert conn.execute(select(WorkerRow.id)).all() == []  # a clean stop deletes the row
