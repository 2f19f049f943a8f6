"""The duplicate path of record_delivery: one statement on the driver connection (PostgreSQL), or a read and,
when it must write, the group commit's transaction (SQLite), on both real databases; a recent row's sighting
is left to the process's sighting log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from connector.clock import utcnow
from connector.models import Delivery, Fingerprint
from connector.receive import store as store_module
from connector.receive.events import validate_event
from connector.receive.fingerprint import fingerprint
from connector.receive.notify import notifier
from connector.receive.sightings import COALESCE_SECONDS, flush_all
from connector.receive.store import NOTIFY_CHANNEL, Accepted, Duplicate, record_delivery


def send(engine: Any, nc: str, webhook_id: str | None = None, requeue: bool = False, **extra: Any) -> Any:
    event = validate_event({"eventType": "nc.updated", "ncId": nc, "timestamp": "2025-01-05T10:15:32Z", **extra})
    return record_delivery(engine, event, b"{}", fingerprint(event.payload), webhook_id, requeue_thin=requeue)


def rows(engine: Any, flush: bool = True) -> dict[str, tuple[int, datetime, datetime]]:
    """Each NC's fingerprint row: (times_seen, first_seen_at, last_seen_at), after the pending sightings are
    written (flush) or as stored now."""
    if flush:
        flush_all()
    with engine.connect() as conn:
        return {nc: (n, first, last) for nc, n, first, last in conn.execute(
            select(Fingerprint.nc_id, Fingerprint.times_seen, Fingerprint.first_seen_at, Fingerprint.last_seen_at))}


def deliveries(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Delivery)).scalar_one())


def test_a_duplicate_reports_the_first_sighting_and_notes_this_one(engine):
    first = send(engine, "NC-1-1", "msg_1")
    old = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(update(Fingerprint).values(first_seen_at=old, last_seen_at=old))
    before = utcnow()
    again = send(engine, "NC-1-1", "msg_2")  # same content, another webhook-id
    assert isinstance(first, Accepted) and isinstance(again, Duplicate)
    assert again.fingerprint == first.fingerprint
    assert again.first_seen_at == old and again.first_seen_at.tzinfo is not None  # aware UTC, microseconds kept
    times, first_seen, last_seen = rows(engine)["NC-1-1"]
    assert times == 2 and first_seen == old and last_seen >= before - timedelta(seconds=1)
    assert deliveries(engine) == 1


def age(engine: Any, seconds: float, nc: str | None = None) -> datetime:
    """Move the row(s)' sightings `seconds` into the past; returns that time."""
    then = utcnow() - timedelta(seconds=seconds)
    with engine.begin() as conn:
        match = update(Fingerprint) if nc is None else update(Fingerprint).where(Fingerprint.nc_id == nc)
        conn.execute(match.values(first_seen_at=then, last_seen_at=then))
    return then


def test_a_recent_rows_sighting_waits_in_memory_and_is_written_by_the_flush(engine):
    send(engine, "NC-1-1", "msg_1")
    then = age(engine, COALESCE_SECONDS / 2)
    again = [send(engine, "NC-1-1", f"msg_{i}") for i in (2, 3, 4)]
    assert all(isinstance(d, Duplicate) and d.first_seen_at == then for d in again)
    assert rows(engine, flush=False)["NC-1-1"][0] == 1  # nothing written for them yet
    assert rows(engine)["NC-1-1"] == (4, then, then)  # the count written; last_seen_at still within the window
    assert deliveries(engine) == 1


def test_a_sighting_of_a_row_last_seen_before_the_window_is_written_at_once(engine):
    send(engine, "NC-1-1", "msg_1")
    then = age(engine, COALESCE_SECONDS + 5)
    before = utcnow()
    send(engine, "NC-1-1", "msg_2")
    times, _, last_seen = rows(engine, flush=False)["NC-1-1"]
    assert times == 2 and last_seen >= before - timedelta(seconds=1) and last_seen > then
    send(engine, "NC-1-1", "msg_3")  # now recent again: this one waits
    assert rows(engine, flush=False)["NC-1-1"][0] == 2
    assert rows(engine)["NC-1-1"][0] == 3


