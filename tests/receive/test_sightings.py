"""The sighting log: counted in memory, written by one statement per flush, kept through a failed write; and
prune's margin for what it holds, on both real databases."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from connector.clock import utcnow
from connector.models import Fingerprint
from connector.receive import sightings
from connector.receive.events import validate_event
from connector.receive.fingerprint import fingerprint
from connector.receive.prune import prune
from connector.receive.sightings import COALESCE_SECONDS, GIVE_UP_AFTER, SightingLog, flush_all, sighting_log
from connector.receive.store import Duplicate, record_delivery

WEEK = 7 * 86400.0


class Recorder:
    def __init__(self, fail: int = 0) -> None:
        self.writes: list[list[tuple[int, int]]] = []
        self.fail = fail

    def __call__(self, rows: Any) -> None:
        if self.fail:
            self.fail -= 1
            raise OSError("database away")
        self.writes.append(list(rows))


def test_sightings_of_one_row_add_up():
    write = Recorder()
    log = SightingLog(write, interval=60)
    log.note([7])
    log.note([2, 7])
    log.note([7])
    assert log.pending() == 4
    log.flush()
    assert write.writes == [[(2, 1), (7, 3)]]  # in id order: concurrent flushes lock rows alike
    log.flush()
    assert len(write.writes) == 1 and log.pending() == 0  # nothing pending, nothing written


def test_a_failed_write_keeps_the_sightings_merged_with_later_ones():
    write = Recorder(fail=1)
    log = SightingLog(write, interval=60)
    log.note([1])
    log.flush()
    log.note([1])
    assert log.pending() == 2
    log.flush()
    assert write.writes == [[(1, 2)]]


def test_after_a_minute_of_failures_the_sightings_are_dropped():
    write = Recorder(fail=GIVE_UP_AFTER)
    log = SightingLog(write, interval=60)
    log.note([1])
    for _ in range(GIVE_UP_AFTER - 1):
        log.flush()
    assert log.pending() == 1
    log.flush()
    assert log.pending() == 0 and write.writes == []


def test_the_thread_writes_within_its_interval_and_ends_when_idle():
    write = Recorder()
    log = SightingLog(write, interval=0.05)
    log.note([1])
    deadline = time.monotonic() + 5
    while not write.writes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert write.writes == [[(1, 1)]]
    deadline = time.monotonic() + 5
    while log._thread is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert log._thread is None  # idle: no thread left behind
    log.note([2])  # and a new sighting starts one again
    deadline = time.monotonic() + 5
    while len(write.writes) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert write.writes[1] == [(2, 1)]


def test_a_flush_waits_for_the_one_under_way():
    # The thread's flush has taken the batch and is writing it: a flush at exit (or before a test reads the
    # table) must return only once that write is done, not at once because nothing is left pending.
    entered, release = threading.Event(), threading.Event()
    written: list[Any] = []

    def slow_write(rows: Any) -> None:
        entered.set()
        release.wait(5)
        written.append(list(rows))

    log = SightingLog(slow_write, interval=0.01)
    log.note([1])
    assert entered.wait(5)
    flusher = threading.Thread(target=log.flush)
    flusher.start()
    flusher.join(0.2)
    assert flusher.is_alive() and written == []  # still waiting for the thread's write
    release.set()
    flusher.join(5)
    assert not flusher.is_alive() and written == [[(1, 1)]]


def test_a_forked_child_starts_without_the_parents_logs(engine):
    import os

    send(engine, "NC-8-5", "msg_1")
    send(engine, "NC-8-5", "msg_2")
    assert sightings.sighting_log(engine).pending() == 1
    pid = os.fork()
    if pid == 0:  # the child: nothing of the parent's to write twice
        os._exit(0 if len(sightings._LOGS) == 0 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sightings.sighting_log(engine).pending() == 1  # the parent's are still the parent's


def send(engine: Any, nc: str, webhook_id: str) -> Any:
    event = validate_event({"eventType": "nc.updated", "ncId": nc, "timestamp": "2025-01-05T10:15:32Z"})
    return record_delivery(engine, event, b"{}", fingerprint(event.payload), webhook_id)


def times_seen(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(Fingerprint.times_seen)).scalar_one())


def test_the_flush_adds_each_rows_count_and_leaves_last_seen_alone(engine):
    send(engine, "NC-8-1", "msg_1")
    for i in range(5):
        assert isinstance(send(engine, "NC-8-1", f"msg_{i + 2}"), Duplicate)
    later = utcnow() + timedelta(seconds=30)  # another process wrote a sighting meanwhile
    with engine.begin() as conn:
        conn.execute(update(Fingerprint).values(last_seen_at=later, times_seen=Fingerprint.times_seen + 1))
    flush_all()
    with engine.connect() as conn:
        row = conn.execute(select(Fingerprint.times_seen, Fingerprint.last_seen_at)).one()
    assert tuple(row) == (7, later)


def test_a_database_away_keeps_the_sightings_for_the_next_flush(engine, monkeypatch):
    send(engine, "NC-8-2", "msg_1")
    send(engine, "NC-8-2", "msg_2")
    log = sighting_log(engine)
    working = log._write
    monkeypatch.setattr(log, "_write", Recorder(fail=1))
    log.flush()
    assert log.pending() == 1 and times_seen(engine) == 1
    monkeypatch.setattr(log, "_write", working)
    log.flush()
    assert times_seen(engine) == 2


@pytest.mark.parametrize(("stored_age", "kept"), [(WEEK + COALESCE_SECONDS / 2, True),
                                                   (WEEK + COALESCE_SECONDS + 5, False)])
def test_prune_keeps_a_row_for_its_retention_plus_the_window(engine, stored_age, kept):
    # A stored last_seen_at may be up to COALESCE_SECONDS behind the row's last sighting (held in a process
    # that then died): prune's cutoff leaves that margin, so the retention holds from the real sighting.
    send(engine, "NC-8-3", "msg_1")
    with engine.begin() as conn:
        conn.execute(update(Fingerprint).values(last_seen_at=utcnow() - timedelta(seconds=stored_age)))
    assert prune(engine, WEEK, WEEK).fingerprints == (0 if kept else 1)


def test_every_log_of_the_process_is_flushed_by_flush_all(engine):
    send(engine, "NC-8-4", "msg_1")
    send(engine, "NC-8-4", "msg_2")
    assert sightings.sighting_log(engine).pending() == 1
    flush_all()
    assert sightings.sighting_log(engine).pending() == 0 and times_seen(engine) == 2
