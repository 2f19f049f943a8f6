"""Durable ingest: the fingerprint row and the queued delivery, written in one transaction.

Uniqueness is the database's job (unique indexes + INSERT ... ON CONFLICT DO NOTHING),
never check-then-insert, so N concurrent copies of one delivery in N processes produce
exactly one queued delivery.
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Dialect, Engine, delete, insert, or_, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import Pool

from connector.clock import utcnow
from connector.db import begin_immediate
from connector.models import Delivery, DeliveryStatus, Fingerprint, UTCDateTime
from connector.receive.events import NcEvent
from connector.receive.group_commit import GroupCommit

NOTIFY_CHANNEL = "nc_connector_deliveries"
FINISHED_STATUSES = (DeliveryStatus.DONE, DeliveryStatus.IGNORED)
Arg = TypeVar("Arg")
Out = TypeVar("Out")


@dataclass(frozen=True)
class Accepted:
    delivery_id: int
    fingerprint: str


@dataclass(frozen=True)
class Duplicate:
    fingerprint: str
    first_seen_at: datetime


# The ingest INSERTs go straight to the driver connection (from SQLAlchemy's pool): SQLAlchemy's
# statement machinery cost more CPU per delivery than everything else an ingest does (profile in
# bench/README.md). The SQL is fixed text; values are bound by the driver.
#
# PostgreSQL: the fingerprint row, the queued delivery and the worker's wake-up in ONE statement,
# sent in autocommit (a single statement is its own transaction) and prepared once per connection:
# one round trip. No fingerprint row inserted (a conflict) means no delivery row either.
_PG_RECORD = f"""
WITH fp AS (
    INSERT INTO fingerprints (fingerprint, webhook_id, nc_id, event_type, first_seen_at, last_seen_at, times_seen)
    VALUES (%(fingerprint)s, %(webhook_id)s, %(nc_id)s, %(event_type)s, %(now)s, %(now)s, 1)
    ON CONFLICT DO NOTHING
    RETURNING id
), queued AS (
    INSERT INTO deliveries (fingerprint, webhook_id, nc_id, event_type, event_timestamp, payload, received_at,
                            status, attempts, next_attempt_at)
    SELECT %(fingerprint)s, %(webhook_id)s, %(nc_id)s, %(event_type)s, %(event_timestamp)s, %(payload)s, %(now)s,
           '{DeliveryStatus.QUEUED}', 0, %(now)s
    FROM fp
    RETURNING id
)
SELECT id, pg_notify('{NOTIFY_CHANNEL}', '') FROM queued
"""
# SQLite has no INSERT in a CTE: two statements between BEGIN IMMEDIATE and COMMIT.
_SQLITE_FINGERPRINT = """
INSERT INTO fingerprints (fingerprint, webhook_id, nc_id, event_type, first_seen_at, last_seen_at, times_seen)
VALUES (:fingerprint, :webhook_id, :nc_id, :event_type, :now, :now, 1)
ON CONFLICT DO NOTHING
RETURNING id
"""
_SQLITE_DELIVERY = f"""
INSERT INTO deliveries (fingerprint, webhook_id, nc_id, event_type, event_timestamp, payload, received_at,
                        status, attempts, next_attempt_at)
VALUES (:fingerprint, :webhook_id, :nc_id, :event_type, :event_timestamp, :payload, :now,
        '{DeliveryStatus.QUEUED}', 0, :now)