def test_a_repeated_webhook_id_with_other_content_is_a_duplicate_of_that_row(engine):
    send(engine, "NC-1-1", "msg_1")
    again = send(engine, "NC-1-2", "msg_1")
    assert isinstance(again, Duplicate)
    assert rows(engine) == {"NC-1-1": (2, *rows(engine)["NC-1-1"][1:])}  # no row for NC-1-2's content
    assert deliveries(engine) == 1


def test_content_of_one_row_and_webhook_id_of_another_notes_both_and_reports_the_older(engine):
    send(engine, "NC-1-1", "msg_1")
    send(engine, "NC-1-2", "msg_2")
    older = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(update(Fingerprint).where(Fingerprint.nc_id == "NC-1-2").values(first_seen_at=older))
    again = send(engine, "NC-1-1", "msg_2")
    assert isinstance(again, Duplicate) and again.first_seen_at == older
    assert {nc: seen[0] for nc, seen in rows(engine).items()} == {"NC-1-1": 2, "NC-1-2": 2}
    age(engine, COALESCE_SECONDS + 5, "NC-1-1")  # one of the two stale: both written at once
    send(engine, "NC-1-1", "msg_2")
    assert {nc: seen[0] for nc, seen in rows(engine, flush=False).items()} == {"NC-1-1": 3, "NC-1-2": 3}
    assert deliveries(engine) == 2


def test_thin_requeue_in_the_same_statement_only_once_the_original_was_claimed(engine):
    assert isinstance(send(engine, "NC-7-7", requeue=True), Accepted)
    assert isinstance(send(engine, "NC-7-7", requeue=True), Duplicate)
    assert deliveries(engine) == 1  # the original still waits
    with engine.begin() as conn:
        conn.execute(update(Delivery).values(status="processing"))
    assert isinstance(send(engine, "NC-7-7", requeue=True), Duplicate)
    assert isinstance(send(engine, "NC-7-7", requeue=True), Duplicate)  # the re-queued one waits now
    original_fp = rows_fp(engine)
    with engine.connect() as conn:
        queued = conn.execute(select(Delivery.webhook_id, Delivery.fingerprint).where(Delivery.status == "queued"))
        assert [(wid, fp) for wid, fp in queued] == [(None, original_fp)]
    assert rows(engine)["NC-7-7"][0] == 4
    # Not thin (a title): no re-queue, whatever the flag.
    send(engine, "NC-7-8", title="t", requeue=True)
    with engine.begin() as conn:
        conn.execute(update(Delivery).values(status="processing"))
    send(engine, "NC-7-8", title="t", requeue=True)
    assert deliveries(engine) == 3


def rows_fp(engine: Any) -> str:
    with engine.connect() as conn:
        return str(conn.execute(select(Fingerprint.fingerprint).where(Fingerprint.nc_id == "NC-7-7")).scalar_one())


def test_when_the_statement_cannot_note_the_sighting_a_transaction_does(engine, monkeypatch):
    # PostgreSQL: a copy whose original committed after the statement's snapshot finds no row to update
    # and gets (None, None); record_delivery then notes it (and re-queues) in a transaction of its own.
    send(engine, "NC-7-7", requeue=True)
    with engine.begin() as conn:
        conn.execute(update(Delivery).values(status="processing"))
    monkeypatch.setattr(store_module, "_record", lambda engine, values: (None, None))
    again = send(engine, "NC-7-7", requeue=True)
    assert isinstance(again, Duplicate)
    assert rows(engine)["NC-7-7"][0] == 2
    assert deliveries(engine) == 2


