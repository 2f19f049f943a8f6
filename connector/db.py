"""Engines and schema migrations for SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import Pool

MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000


def is_sqlite(engine_or_url: Engine | str) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the settings this service relies on (WAL and BEGIN IMMEDIATE on SQLite)."""
    kwargs.setdefault("pool_size", 5)
    if is_sqlite(url):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        # Take the write lock up front: a deferred transaction that later writes can fail
        # with "database is locked" without waiting; an immediate one waits for the lock.
        event.listen(engine, "begin", _begin_sqlite)
        return engine
    # No ping before each checkout: it is a round trip per request. A connection that died with the
    # server fails once (a 503 that the sender retries) and SQLAlchemy then renews the whole pool.
    kwargs.setdefault("pool_pre_ping", False)
    connect_args = {"connect_timeout": 5, **kwargs.pop("connect_args", {})}
    return create_engine(url, connect_args=connect_args, **kwargs)


def begin_immediate(dbapi_connection: sqlite3.Connection, timeout: float = SQLITE_BUSY_TIMEOUT_MS / 1000) -> None:
    """BEGIN IMMEDIATE on SQLite, trying again every millisecond or so while another writer holds the lock.

    SQLite's own busy handler sleeps 1, 2, 5, 10 ... then 100 ms between tries, so a writer that
    found the lock taken a few times waits far longer than the lock stays taken (a delivery's
    transaction takes about a millisecond); ingest p99 under a second writer (prune, the worker)
    was several times its median. Raises "database is locked" after `timeout` seconds, as before.
    """
    deadline = time.monotonic() + timeout
    pause = 0.0005
    dbapi_connection.execute("PRAGMA busy_timeout=0")
    try:
        while True:
            try:
                dbapi_connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                    raise
            time.sleep(pause * (0.5 + random.random()))  # jitter: waiters do not wake in lockstep
            pause = min(pause * 1.5, 0.005)
    finally:
        dbapi_connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


def reader(engine: Engine) -> Engine:
    """The engine for transactions that only read. On SQLite they begin deferred: in WAL mode a reader never
    waits for a writer, where BEGIN IMMEDIATE would wait for the write lock (up to SQLITE_BUSY_TIMEOUT_MS:
    a /readyz behind a stopped worker's transaction timed out). A write in one may fail with "database is
    locked" at once, so nothing that writes uses it. On PostgreSQL it is the engine as it is."""
    return engine.execution_options(**{_READ_ONLY: True}) if is_sqlite(engine) else engine


_READ_ONLY = "nc_read_only"  # the execution option reader() sets


def _begin_sqlite(conn: Connection) -> None:
    driver = conn.connection.driver_connection
    try:
        if conn.get_execution_options().get(_READ_ONLY):
            driver.execute("BEGIN")  # type: ignore[union-attr]
        else:
            begin_immediate(driver)  # type: ignore[arg-type]
    except sqlite3.Error as exc:  # as SQLAlchemy raises driver errors everywhere else
        raise DBAPIError.instance("BEGIN IMMEDIATE", None, exc, sqlite3.Error) from exc


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # let the "begin" listener issue BEGIN itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=FULL")  # an acknowledged delivery survives power loss
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or migrate the schema."""
    command.upgrade(alembic_config(engine), revision)


def head_revision() -> str | None:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with reader(engine).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def now(bind: Engine | Connection) -> datetime:
    """The database's clock (aware UTC): leases, pauses and search-lag deadlines are read and set against
    it, so hosts whose clocks differ still agree. SQLite is on one host: its clock is this one."""
    if bind.dialect.name != "postgresql":
        return datetime.now(UTC)
    if isinstance(bind, Connection):
        value = bind.execute(text("SELECT now()")).scalar_one()
    else:
        with reader(bind).connect() as conn:
            value = conn.execute(text("SELECT now()")).scalar_one()
    return value.astimezone(UTC)  # type: ignore[no-any-return]


def dialect_insert(conn: Connection) -> Any:
    """The dialect's own `insert` (it has `on_conflict_do_nothing` / `_do_update`, which Core's has not)."""
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert


def insert_ignore(conn: Connection, model: type, **values: Any) -> None:
    """INSERT the row unless its key is taken (ON CONFLICT DO NOTHING on both databases)."""
    conn.execute(dialect_insert(conn)(model).values(**values).on_conflict_do_nothing())


@contextmanager
def driver_connection(pool: Pool) -> Iterator[Any]:
    """A pooled connection's driver connection (psycopg's or sqlite3's), for the hot paths that skip
    SQLAlchemy's statement machinery; a connection that anything failed on is discarded, never reused."""
    raw = pool.connect()
    try:
        yield raw.driver_connection
    except BaseException:
        raw.invalidate()
        raise
    finally:
        raw.close()
