"""Prune: expired fingerprints and finished deliveries deleted in small batches, beside ingest."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select

from connector.clock import utcnow
from connector.models import Delivery, DeliveryStatus, Fingerprint
from connector.receive.sightings import COALESCE_SECONDS

__all__ = ["PruneResult", "prune"]
FINISHED_STATUSES = (DeliveryStatus.DONE, DeliveryStatus.IGNORED)


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
    # A row's stored last_seen_at may be up to COALESCE_SECONDS behind its last sighting (sightings.py).
    fp_cutoff = now - timedelta(seconds=fingerprint_retention + COALESCE_SECONDS)
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
