"""SQLite write-lock acquisition (db.begin_immediate) on a real database file."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from connector.db import SQLITE_BUSY_TIMEOUT_MS, begin_immediate


def connect(path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


@pytest.fixture
def two_connections(tmp_path):
    path = tmp_path / "lock.db"
    holder, waiter = connect(path), connect(path)
    holder.execute("CREATE TABLE t (x INTEGER)")
    yield holder, waiter
    holder.close()
    waiter.close()


def test_waits_for_the_other_writer_then_takes_the_lock(two_connections):
    holder, waiter = two_connections
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    releaser = threading.Timer(0.2, lambda: holder.execute("COMMIT"))
    releaser.start()
    begin_immediate(waiter)  # would raise "database is locked" at once without waiting
    assert waiter.in_transaction
    assert waiter.execute("SELECT count(*) FROM t").fetchone() == (1,)  # the holder's commit is visible
    waiter.execute("COMMIT")
    releaser.join()
    # SQLite's own busy timeout is back for every other statement on this connection
    assert waiter.execute("PRAGMA busy_timeout").fetchone() == (SQLITE_BUSY_TIMEOUT_MS,)


def test_gives_up_with_database_is_locked_after_its_timeout(two_connections):
    holder, waiter = two_connections
    holder.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        begin_immediate(waiter, timeout=0.1)
    assert time.monotonic() - started >= 0.1
    assert not waiter.in_transaction
    assert waiter.execute("PRAGMA busy_timeout").fetchone() == (SQLITE_BUSY_TIMEOUT_MS,)
    holder.execute("ROLLBACK")
