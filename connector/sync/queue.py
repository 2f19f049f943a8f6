"""The worker's side of the delivery queue: claim one NC's deliveries, then finish, retry or bury them.

A claim takes *every* queued delivery of one NC at once (they are coalesced into one sync),
so two workers never hold the same NC: on PostgreSQL the claim runs under a transaction-scoped
advisory lock on the NC id, on SQLite under the database's single writer lock (BEGIN IMMEDIATE).
A claim is a lease: a crashed worker's deliveries become claimable again when it expires.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Exists,
    and_,
    case,
    exists,
    false,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import aliased

from connector import db
from connector.clock import utcnow
from connector.models import WAITING, Delivery, DeliveryStatus


@dataclass(frozen=True)
class ClaimedDelivery:
    id: int
    event_type: str
    event_timestamp: datetime
    payload: str
    attempts: int


@dataclass(frozen=True)
class Claim:
    nc_id: str
    worker_id: str
    deliveries: tuple[ClaimedDelivery, ...]  # in order of receipt

    @property
    def ids(self) -> list[int]:
        return [d.id for d in self.deliveries]

    @property
    def attempts(self) -> int:
        return max(d.attempts for d in self.deliveries)


def _claimable(now: datetime, worker_id: str) -> ColumnElement[bool]:
    return or_(
        and_(Delivery.status == DeliveryStatus.QUEUED, Delivery.next_attempt_at <= now),
        and_(Delivery.status == DeliveryStatus.PROCESSING, Delivery.lease_expires_at <= now),  # a crashed worker's
        # Our own: a worker claims only when it holds nothing, so these are left over from a sync
        # whose release failed (the database was down); no need to wait out our own lease.
        and_(Delivery.status == DeliveryStatus.PROCESSING, Delivery.claimed_by == worker_id),
    )


def _unavailable(nc_id: Any, now: datetime, worker_id: str) -> Exists:
    """The NC is held by another worker, or one of its deliveries waits out a retry delay.

    The second matters: a new delivery must not pull a delivery in backoff forward, since that
    delay may be Jira's Retry-After or the time a write whose answer was lost needs to land.
    """
    other = aliased(Delivery)
    held = and_(other.status == DeliveryStatus.PROCESSING, other.lease_expires_at > now, other.claimed_by != worker_id)
    waiting = and_(other.status == DeliveryStatus.QUEUED, other.next_attempt_at > now)
    return exists().where(other.nc_id == nc_id, or_(held, waiting))


def claim_next(engine: Engine, worker_id: str, lease_seconds: float) -> Claim | None:
    """Claim the NC whose oldest due delivery came first; None when nothing is due."""
    skipped: list[str] = []
    for _ in range(20):  # bounded: NCs locked by other workers this instant are skipped
        with engine.begin() as conn:
            now = db.now(conn)
            query = (select(Delivery.nc_id)
                     .where(_claimable(now, worker_id), ~_unavailable(Delivery.nc_id, now, worker_id))
                     .order_by(Delivery.id).limit(1))
            if skipped:
                query = query.where(Delivery.nc_id.not_in(skipped))
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            nc_id = conn.execute(query).scalar_one_or_none()
            if nc_id is None:
                return None
            if not _lock_nc(conn, nc_id, now, worker_id):
                skipped.append(nc_id)
                continue
            return _take(conn, nc_id, worker_id, now, lease_seconds)
    return None


def _lock_nc(conn: Connection, nc_id: str, now: datetime, worker_id: str) -> bool:
    """PostgreSQL: hold the NC's advisory lock until commit and re-check no one else holds the NC."""
    if conn.dialect.name != "postgresql":
        return True  # BEGIN IMMEDIATE already made this transaction the only writer
    locked = conn.execute(text("SELECT pg_try_advisory_xact_lock(hashtextextended(:nc, 0))"), {"nc": nc_id})
    if not locked.scalar_one():
        return False
    # A fresh statement sees commits made before we took the lock.
    return not conn.execute(select(_unavailable(nc_id, now, worker_id))).scalar_one()


def _take(conn: Connection, nc_id: str, worker_id: str, now: datetime, lease_seconds: float) -> Claim:
    lease = now + timedelta(seconds=lease_seconds)
    conn.execute(
        update(Delivery)
        .where(Delivery.nc_id == nc_id,
               or_(Delivery.status == DeliveryStatus.QUEUED,
                   and_(Delivery.status == DeliveryStatus.PROCESSING,
                        or_(Delivery.lease_expires_at <= now, Delivery.claimed_by == worker_id))))
        .values(status=DeliveryStatus.PROCESSING, claimed_by=worker_id, lease_expires_at=lease)
    )
    rows = conn.execute(
        select(Delivery.id, Delivery.event_type, Delivery.event_timestamp, Delivery.payload, Delivery.attempts)
        .where(Delivery.nc_id == nc_id, Delivery.status == DeliveryStatus.PROCESSING, Delivery.claimed_by == worker_id)
        .order_by(Delivery.id)
    ).all()
    return Claim(nc_id, worker_id, tuple(ClaimedDelivery(*row) for row in rows))


def held(claim: Claim, ids: Sequence[int] | None = None) -> ColumnElement[bool]:
    """The claim's deliveries (or those of `ids`), while they are still this worker's."""
    return and_(Delivery.id.in_(claim.ids if ids is None else ids), Delivery.claimed_by == claim.worker_id,
                Delivery.status == DeliveryStatus.PROCESSING)


