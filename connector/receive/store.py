"""Durable ingest: the fingerprint row and the queued delivery, written in one transaction.

Uniqueness is the database's job (unique indexes + INSERT ... ON CONFLICT DO NOTHING): a look-up comes first
(a duplicate is then answered from it), but it decides nothing alone, since the INSERT after it still conflicts
with a concurrent copy; so N concurrent copies of one delivery in N processes produce exactly one queued delivery.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Dialect, Engine, insert, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import Pool

from connector.clock import utcnow
from connector.db import begin_immediate, driver_connection
from connector.models import Delivery, DeliveryStatus, Fingerprint, UTCDateTime
from connector.receive.events import NcEvent
from connector.receive.group_commit import GroupCommit
from connector.receive.notify import NOTIFY_CHANNEL, notifier
from connector.receive.sightings import COALESCE_SECONDS, sighting_log

__all__ = ["NOTIFY_CHANNEL", "Accepted", "Duplicate", "record_delivery"]
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


# The ingest statements go straight to the driver connection (from SQLAlchemy's pool): SQLAlchemy's
# statement machinery cost more CPU per delivery than everything else an ingest does (profile in
# bench/README.md). The SQL is fixed text; values are bound by the driver.
#
# PostgreSQL: ONE statement, sent in autocommit (a single statement is its own transaction) and prepared
# once per connection, so a new delivery and a duplicate each cost one round trip:
# - new content and webhook-id: the fingerprint row and the queued delivery;
# - a duplicate (a conflict on either unique index): the row(s) it duplicates and the first sighting's time
#   read; the sighting itself written here only when a row's stored last_seen_at is older than
#   COALESCE_SECONDS, otherwise counted in memory, its times_seen written within a second (sightings.py), so the
#   duplicate of a recent delivery writes nothing, as a plain INSERT ... ON CONFLICT DO NOTHING would not;
# - the thin-event re-queue when it applies.
# No NOTIFY in it: the workers' wake-up is sent after the commit, one for many deliveries (notify.py).
# A commit that only wrote a sighting does not wait for its WAL flush (synchronous_commit off for that
# transaction alone): the content it duplicates was committed durably before, and what a crash of the
# database server could lose is the last ~0.6 s of sightings (wal_writer_delay x 3), never a delivery.
# The look-up comes before the INSERT, which runs only when it found nothing: an INSERT that conflicts with
# a row another transaction is updating waits for that transaction (to know whether the row survives), and
# the rows a process's sighting flush updates are the ones being re-sent; a read waits for nothing.
# Every CTE sees the statement's snapshot. A conflict with a row committed after that snapshot was taken
# (a concurrent copy) leaves `known` and `fp` empty: record_delivery then notes the sighting in a second
# statement. The re-queue needs a known row, so in that case nothing of the duplicate was written yet.
_DELIVERY_COLUMNS = """fingerprint, webhook_id, nc_id, event_type, event_timestamp, payload, received_at,
                            status, attempts, next_attempt_at, source"""
PG_RECORD = f"""
WITH known AS (
    SELECT id, first_seen_at, last_seen_at FROM fingerprints
    WHERE fingerprint = %(fingerprint)s OR webhook_id = %(webhook_id)s
), fp AS (
    INSERT INTO fingerprints (fingerprint, webhook_id, nc_id, event_type, first_seen_at, last_seen_at, times_seen)
    SELECT %(fingerprint)s, %(webhook_id)s, %(nc_id)s, %(event_type)s, %(now)s, %(now)s, 1
    WHERE NOT EXISTS (SELECT FROM known)
    ON CONFLICT DO NOTHING
    RETURNING id
), queued AS (
    INSERT INTO deliveries ({_DELIVERY_COLUMNS})
    SELECT %(fingerprint)s, %(webhook_id)s, %(nc_id)s, %(event_type)s, %(event_timestamp)s, %(payload)s, %(now)s,
           '{DeliveryStatus.QUEUED}', 0, %(now)s, %(source)s
    FROM fp
    RETURNING id
), seen AS (
    UPDATE fingerprints SET last_seen_at = %(now)s, times_seen = times_seen + 1
    WHERE id IN (SELECT id FROM known) AND EXISTS (SELECT FROM known WHERE last_seen_at < %(stale)s)
    RETURNING id
), requeued AS (
    INSERT INTO deliveries ({_DELIVERY_COLUMNS})
    SELECT %(fingerprint)s, NULL, %(nc_id)s, %(event_type)s, %(event_timestamp)s, %(payload)s, %(now)s,
           '{DeliveryStatus.QUEUED}', 0, %(now)s, %(source)s
    WHERE %(requeue)s AND EXISTS (SELECT FROM known) AND NOT EXISTS (
        SELECT FROM deliveries WHERE nc_id = %(nc_id)s AND status = '{DeliveryStatus.QUEUED}')
    RETURNING id
)
SELECT (SELECT id FROM queued), (SELECT min(first_seen_at) FROM known), EXISTS (SELECT FROM requeued),
       CASE WHEN EXISTS (SELECT FROM seen) THEN NULL ELSE ARRAY(SELECT id FROM known) END,
       CASE WHEN EXISTS (SELECT FROM seen) AND NOT EXISTS (SELECT FROM requeued)
            THEN set_config('synchronous_commit', 'off', true) END
