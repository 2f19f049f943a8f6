"""Ingest and housekeeping queries on real databases."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, insert, select, update

from connector.clock import utcnow
from connector.mapping.render import COMMENT_KEY_MAX
from connector.models import CommentLink, Delivery, Fingerprint, NcLink
from connector.receive import events, signing
from connector.receive.events import validate_event
from connector.receive.fingerprint import fingerprint
from connector.receive.prune import prune
from connector.receive.sightings import flush_all
from connector.receive.store import Accepted, Duplicate, record_delivery


def store(engine, i: int, webhook_id: str | None = None):
    event = validate_event({"eventType": "nc.updated", "ncId": f"NC-1-{i}", "timestamp": "2025-01-05T10:15:32Z"})
    return record_delivery(engine, event, b"{}", fingerprint(event.payload), webhook_id)


def test_first_is_accepted_then_duplicates(engine):
    assert isinstance(store(engine, 1, "msg_a"), Accepted)
    again = store(engine, 1, None)
    assert isinstance(again, Duplicate)
    assert isinstance(store(engine, 2, "msg_a"), Duplicate)  # same webhook-id, other content
    flush_all()
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


def test_concurrent_copies_in_one_process_make_one_delivery_each(engine):
    # Threads of one web process: on SQLite their INSERTs share transactions (group commit); copies of
    # one content may land in one batch, and exactly one of them is accepted on either database.
    import threading

    outcomes: list[object] = []
    start = threading.Barrier(12)

    def sender(thread: int) -> None:
        start.wait()
        for i in range(20):
            outcomes.append(store(engine, i, None))

    threads = [threading.Thread(target=sender, args=(t,)) for t in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    accepted = [o for o in outcomes if isinstance(o, Accepted)]
    assert len(outcomes) == 240
    assert sorted(o.fingerprint for o in accepted) == sorted({o.fingerprint for o in outcomes})  # type: ignore[attr-defined]
    assert len(accepted) == 20
    flush_all()
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Delivery)).scalar_one() == 20
        assert conn.execute(select(func.sum(Fingerprint.times_seen))).scalar_one() == 240


def test_prune_pauses_between_batches_as_long_as_each_held_the_database(engine):
    for i in range(10):
        store(engine, i)
    old = utcnow() - timedelta(days=8)
    with engine.begin() as conn:
        conn.execute(update(Fingerprint).values(first_seen_at=old, last_seen_at=old))
    pauses: list[float] = []
    assert prune(engine, 7 * 86400, 7 * 86400, batch_size=3, sleep=pauses.append).fingerprints == 10
    # full batches of 3, 3, 3 are each followed by a pause; the last (1 row) ends the run
    assert len(pauses) == 3 and all(0 < pause < 5 for pause in pauses)


def test_prune_batches_are_short_on_sqlite_by_default(engine):
    old = utcnow() - timedelta(days=8)
    rows = [{"fingerprint": f"{i:064x}", "webhook_id": None, "nc_id": "NC-1-1", "event_type": "nc.updated",
             "first_seen_at": old, "last_seen_at": old, "times_seen": 1} for i in range(1200)]
    with engine.begin() as conn:
        conn.execute(insert(Fingerprint), rows)
    seen: list[int] = []
    prune(engine, 7 * 86400, 7 * 86400, progress=lambda table, n: seen.append(n) if table == "fingerprints" else None,
          sleep=lambda seconds: None)
    # SQLite has one writer: at most 500 rows per transaction there (fewer when a batch holds the lock
    # long); PostgreSQL locks rows, 5000 at once
    steps = [b - a for a, b in zip([0, *seen], seen, strict=False)]
    if engine.dialect.name == "sqlite":
        assert seen[-1] == 1200 and steps[0] == 500 and len(seen) >= 3 and max(steps) <= 500
    else:
        assert seen == [1200]


def test_the_contract_admits_nothing_longer_than_the_columns_it_is_stored_in():
    # SQLite ignores String lengths, PostgreSQL refuses the row: a 503 for every retry of that delivery
    for model in (Fingerprint, Delivery):
        columns = model.__table__.c
        assert columns.nc_id.type.length == events.NC_ID_MAX
        assert columns.event_type.type.length == events.EVENT_TYPE_MAX
        assert columns.webhook_id.type.length == signing.WEBHOOK_ID_MAX
        assert columns.fingerprint.type.length == len(fingerprint({})) == 64  # SHA-256 hex, always
    assert CommentLink.__table__.c.comment_key.type.length == COMMENT_KEY_MAX
    assert CommentLink.__table__.c.nc_id.type.length == NcLink.__table__.c.nc_id.type.length == events.NC_ID_MAX


def test_the_longest_admitted_values_are_stored_on_both_databases(engine):
    event = validate_event({"eventType": "nc." + "x" * 61, "ncId": "NC-" + "1" * 61,
                            "timestamp": "0001-01-01T00:00:00Z"})
    assert isinstance(record_delivery(engine, event, b"{}", fingerprint(event.payload), "m" * 256), Accepted)
    event = validate_event({**event.payload, "timestamp": "9999-12-31T23:59:59.999999Z"})
    assert isinstance(record_delivery(engine, event, b"{}", fingerprint(event.payload), "n" * 256), Accepted)
    with engine.connect() as conn:
        stamps = sorted(conn.execute(select(Delivery.event_timestamp)).scalars())
    assert [s.year for s in stamps] == [1, 9999]