def finish(conn: Connection, claim: Claim, status: str, jira_key: str | None,
           ids: Sequence[int] | None = None) -> int:
    """Mark (some of) a claim's deliveries done or ignored, inside the caller's transaction."""
    return conn.execute(
        update(Delivery).where(held(claim, ids))
        .values(status=status, jira_key=jira_key, finished_at=utcnow(), claimed_by=None,
                lease_expires_at=None, last_error=None if status == DeliveryStatus.DONE else Delivery.last_error,
                failed_step=None)
    ).rowcount


def retry_later(engine: Engine, claim: Claim, error: str, delay: float, max_attempts: int,
                count_attempt: bool = True, retry_span: float = 0.0) -> int:
    """Queue the claim again after `delay` seconds; a delivery whose own retry budget is spent (at least
    `max_attempts` failures, and received more than `retry_span` seconds ago) is buried instead. An attempt
    not counted never spends a budget. Returns how many became dead letters."""
    step = 1 if count_attempt else 0
    with engine.begin() as conn:
        now = db.now(conn)
        spent = and_(Delivery.attempts + 1 >= max_attempts,
                     Delivery.received_at <= now - timedelta(seconds=retry_span)) if count_attempt else false()
        conn.execute(
            update(Delivery).where(held(claim))
            .values(status=case((spent, DeliveryStatus.DEAD), else_=DeliveryStatus.QUEUED),
                    attempts=Delivery.attempts + step, last_error=error[:4000], claimed_by=None, lease_expires_at=None,
                    next_attempt_at=now + timedelta(seconds=delay), finished_at=case((spent, now), else_=None))
        )
        dead = conn.execute(select(func.count())
                            .where(Delivery.id.in_(claim.ids), Delivery.status == DeliveryStatus.DEAD))
        return int(dead.scalar_one())


def renew(engine: Engine, claim: Claim, lease_seconds: float) -> bool:
    """Extend our lease (by the database's clock) before a Jira call; False when another worker has taken the
    NC over."""
    with engine.begin() as conn:
        renewed = conn.execute(update(Delivery).where(held(claim))
                               .values(lease_expires_at=db.now(conn) + timedelta(seconds=lease_seconds))).rowcount
    return bool(renewed)


def claims_of(engine: Engine, worker_id: str) -> list[Claim]:
    """What a worker holds now, one claim per NC (for its supervisor, once it saw the worker die)."""
    with db.reader(engine).connect() as conn:
        rows = conn.execute(
            select(Delivery.nc_id, Delivery.id, Delivery.event_type, Delivery.event_timestamp, Delivery.payload,
                   Delivery.attempts)
            .where(Delivery.claimed_by == worker_id, Delivery.status == DeliveryStatus.PROCESSING)
            .order_by(Delivery.id)).all()
    by_nc: dict[str, list[ClaimedDelivery]] = {}
    for row in rows:
        by_nc.setdefault(row.nc_id, []).append(ClaimedDelivery(row.id, row.event_type, row.event_timestamp,
                                                               row.payload, row.attempts))
    return [Claim(nc_id, worker_id, tuple(held_now)) for nc_id, held_now in by_nc.items()]


def release(engine: Engine, worker_id: str) -> int:
    """Give a worker's claims back to the queue, due at once and no attempt counted (a worker that stops
    without finishing its sync in flight): the next worker need not wait out the lease. The sync still in
    flight finds the claim gone (`held`) and records nothing more. Returns how many deliveries."""
    with engine.begin() as conn:
        return conn.execute(
            update(Delivery).where(Delivery.claimed_by == worker_id, Delivery.status == DeliveryStatus.PROCESSING)
            .values(status=DeliveryStatus.QUEUED, claimed_by=None, lease_expires_at=None,
                    next_attempt_at=db.now(conn))
        ).rowcount


def bury(engine: Engine, claim: Claim, error: str, step: str | None = None) -> None:
    """A failure that cannot succeed by retrying: dead letter at once, with the error and the step it failed at."""
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            update(Delivery).where(held(claim))
            .values(status=DeliveryStatus.DEAD, attempts=claim.attempts + 1, last_error=error[:4000], claimed_by=None,
                    lease_expires_at=None, finished_at=now, failed_step=step)
        )


def replay(engine: Engine, ids: Sequence[int] = (), all_dead: bool = False) -> int:
    """Put dead letters back in the queue (attempts reset); returns how many."""
    condition = Delivery.status == DeliveryStatus.DEAD
    if not all_dead:
        condition = and_(condition, Delivery.id.in_(ids))  # type: ignore[assignment]
    with engine.begin() as conn:
        return conn.execute(
            update(Delivery).where(condition)
            .values(status=DeliveryStatus.QUEUED, attempts=0, next_attempt_at=db.now(conn), finished_at=None)
        ).rowcount


def requeue_nc(engine: Engine, nc_id: str) -> int:
    """Queue every stored delivery of one NC again (done and dead ones), e.g. to rebuild a deleted issue with
    its comments; the NC's recorded state still keeps older values from winning. Returns how many."""
    finished = (DeliveryStatus.DONE, DeliveryStatus.DEAD)
    with engine.begin() as conn:
        return conn.execute(
            update(Delivery).where(Delivery.nc_id == nc_id, Delivery.status.in_(finished))
            .values(status=DeliveryStatus.QUEUED, attempts=0, next_attempt_at=db.now(conn), finished_at=None)
        ).rowcount


def queue_figures(engine: Engine) -> dict[str, object]:
    """Counts by status and the age of the oldest queued delivery, for status and metrics."""
    with db.reader(engine).connect() as conn:
        counts = dict(conn.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
        oldest = conn.execute(select(func.min(Delivery.received_at))
                              .where(Delivery.status.in_(WAITING))).scalar_one_or_none()
    return {"counts": counts, "oldest_queued_at": oldest}