RETURNING id
"""


def record_delivery(engine: Engine, event: NcEvent, body: bytes, fp: str, webhook_id: str | None,
                    requeue_thin: bool = False) -> Accepted | Duplicate:
    """Store a new delivery (fingerprint + queue row, one commit) or note a duplicate.

    requeue_thin (enrichment on): a duplicate of a thin event re-queues its NC unless a delivery
    of that NC is still waiting, because the fetch of an earlier sync may predate the change that
    this copy announces (two thin changes in one second have the same bytes).
    """
    now = utcnow()
    delivery_id = _insert_new(engine, {
        "fingerprint": fp, "webhook_id": webhook_id, "nc_id": event.nc_id, "event_type": event.event_type,
        "event_timestamp": event.timestamp, "payload": body.decode("utf-8"), "now": now})
    if delivery_id is not None:
        return Accepted(delivery_id, fp)
    with engine.begin() as conn:
        if requeue_thin and event.is_thin and not _has_waiting_delivery(conn, event.nc_id):
            _enqueue(conn, fp, {"webhook_id": None, "nc_id": event.nc_id, "event_type": event.event_type,
                                "event_timestamp": event.timestamp, "payload": body.decode("utf-8"),
                                "received_at": now, "next_attempt_at": now, "status": DeliveryStatus.QUEUED,
                                "attempts": 0})
        return Duplicate(fp, _note_sighting(conn, fp, webhook_id, now))


def _insert_new(engine: Engine, values: dict[str, Any]) -> int | None:
    """Insert and commit the fingerprint row and the queued delivery; None when the content or the
    webhook-id is already known (nothing written). Driver errors are raised as SQLAlchemy's DBAPIError."""
    to_db = _datetime_binder(engine.dialect)
    params = values | {"now": to_db(values["now"]), "event_timestamp": to_db(values["event_timestamp"])}
    if engine.dialect.name == "postgresql":
        return _on_driver_connection(engine.pool, engine.dialect, _insert_postgresql, params)
    return _sqlite_writer(engine).submit(params)


def _on_driver_connection(pool: Pool, dialect: Dialect, write: Callable[[Any, Arg], Out], arg: Arg) -> Out:
    """write(driver connection, arg) on a pooled connection; driver errors raised as DBAPIError."""
    driver_error = dialect.loaded_dbapi.Error
    raw = None
    try:
        raw = pool.connect()
        return write(raw.driver_connection, arg)
    except driver_error as exc:
        if raw is not None:
            raw.invalidate()  # its state is unknown (a lost server, an aborted statement): never reuse it
        raise DBAPIError.instance("record_delivery", None, exc, driver_error,
                                  connection_invalidated=raw is not None) from exc
    finally:
        if raw is not None:
            raw.close()


def _insert_postgresql(conn: Any, params: dict[str, Any]) -> int | None:
    conn.autocommit = True
    try:
        row = conn.execute(_PG_RECORD, params, prepare=True).fetchone()
    finally:
        conn.autocommit = False  # how SQLAlchemy expects its pooled connections
    return None if row is None else int(row[0])


_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, GroupCommit[dict[str, Any], int | None]] = (
    weakref.WeakKeyDictionary())
_SQLITE_WRITERS_LOCK = threading.Lock()


def _sqlite_writer(engine: Engine) -> GroupCommit[dict[str, Any], int | None]:
    """This process's group commit for the engine's database (it holds the pool, not the engine)."""
    pool, dialect = engine.pool, engine.dialect
    with _SQLITE_WRITERS_LOCK:
        writer = _SQLITE_WRITERS.get(engine)
        if writer is None:
            writer = _SQLITE_WRITERS[engine] = GroupCommit(
                lambda batch: _on_driver_connection(pool, dialect, _insert_sqlite_batch, batch))
        return writer


def _insert_sqlite_batch(conn: Any, batch: Sequence[dict[str, Any]]) -> list[int | None]:
    """Every delivery of the batch in one transaction; None for each one already known."""
    # Take the write lock up front (see db.make_engine); everything is ready before it is held.
    begin_immediate(conn)
    try:
        results: list[int | None] = []
        for params in batch:
            if conn.execute(_SQLITE_FINGERPRINT, params).fetchone() is None:
                results.append(None)  # a duplicate (possibly of an earlier item of this batch)
            else:
                results.append(int(conn.execute(_SQLITE_DELIVERY, params).fetchone()[0]))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return results


@functools.cache
def _datetime_binder(dialect: Dialect) -> Callable[[datetime], Any]:
    """What the dialect stores for an aware datetime, exactly as the models' UTCDateTime would."""
    process = UTCDateTime().bind_processor(dialect)
    assert process is not None
    return process


def _enqueue(conn: Connection, fp: str, values: Mapping[str, object]) -> int:
    delivery_id: int = conn.execute(
        insert(Delivery).values(fingerprint=fp, **values).returning(Delivery.id)).scalar_one()
    if conn.dialect.name == "postgresql":  # wakes a listening worker at commit
        conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
    return delivery_id