"""
# Set once on every connection that runs PG_RECORD. A connection's prepared statement keeps the generic plan
# PostgreSQL picks after its fifth run; one picked while fingerprints held a few rows (a new installation, the
# bench's emptied tables) was a sequential scan, and stayed one as the table grew, until an ANALYZE of it
# invalidated the plan: rounds of the bench ran at two thirds of the others (87,695 scans of 4,080 rows each).
# Every table the statement reads has the index it needs, so no plan it wants is forbidden (test_store_plan.py).
PG_SESSION = "SET enable_seqscan = off"
# SQLite has no INSERT in a CTE: the same steps as statements in one transaction (of a group commit).
_SQLITE_FINGERPRINT = """
INSERT INTO fingerprints (fingerprint, webhook_id, nc_id, event_type, first_seen_at, last_seen_at, times_seen)
VALUES (:fingerprint, :webhook_id, :nc_id, :event_type, :now, :now, 1)
ON CONFLICT DO NOTHING
RETURNING id
"""
_SQLITE_DELIVERY = f"""
INSERT INTO deliveries ({_DELIVERY_COLUMNS})
VALUES (:fingerprint, :webhook_id, :nc_id, :event_type, :event_timestamp, :payload, :now,
        '{DeliveryStatus.QUEUED}', 0, :now, :source)
RETURNING id
"""
_SQLITE_SIGHTING = """
UPDATE fingerprints SET last_seen_at = :now, times_seen = times_seen + 1
WHERE fingerprint = :fingerprint OR webhook_id = :webhook_id
RETURNING first_seen_at
"""
_SQLITE_KNOWN = """
SELECT id, first_seen_at, last_seen_at FROM fingerprints WHERE fingerprint = :fingerprint OR webhook_id = :webhook_id
"""
_SQLITE_REQUEUE = f"""
INSERT INTO deliveries ({_DELIVERY_COLUMNS})
SELECT :fingerprint, NULL, :nc_id, :event_type, :event_timestamp, :payload, :now, '{DeliveryStatus.QUEUED}', 0, :now,
       :source
