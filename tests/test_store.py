"""Ingest and housekeeping queries on real databases."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from connector.events import validate_event
from connector.fingerprint import fingerprint
from connector.models import Delivery, Fingerprint
from connector.store import Accepted, Duplicate, prune, record_delivery, utcnow


def store(engine, i: int, webhook_id: str | None = None):
    event = validate_event({"eventType": "nc.updated", "ncId": f"NC-1-{i}", "timestamp": "2025-01-05T10:15:32Z"})
    return record_delivery(engine, event, b"{}", fingerprint(event.payload), webhook_id)


def test_first_is_accepted_then_duplicates(engine):
    assert isinstance(store(engine, 1, "msg_a"), Accepted)
    again = store(engine, 1, None)
    assert isinstance(again, Duplicate)
    assert isinstance(store(engine, 2, "msg_a"), Duplicate)  # same webhook-id, other content
    with engine.connect() as conn:
        assert conn.execute(select(Fingerprint.times_seen)).scalar_one() == 3


def test_prune_removes_only_expired_in_batches(engine):
    for i in range(23):
        store(engine, i)
    old = utcnow() - timedelta(days=8)
    with engine.begin() as conn:
        conn.execute(update(Fingerprint).where(Fingerprint.id <= 17).values(first_seen_at=old, last_seen_at=old))
        conn.execute(update(Delivery).where(Delivery.id <= 5).values(status="done", finished_at=old))
        conn.execute(update(Delivery).where(Delivery.id.between(6, 8)).values(status="dead", finished_at=old))
    seen: list[tuple[str, int]] = []
    result = prune(engine, 7 * 86400, 7 * 86400, batch_size=4, progress=lambda t, n: seen.append((t, n)))
    assert (result.fingerprints, result.deliveries) == (17, 5)
    assert [n for t, n in seen if t == "fingerprints"] == [4, 8, 12, 16, 17]
    with engine.connect() as conn:
        assert conn.execute(select(func.min(Fingerprint.id))).scalar_one() == 18
        # dead letters are kept for the operator whatever their age
        assert conn.execute(select(func.count()).where(Delivery.status == "dead")).scalar_one() == 3


def test_recent_sighting_keeps_a_fingerprint(engine):
    store(engine, 1)
    old = utcnow() - timedelta(days=30)
    with engine.begin() as conn:
        conn.execute(update(Fingerprint).values(first_seen_at=old, last_seen_at=old))
    store(engine, 1)  # the sender retried today: the log must still catch tomorrow's retry
    assert prune(engine, 7 * 86400, 7 * 86400).fingerprints == 0


def thin(engine, requeue: bool):
    event = validate_event({"eventType": "nc.updated", "ncId": "NC-7-7", "timestamp": "2025-01-05T10:15:32Z"})
    return record_delivery(engine, event, b"{}", fingerprint(event.payload), None, requeue_thin=requeue)


def test_thin_duplicate_requeues_the_nc_only_when_enrichment_needs_it(engine):
    assert isinstance(thin(engine, True), Accepted)
    assert isinstance(thin(engine, True), Duplicate)  # the original still waits: its fetch will see all
    with engine.begin() as conn:
        conn.execute(update(Delivery).values(status="processing"))  # now a fetch may be in flight
    assert isinstance(thin(engine, False), Duplicate)
    assert isinstance(thin(engine, True), Duplicate)  # answered as a duplicate, but the NC is synced again
    with engine.connect() as conn:
        statuses = sorted(s for (s,) in conn.execute(select(Delivery.status)))
    assert statuses == ["processing", "queued"]
