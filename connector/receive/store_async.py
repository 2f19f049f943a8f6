"""record_delivery for an event loop (the asyncio webhook, webhook_async.py).

PostgreSQL: store.py's one statement on this module's connections, awaited on the loop, so a request waiting
for the database holds no thread. Each request thread of the WSGI server had to be woken when its answer came
back; with 16 of them and the database's backends on two cores, that wait was most of the p99 (bench/README.md,
"The p99 tail"). SQLite's driver has no asyncio interface: record_delivery runs in the executor's threads, where
its group commit batches them as under the WSGI server.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import psycopg
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from connector.receive import store
from connector.receive.events import NcEvent
from connector.receive.store import Accepted, Duplicate

CONNECT_TIMEOUT_SECONDS = 5  # as db.make_engine's
Result = TypeVar("Result")


class Connections:
    """Up to `size` autocommit connections, each used by one request at a time, opened when first needed.

    Not psycopg_pool: its getconn waits (30 s by default) for a connection it cannot open, where a delivery the
    database cannot take must be answered 503 at once, as the WSGI endpoint does; and this is all that is needed.
    """

    def __init__(self, conninfo: str, size: int) -> None:
        self._conninfo = conninfo
        self._slots = asyncio.Semaphore(size)  # FIFO: requests get a connection in the order they asked
        self._idle: list[psycopg.AsyncConnection[Any]] = []

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                yield conn
            except BaseException:
                await conn.close()  # its state is unknown (a lost server, an aborted statement): never reused
                raise
            self._idle.append(conn)

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True,
                                                     connect_timeout=CONNECT_TIMEOUT_SECONDS)
        try:
            await conn.execute(store.PG_SESSION)  # these connections run PG_RECORD only
        except BaseException:
            await conn.close()
            raise
        return conn

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()


def conninfo(engine: Engine) -> str:
    """The engine's database as a libpq URI (SQLAlchemy's URL without its driver name)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class AsyncStore:
    """record(): store.record_delivery, awaited. `size`: the requests that may wait for the database at once."""

    def __init__(self, engine: Engine, executor: Executor, size: int) -> None:
        self.engine = engine
        self._executor = executor
        self._connections = Connections(conninfo(engine), size) if engine.dialect.name == "postgresql" else None

    async def record(self, event: NcEvent, body: bytes, fp: str, webhook_id: str | None,
                     requeue_thin: bool = False) -> Accepted | Duplicate:
        if self._connections is None:
            return await self._in_thread(store.record_delivery, self.engine, event, body, fp, webhook_id, requeue_thin)
        values = store.delivery_values(event, body, fp, webhook_id, requeue_thin, "webhook")
        params = store.bound_params(self.engine.dialect, values)
        try:
            async with self._connections.connection() as conn:
                cursor = await conn.execute(store.PG_RECORD, params, prepare=True)
                row = await cursor.fetchone()
        except psycopg.Error as exc:  # as store.record_delivery raises driver errors
            raise DBAPIError.instance("record_delivery", None, exc, psycopg.Error) from exc
        assert row is not None
        delivery_id, first_seen = store.settle_postgresql(self.engine, row)
        recorded = store.outcome(self.engine, values, delivery_id, first_seen)
        if recorded is None:  # a concurrent copy: rare, through SQLAlchemy in a thread
            return await self._in_thread(store.note_concurrent_copy, self.engine, values)
        return recorded

    async def _in_thread(self, call: Callable[..., Result], *args: Any) -> Result:
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(call, *args))

    async def close(self) -> None:
        if self._connections is not None:
            await self._connections.close()
