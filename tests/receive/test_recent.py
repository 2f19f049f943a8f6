"""A copy of a delivery this process stored seconds ago is answered without a statement (receive/recent.py),
and only where the database would answer the same: the rules alone, then on both real databases against a
second engine (another process's view), which always asks the database."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select, update

from connector import db
from connector.models import Delivery, DeliveryStatus, Fingerprint
from connector.receive.events import validate_event
from connector.receive.fingerprint import fingerprint
from connector.receive.recent import RecentDeliveries, recent_deliveries
from connector.receive.sightings import COALESCE_SECONDS, flush_all
from connector.receive.store import Accepted, Duplicate, record_delivery
from connector.receive.store_async import AsyncStore
from tests.conftest import truncate

NOW = datetime(2026, 12, 4, 19, 0, 0, 123456, tzinfo=UTC)


def values(webhook_id: str | None, now: datetime = NOW, fp: str = "f" * 64, requeue: bool = False) -> dict[str, Any]:
    return {"fingerprint": fp, "webhook_id": webhook_id, "now": now, "requeue": requeue}


# -- the rules, no database ------------------------------------------------------------------------------------

def test_a_copy_with_the_rows_own_webhook_id_or_none_is_known():
    recent = RecentDeliveries()
    recent.remember(values("msg_1"), 7)
    for webhook_id in ("msg_1", None):
        row = recent.find(values(webhook_id, NOW + timedelta(seconds=5)))
        assert row is not None and (row.row_id, row.first_seen_at) == (7, NOW)


def test_a_new_webhook_id_a_thin_copy_and_another_content_go_to_the_database():
    recent = RecentDeliveries()
    recent.remember(values("msg_1"), 7)
    assert recent.find(values("msg_2")) is None  # the database may know msg_2 as another row's
    assert recent.find(values("msg_1", requeue=True)) is None  # may re-queue its NC: store.py decides
    assert recent.find(values("msg_1", fp="e" * 64)) is None


def test_a_row_older_than_the_sightings_window_goes_to_the_database():
    recent = RecentDeliveries()
    recent.remember(values("msg_1"), 7)
    assert recent.find(values("msg_1", NOW + timedelta(seconds=COALESCE_SECONDS))) is not None
    assert recent.find(values("msg_1", NOW + timedelta(seconds=COALESCE_SECONDS, microseconds=1))) is None


def test_it_holds_the_newest_rows_only():
    recent = RecentDeliveries(capacity=3)
    for k in range(5):
        recent.remember(values(f"msg_{k}", fp=f"{k}" * 64), k)
    assert len(recent) == 3
    assert recent.find(values("msg_1", fp="1" * 64)) is None
    assert [recent.find(values(f"msg_{k}", fp=f"{k}" * 64)) is not None for k in (2, 3, 4)] == [True] * 3


# -- on both databases -----------------------------------------------------------------------------------------

def send(engine: Any, nc: str, webhook_id: str | None, requeue: bool = False) -> Accepted | Duplicate:
    event = validate_event({"eventType": "nc.updated", "ncId": nc, "timestamp": "2025-01-05T10:15:32Z"})
    return record_delivery(engine, event, b"{}", fingerprint(event.payload), webhook_id, requeue_thin=requeue)


class Checkouts:
    """Connections an engine's pool handed out: every statement of record_delivery takes one."""

    def __init__(self, engine: Any) -> None:
        self.count = 0
        sa_event.listen(engine.pool, "checkout", self._seen)

    def _seen(self, *_: Any) -> None:
        self.count += 1


@pytest.fixture
def other(db_url: str) -> Any:
    """A second engine on the same database: another process's, with no recent deliveries of its own."""
    engine = db.make_engine(db_url)
    yield engine
    engine.dispose()


def times_seen(engine: Any) -> int:
    flush_all()
    with engine.connect() as conn:
        return int(conn.execute(select(func.sum(Fingerprint.times_seen))).scalar_one())


def deliveries(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Delivery)).scalar_one())