WHERE NOT EXISTS (SELECT 1 FROM deliveries WHERE nc_id = :nc_id AND status = '{DeliveryStatus.QUEUED}')
"""
# What the driver hands back for a stored datetime: psycopg a naive datetime, sqlite3 SQLAlchemy's text.
_Stored = datetime | str


def record_delivery(engine: Engine, event: NcEvent, body: bytes, fp: str, webhook_id: str | None,
                    requeue_thin: bool = False, source: str = "webhook") -> Accepted | Duplicate:
    """Store a new delivery (fingerprint + queue row, one commit) or note a duplicate.

    requeue_thin (enrichment on): a duplicate of a thin event re-queues its NC unless a delivery
    of that NC is still waiting, because the fetch of an earlier sync may predate the change that
    this copy announces (two thin changes in one second have the same bytes).
    source: where the delivery came from, "webhook" or "reconcile" (shown in `deliveries list`).
    """
    values = delivery_values(event, body, fp, webhook_id, requeue_thin, source)
    delivery_id, first_seen = _record(engine, values)
    return outcome(engine, values, delivery_id, first_seen) or note_concurrent_copy(engine, values)


# The pieces of record_delivery that store_async.py shares (it runs the PostgreSQL statement on an event loop).

def delivery_values(event: NcEvent, body: bytes, fp: str, webhook_id: str | None, requeue_thin: bool,
                    source: str) -> dict[str, Any]:
    """What a delivery stores, received now."""
    return {"fingerprint": fp, "webhook_id": webhook_id, "nc_id": event.nc_id, "event_type": event.event_type,
            "event_timestamp": event.timestamp, "payload": body.decode("utf-8"), "now": utcnow(),
            "requeue": requeue_thin and event.is_thin, "source": source}


def bound_params(dialect: Dialect, values: dict[str, Any]) -> dict[str, Any]:
    """The statements' parameters: datetimes as the dialect stores them, and the sightings' staleness cut-off."""
    to_db = _datetime_binder(dialect)
    now = values["now"]
    return values | {"now": to_db(now), "event_timestamp": to_db(values["event_timestamp"]),
                     "stale": to_db(now - timedelta(seconds=COALESCE_SECONDS))}


_Recorded = tuple[int | None, _Stored | None]  # (new delivery's id, or the first sighting of what it duplicates)


def settle_postgresql(engine: Engine, row: Sequence[Any]) -> _Recorded:
    """PG_RECORD's row, committed: the workers woken for a re-queued NC, a sighting it left unwritten noted in
    this process's sighting log; (new delivery's id, first sighting), (None, None) for a concurrent copy."""
    delivery_id, first_seen, requeued, unwritten, _ = row
    if requeued:
        _wake_workers(engine)
    if unwritten:
        sighting_log(engine).note(unwritten)
    return (None if delivery_id is None else int(delivery_id)), first_seen


def outcome(engine: Engine, values: dict[str, Any], delivery_id: int | None,
            first_seen: _Stored | None) -> Accepted | Duplicate | None:
    """What a committed statement recorded; None when it was a concurrent copy (note_concurrent_copy)."""
    if delivery_id is not None:
        _wake_workers(engine)
        return Accepted(delivery_id, values["fingerprint"])
    if first_seen is not None:
        return Duplicate(values["fingerprint"], _from_db(first_seen))
    return None


def note_concurrent_copy(engine: Engine, values: dict[str, Any]) -> Duplicate:
    """PostgreSQL only: the row this copy duplicates was committed after the statement's snapshot (a concurrent
    copy), so the statement could not note the sighting. Rare; a transaction of its own."""
    fp, now, requeue = values["fingerprint"], values["now"], values["requeue"]
    with engine.begin() as conn:
        requeued = requeue and not _has_waiting_delivery(conn, values["nc_id"])
        if requeued:
            _enqueue(conn, fp, {"webhook_id": None, "nc_id": values["nc_id"], "event_type": values["event_type"],
                                "event_timestamp": values["event_timestamp"], "payload": values["payload"],
                                "received_at": now, "next_attempt_at": now, "status": DeliveryStatus.QUEUED,
                                "attempts": 0, "source": values["source"]})
        duplicate = Duplicate(fp, _note_sighting(conn, fp, values["webhook_id"], now))
    if requeued:
        _wake_workers(engine)
    return duplicate


def _wake_workers(engine: Engine) -> None:
    """After a commit that queued a delivery: PostgreSQL's listening workers get a NOTIFY soon (SQLite polls)."""
    if engine.dialect.name == "postgresql":
        notifier(engine).poke()


def _record(engine: Engine, values: dict[str, Any]) -> _Recorded:
    """One delivery on the driver connection, committed: new (its id) or a duplicate (the first sighting's
    time; its sighting written, or left to this process's sighting log), or (None, None) when PostgreSQL
    could not note the sighting. Driver errors are raised as SQLAlchemy's DBAPIError."""
    params = bound_params(engine.dialect, values)
    if engine.dialect.name == "postgresql":
        return settle_postgresql(engine, _on_driver_connection(engine.pool, engine.dialect, _execute_postgresql,
                                                               params))
    delivery_id, first_seen, unwritten = _record_sqlite(engine, params)
    if unwritten:
        sighting_log(engine).note(unwritten)
    return delivery_id, first_seen


def _on_driver_connection(pool: Pool, dialect: Dialect, write: Callable[[Any, Arg], Out], arg: Arg) -> Out:
    """write(driver connection, arg) on a pooled connection; driver errors raised as DBAPIError (the
    connection they happened on is discarded: its state is unknown, a lost server, an aborted statement)."""
    driver_error = dialect.loaded_dbapi.Error
    try:
        with driver_connection(pool) as conn:
            return write(conn, arg)
    except driver_error as exc:
        raise DBAPIError.instance("record_delivery", None, exc, driver_error) from exc


def _execute_postgresql(conn: Any, params: dict[str, Any]) -> Sequence[Any]:
    conn.autocommit = True
    try:
        if conn not in _PLANNED:  # the setting holds for the connection's other statements too: see PG_SESSION
            conn.execute(PG_SESSION)
            _PLANNED.add(conn)
        row: Sequence[Any] = conn.execute(PG_RECORD, params, prepare=True).fetchone()
    finally:
        conn.autocommit = False  # how SQLAlchemy expects its pooled connections
    return row


_PLANNED: weakref.WeakSet[Any] = weakref.WeakSet()  # the driver connections PG_SESSION was set on