def _has_waiting_delivery(conn: Connection, nc_id: str) -> bool:
    query = select(Delivery.id).where(Delivery.nc_id == nc_id, Delivery.status == DeliveryStatus.QUEUED).limit(1)
    return conn.execute(query).first() is not None


def _note_sighting(conn: Connection, fp: str, webhook_id: str | None, now: datetime) -> datetime:
    """Bump last_seen/times_seen of the row(s) this delivery duplicates; return first_seen."""
    match = Fingerprint.fingerprint == fp
    if webhook_id is not None:
        match = or_(match, Fingerprint.webhook_id == webhook_id)
    seen = conn.execute(
        update(Fingerprint).where(match).values(last_seen_at=now, times_seen=Fingerprint.times_seen + 1)
        .returning(Fingerprint.first_seen_at)
    ).scalars().all()
    # The conflicting row can only vanish if prune removed it in between: report now.
    return min(seen, default=now)


@dataclass(frozen=True)
class PruneResult:
    fingerprints: int
    deliveries: int


# Rows per prune transaction, at most. SQLite has one writer: there a batch also shrinks until it holds
# the write lock (which every ingest needs) for about PRUNE_HOLD_SECONDS.
PRUNE_BATCH = {"sqlite": 500, "postgresql": 5000}
PRUNE_HOLD_SECONDS = 0.01
PRUNE_MIN_BATCH = 50


def prune(engine: Engine, fingerprint_retention: float, delivery_retention: float, batch_size: int | None = None,
          progress: Callable[[str, int], None] | None = None, now: datetime | None = None,
          sleep: Callable[[float], None] = time.sleep) -> PruneResult:
    """Delete expired fingerprints and finished deliveries in small batches (short transactions).

    After each batch it pauses as long as the batch held its transaction open, so ingest gets at least
    half of the database's time, however large the backlog of expired rows.
    """
    now = now or utcnow()
    batch_size = batch_size or PRUNE_BATCH.get(engine.dialect.name, 1000)
    fp_cutoff = now - timedelta(seconds=fingerprint_retention)
    delivery_cutoff = now - timedelta(seconds=delivery_retention)
    removed_fps = _delete_in_batches(
        engine, Fingerprint.id, Fingerprint.last_seen_at < fp_cutoff, batch_size, sleep,
        lambda n: progress("fingerprints", n) if progress else None,
    )
    removed_deliveries = _delete_in_batches(
        engine, Delivery.id, (Delivery.status.in_(FINISHED_STATUSES)) & (Delivery.finished_at < delivery_cutoff),
        batch_size, sleep, lambda n: progress("deliveries", n) if progress else None,
    )
    return PruneResult(removed_fps, removed_deliveries)


def _delete_in_batches(engine: Engine, id_column: object, condition: object, batch_size: int,
                       sleep: Callable[[float], None], progress: Callable[[int], None]) -> int:
    table = id_column.class_  # type: ignore[attr-defined]
    sqlite = engine.dialect.name == "sqlite"
    size, total = batch_size, 0
    while True:
        ids = select(id_column).where(condition).limit(size)  # type: ignore[call-overload]
        with engine.begin() as conn:
            started = time.monotonic()  # the transaction has begun: on SQLite the write lock is ours from here
            removed = conn.execute(delete(table).where(id_column.in_(ids))).rowcount  # type: ignore[attr-defined]
        held = time.monotonic() - started
        total += removed
        progress(total)
        if removed < size:
            return total
        if sqlite:
            _checkpoint(engine)
            size = min(batch_size, max(PRUNE_MIN_BATCH, int(size * PRUNE_HOLD_SECONDS / max(held, 1e-4))))
        sleep(held)


def _checkpoint(engine: Engine) -> None:
    """Copy the WAL into the database now, without blocking anyone (PASSIVE): otherwise the pages prune
    wrote are checkpointed by whichever ingest commit crosses the WAL's size limit, and it waits for that."""
    raw = engine.raw_connection()
    try:
        raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")  # type: ignore[union-attr]
    finally:
        raw.close()
