"""PostgreSQL plans the ingest statement (store.PG_RECORD) without a sequential scan, on every connection that
runs it: a generic plan picked while the tables were nearly empty was a sequential scan, kept as they grew."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine

from connector import db
from connector.db import driver_connection
from connector.receive import store
from connector.receive.events import validate_event
from connector.receive.fingerprint import fingerprint
from connector.receive.store_async import AsyncStore
from tests.conftest import truncate

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(pg_url: str) -> Iterator[Engine]:
    """This run's PostgreSQL database, emptied, on an engine of one connection (the one a delivery used)."""
    engine = db.make_engine(pg_url, pool_size=1, max_overflow=0)
    truncate(engine)
    yield engine
    engine.dispose()


def event(nc: str = "NC-PLAN-1") -> Any:
    return validate_event({"eventType": "nc.updated", "ncId": nc, "timestamp": "2025-01-05T10:15:32Z"})


def generic_plan(conn: Any, session: str | None) -> str:
    """EXPLAIN of PG_RECORD as a cached generic plan (what a prepared statement keeps), on the empty tables."""
    values = store.delivery_values(event(), b"{}", fingerprint(event().payload), "msg_plan", True, "webhook")
    params = store.bound_params(db.make_engine("postgresql+psycopg://").dialect, values)
    conn.autocommit = True
    try:
        conn.execute("RESET enable_seqscan")
        if session:
            conn.execute(session)
        conn.execute("SET plan_cache_mode = force_generic_plan")
        rows = conn.execute("EXPLAIN " + store.PG_RECORD, params).fetchall()
        conn.execute("RESET plan_cache_mode")
        conn.execute("RESET enable_seqscan")
    finally:
        conn.autocommit = False
    return "\n".join(row[0] for row in rows)


def test_the_generic_plan_scans_no_table_whole(pg):
    with driver_connection(pg.pool) as conn:
        unguarded = generic_plan(conn, None)
        guarded = generic_plan(conn, store.PG_SESSION)
    assert "Seq Scan on fingerprints" in unguarded  # what an empty table's plan was: the test can fail
    assert "Seq Scan" not in guarded and "Index" in guarded


def test_the_wsgi_paths_connection_runs_it_with_the_setting(pg):
    store.record_delivery(pg, event(), b"{}", fingerprint(event().payload), "msg_plan_wsgi")
    with driver_connection(pg.pool) as conn:
        assert conn.execute("SHOW enable_seqscan").fetchone() == ("off",)


def test_the_event_loops_connections_run_it_with_the_setting(pg):
    async def record_then_show() -> Any:
        async_store = AsyncStore(pg, ThreadPoolExecutor(1), size=1)
        try:
            await async_store.record(event("NC-PLAN-2"), b"{}", fingerprint(event("NC-PLAN-2").payload), "msg_plan_a")
            assert async_store._connections is not None
            async with async_store._connections.connection() as conn:
                return await (await conn.execute("SHOW enable_seqscan")).fetchone()
        finally:
            await async_store.close()

    assert asyncio.run(record_then_show()) == ("off",)