def test_a_copy_with_its_webhook_id_costs_no_statement_and_answers_as_the_database_does(engine, other):
    first = send(engine, "NC-R-1", "msg_r1")
    checkouts = Checkouts(engine)
    copy = send(engine, "NC-R-1", "msg_r1")
    asked = send(other, "NC-R-1", "msg_r1")  # the database's own answer
    assert isinstance(first, Accepted) and isinstance(copy, Duplicate) and isinstance(asked, Duplicate)
    assert checkouts.count == 0
    assert copy == asked  # same fingerprint, same first sighting to the microsecond
    assert times_seen(engine) == 3 and deliveries(engine) == 1  # both sightings counted, nothing queued


def test_a_copy_without_a_webhook_id_is_answered_from_memory_too(engine, other):
    send(engine, "NC-R-2", "msg_r2")
    checkouts = Checkouts(engine)
    assert send(engine, "NC-R-2", None) == send(other, "NC-R-2", None)
    assert checkouts.count == 0


def test_a_copy_with_another_rows_webhook_id_is_judged_by_the_database(engine):
    send(engine, "NC-R-3", "msg_r3")
    older = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    send(engine, "NC-R-4", "msg_r4")
    with engine.begin() as conn:  # msg_r4's row was first seen long ago
        conn.execute(update(Fingerprint).where(Fingerprint.nc_id == "NC-R-4").values(first_seen_at=older))
    checkouts = Checkouts(engine)
    copy = send(engine, "NC-R-3", "msg_r4")  # NC-R-3's content under NC-R-4's webhook-id: a copy of both rows
    assert isinstance(copy, Duplicate) and copy.first_seen_at == older
    assert checkouts.count >= 1


def test_a_thin_copy_still_requeues_its_nc(engine):
    send(engine, "NC-R-5", "msg_r5", requeue=True)
    with engine.begin() as conn:  # synced: nothing of the NC waits any more
        conn.execute(update(Delivery).values(status=DeliveryStatus.DONE))
    copy = send(engine, "NC-R-5", "msg_r5", requeue=True)
    assert isinstance(copy, Duplicate) and deliveries(engine) == 2


def test_only_committed_rows_are_remembered(engine):
    first = send(engine, "NC-R-6", "msg_r6")
    assert isinstance(first, Accepted)
    row = recent_deliveries(engine).find(values("msg_r6", fp=first.fingerprint, now=datetime.now(UTC)))
    with engine.connect() as conn:
        stored = conn.execute(select(Fingerprint.id).where(Fingerprint.fingerprint == first.fingerprint)).scalar_one()
    assert row is not None and row.row_id == stored


class Unreachable:
    """Connections to a database that is gone: any statement fails the test."""

    def connection(self) -> Any:
        raise AssertionError("a statement was sent for a copy")

    async def close(self) -> None:
        return None


@pytest.mark.postgres
def test_the_event_loops_path_answers_a_copy_without_a_statement(pg_url):
    engine = db.make_engine(pg_url)
    truncate(engine)
    event = validate_event({"eventType": "nc.updated", "ncId": "NC-R-7", "timestamp": "2025-01-05T10:15:32Z"})
    fp = fingerprint(event.payload)

    async def first_then_copies() -> list[Any]:
        async_store = AsyncStore(engine, ThreadPoolExecutor(1), size=1)
        try:
            answers = [await async_store.record(event, b"{}", fp, "msg_r7")]
            await async_store.close()
            async_store._connections = Unreachable()  # type: ignore[assignment]
            answers.append(await async_store.record(event, b"{}", fp, "msg_r7"))
            with pytest.raises(AssertionError, match="a statement was sent"):  # the test can fail
                await async_store.record(event, b"{}", fp, "msg_r7_relayed")
            return answers
        finally:
            await async_store.close()

    try:
        first, copy = asyncio.run(first_then_copies())
        assert isinstance(first, Accepted) and isinstance(copy, Duplicate)
        assert times_seen(engine) == 2
    finally:
        engine.dispose()