def _record_sqlite(engine: Engine, params: dict[str, Any]) -> tuple[int | None, _Stored | None, list[int]]:
    """A duplicate of a recently seen row is answered from a read (any connection, no write lock); the
    rest goes to this process's group commit."""
    known = _on_driver_connection(engine.pool, engine.dialect, _known_sqlite, params)
    stale = _from_db(params["stale"])
    if known and not params["requeue"] and all(_from_db(last_seen) >= stale for _, _, last_seen in known):
        return None, min(first_seen for _, first_seen, _ in known), [row_id for row_id, _, _ in known]
    delivery_id, first_seen = _sqlite_writer(engine).submit(params | {"known": bool(known)})
    return delivery_id, first_seen, []


def _known_sqlite(conn: Any, params: dict[str, Any]) -> list[tuple[int, str, str]]:
    return conn.execute(_SQLITE_KNOWN, params).fetchall()  # type: ignore[no-any-return]


_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, GroupCommit[dict[str, Any], _Recorded]] = (
    weakref.WeakKeyDictionary())
_SQLITE_WRITERS_LOCK = threading.Lock()


def _sqlite_writer(engine: Engine) -> GroupCommit[dict[str, Any], _Recorded]:
    """This process's group commit for the engine's database (it holds the pool, not the engine)."""
    pool, dialect = engine.pool, engine.dialect
    with _SQLITE_WRITERS_LOCK:
        writer = _SQLITE_WRITERS.get(engine)
        if writer is None:
            writer = _SQLITE_WRITERS[engine] = GroupCommit(
                lambda batch: _on_driver_connection(pool, dialect, _record_sqlite_batch, batch))
        return writer


def _record_sqlite_batch(conn: Any, batch: Sequence[dict[str, Any]]) -> list[_Recorded]:
    """Every delivery of the batch in one transaction: new ones stored, duplicates' sightings noted
    (a duplicate possibly of an earlier item of this batch).

    A batch of nothing but sightings commits without the WAL's fsync (synchronous=NORMAL for that one
    transaction, as PostgreSQL's synchronous_commit off, see PG_RECORD): a power loss may lose its
    sightings, never a delivery. SQLite lets that be set only between transactions, so it is decided by
    what each item's caller read before (`known`); if anything turns out new in the transaction after all
    (a row pruned in between), that transaction is rolled back and the batch written again with the fsync.
    """
    if not any(params["requeue"] for params in batch) and all(params["known"] for params in batch):
        (level,) = conn.execute("PRAGMA synchronous").fetchone()
        conn.execute("PRAGMA synchronous=NORMAL")
        try:
            results = _write_sqlite_batch(conn, batch, sightings_only=True)
        finally:
            conn.execute(f"PRAGMA synchronous={int(level)}")
        if results is not None:
            return results
    written = _write_sqlite_batch(conn, batch, sightings_only=False)
    assert written is not None
    return written


def _write_sqlite_batch(conn: Any, batch: Sequence[dict[str, Any]], sightings_only: bool) -> list[_Recorded] | None:
    """The batch in one transaction; None (rolled back) when sightings_only and an item was new."""
    # Take the write lock up front (see db.make_engine); everything is ready before it is held.
    begin_immediate(conn)
    try:
        results: list[_Recorded] = []
        for params in batch:
            if conn.execute(_SQLITE_FINGERPRINT, params).fetchone() is not None:
                if sightings_only:
                    conn.execute("ROLLBACK")
                    return None
                results.append((int(conn.execute(_SQLITE_DELIVERY, params).fetchone()[0]), None))
                continue
            if params["requeue"]:  # before the sighting, as on PostgreSQL: both see the queue as it was
                conn.execute(_SQLITE_REQUEUE, params)
            seen = [row[0] for row in conn.execute(_SQLITE_SIGHTING, params)]
            # The lock is ours since BEGIN: the conflicting row is there (prune cannot run in between).
            results.append((None, min(seen, default=params["now"])))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return results


def _from_db(value: _Stored) -> datetime:
    """A stored naive-UTC datetime as an aware one (what UTCDateTime gives the models)."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC)


@functools.cache
def _datetime_binder(dialect: Dialect) -> Callable[[datetime], Any]:
    """What the dialect stores for an aware datetime, exactly as the models' UTCDateTime would."""
    process = UTCDateTime().bind_processor(dialect)
    assert process is not None
    return process


def _enqueue(conn: Connection, fp: str, values: Mapping[str, object]) -> int:
    delivery_id: int = conn.execute(
        insert(Delivery).values(fingerprint=fp, **values).returning(Delivery.id)).scalar_one()
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