@pytest.mark.postgres
def test_postgresql_duplicate_path_is_one_statement_and_sends_no_notify(pg_url, monkeypatch):
    import psycopg

    from connector import db
    from tests.conftest import truncate

    engine = db.make_engine(pg_url)
    truncate(engine)
    statements: list[str] = []
    original = store_module._execute_postgresql

    def counting(conn: Any, params: dict[str, Any]) -> Any:
        statements.append(params["fingerprint"])
        return original(conn, params)

    def no_transaction(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the duplicate path opened a SQLAlchemy transaction")

    def only_the_statement(*args: Any, **kwargs: Any) -> Any:
        with monkeypatch.context() as patch:
            patch.setattr(engine, "begin", no_transaction)
            patch.setattr(engine, "connect", no_transaction)
            return send(engine, *args, **kwargs)

    monkeypatch.setattr(store_module, "_execute_postgresql", counting)
    listener = psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    try:
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")

        sent = [0]

        def notified() -> int:
            # The NOTIFYs heard that this engine's notifier sent: other tests running at once on this
            # database notify on the same channel, so the listener alone cannot tell whose a wake-up is.
            heard = sum(1 for _ in listener.notifies(timeout=0.3))
            ours, sent[0] = notifier(engine).sent - sent[0], notifier(engine).sent
            assert heard >= ours
            return ours

        assert isinstance(only_the_statement("NC-9-1", "msg_1"), Accepted)
        assert notified() == 1
        assert isinstance(only_the_statement("NC-9-1", "msg_2"), Duplicate)
        assert isinstance(only_the_statement("NC-9-3", "msg_1"), Duplicate)
        assert notified() == 0  # a duplicate's commit takes no notification-queue lock
        only_the_statement("NC-9-2", requeue=True)
        assert notified() == 1
        with engine.begin() as conn:
            conn.execute(update(Delivery).where(Delivery.nc_id == "NC-9-2").values(status="processing"))
        assert isinstance(only_the_statement("NC-9-2", requeue=True), Duplicate)
        assert notified() == 1  # the re-queue wakes a worker
        assert len(statements) == 5  # one statement per delivery, duplicates included
        assert deliveries(engine) == 3
    finally:
        listener.close()
        truncate(engine)
        engine.dispose()


@pytest.mark.postgres
def test_postgresql_async_commit_of_a_sighting_does_not_outlive_its_transaction(pg_url):
    # A sighting's commit skips the WAL flush (SET LOCAL semantics): the pooled connection's next
    # transaction, a new delivery's included, commits synchronously again.
    from sqlalchemy import text

    from connector import db
    from tests.conftest import truncate

    engine = db.make_engine(pg_url, pool_size=1, max_overflow=0)
    truncate(engine)
    try:
        send(engine, "NC-9-9", "msg_1")
        age(engine, COALESCE_SECONDS + 5)  # so that the sighting is written by the statement
        assert isinstance(send(engine, "NC-9-9", "msg_2"), Duplicate)
        assert rows(engine, flush=False)["NC-9-9"][0] == 2
        with engine.connect() as conn:
            assert conn.execute(text("SHOW synchronous_commit")).scalar_one() == "on"
    finally:
        truncate(engine)
        engine.dispose()


def sqlite_engine(tmp_path: Any) -> Any:
    from connector import db

    engine = db.make_engine(f"sqlite:///{tmp_path / 'sightings.db'}", pool_size=1, max_overflow=0)
    db.upgrade(engine)
    return engine


def test_sqlite_a_batch_of_sightings_leaves_the_connection_at_full_sync(tmp_path):
    from sqlalchemy import text

    engine = sqlite_engine(tmp_path)
    try:
        send(engine, "NC-6-1", "msg_1")
        age(engine, COALESCE_SECONDS + 5)
        assert isinstance(send(engine, "NC-6-1", "msg_2"), Duplicate)  # the sightings-only transaction
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA synchronous")).scalar_one() == 2  # FULL again, as db.py sets it
        assert rows(engine)["NC-6-1"][0] == 2
    finally:
        engine.dispose()


def test_sqlite_an_item_new_after_all_is_written_with_the_fsync(tmp_path, monkeypatch):
    # The look-up found a stale row (as when prune removes it between the look-up and the transaction): the
    # sightings-only transaction finds the item new, rolls back, and the batch is written durably.
    engine = sqlite_engine(tmp_path)
    long_ago = "2020-01-01 00:00:00.000000"
    monkeypatch.setattr(store_module, "_known_sqlite", lambda conn, params: [(1, long_ago, long_ago)])
    modes: list[str] = []
    original = store_module._write_sqlite_batch

    def spy(conn: Any, batch: Any, sightings_only: bool) -> Any:
        modes.append(f"{sightings_only}:{conn.execute('PRAGMA synchronous').fetchone()[0]}")
        return original(conn, batch, sightings_only)

    monkeypatch.setattr(store_module, "_write_sqlite_batch", spy)
    try:
        assert isinstance(send(engine, "NC-6-2", "msg_1"), Accepted)
        assert modes == ["True:1", "False:2"]  # NORMAL tried, rolled back; FULL wrote it
        assert deliveries(engine) == 1 and rows(engine)["NC-6-2"][0] == 1
    finally:
        engine.dispose()
