"""Jira's rate limits, honoured by every worker at once through two rows of the `throttles` table.

- ``jira``: no Jira call before this time (Jira's Retry-After, from a 429 or a 503).
- ``jira-careful``: careful mode, on until this time. A worker that meets rate-limit pressure
  (``X-RateLimit-NearLimit: true``, i.e. under 20% of a budget left; a 429; a 503 with Retry-After)
  turns it on for CALM_SECONDS, or three times the Retry-After if that is longer.

Outside careful mode Jira calls run concurrently; each first reads both rows (one query). In
careful mode every call is single-flight: made under a cross-process lock held for that one call,
inside which the worker reads the pause again before sending and, if it is answered with a
Retry-After, records the pause before letting go. So no call can reach Jira inside a Retry-After
given to a call made in careful mode. Not covered: a Retry-After given to a call made before careful
mode was on (already on the wire, or started by a worker that had seen no warning yet), in the few
milliseconds before it is recorded.

The lock: on PostgreSQL a session-level advisory lock on a connection of its own (instances on
several hosts share the database); on SQLite (one host) ``flock`` on ``<database file>.jira-lock``.
Waiting for it is bounded (LockBusy), and a holder that dies releases it: its session or its file
descriptor closes with it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from connector import throttles
from connector.jira.gateway import JiraError, JiraGateway, Pressure

log = logging.getLogger(__name__)

PAUSE = "jira"
CAREFUL = "jira-careful"
CALM_SECONDS = 30.0  # careful mode lasts this long after the last sign of pressure (at least)
LOCK_WAIT_SECONDS = 30.0  # the lock is held for one call; a longer wait means something hangs


class Paused(Exception):
    """Jira asked every client to wait (Retry-After): `wait` seconds are left."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"Jira asked every client to wait {wait:.1f}s (Retry-After)")
        self.wait = wait


class LockBusy(Exception):
    """The careful-mode lock did not come free in time (another worker's call is taking long)."""


class CallLock(Protocol):
    """A lock shared by every worker on the database, held for the duration of one Jira call.

    `hold()` gives the database connection it holds the lock on, if any (good for reads meanwhile).
    """

    def hold(self) -> AbstractContextManager[Connection | None]: ...

    def close(self) -> None: ...


class JiraThrottle:
    """Wraps each Jira call: honours the shared Retry-After, records Jira's signals, single-flight when careful."""

    def __init__(self, engine: Engine, lock: CallLock | None = None, *, calm: float = CALM_SECONDS,
                 lock_wait: float = LOCK_WAIT_SECONDS) -> None:
        self.engine = engine
        self.lock = lock or call_lock(engine, lock_wait)
        self.calm = calm

    def close(self) -> None:
        self.lock.close()

    @contextmanager
    def call(self, gateway: JiraGateway) -> Iterator[JiraGateway]:
        """Around ONE Jira call. Raises Paused during a Retry-After and LockBusy if the lock stays taken."""
        waits = throttles.throttled(self.engine, PAUSE, CAREFUL)
        if waits[PAUSE] > 0:
            raise Paused(waits[PAUSE])
        careful_left = waits[CAREFUL]
        with self.lock.hold() if careful_left > 0 else nullcontext() as held:
            if careful_left > 0:
                wait = throttles.paused_for(held or self.engine, PAUSE)  # a Retry-After the last holder got
                if wait > 0:
                    raise Paused(wait)
            try:
                yield gateway
            except JiraError as exc:
                self._record(gateway.take_pressure(), exc, careful_left)  # before the lock is let go
                raise
            self._record(gateway.take_pressure(), None, careful_left)

    def _record(self, pressure: Pressure | None, error: JiraError | None, careful_left: float) -> None:
        """Share a Retry-After at once; turn careful mode on (or keep it on) when Jira signalled pressure."""
        waits = [p.retry_after for p in (pressure, error) if p is not None and p.retry_after is not None]
        retry_after = max(waits) if waits else None
        status = pressure.status if pressure is not None else error.status if error is not None else None
        if pressure is None and retry_after is None and status != 429:
            return
        calm = max(self.calm, 3 * (retry_after or 0.0))
        pauses = {PAUSE: retry_after} if retry_after is not None else {}
        if retry_after is not None or careful_left < calm / 2:  # not a write per call while it lasts
            pauses[CAREFUL] = calm
        if pauses:
            throttles.pause_all(self.engine, pauses)
        if careful_left <= 0:
            log.warning("Jira signals rate-limit pressure: every worker makes its Jira calls one at a time "
                        "for the next %.0f s", calm,
                        extra={"jira_status": status, "retry_after": retry_after,
                               "rate_limit_reason": pressure.reason if pressure else None,
                               "rate_limit_remaining": pressure.remaining if pressure else None})


def call_lock(engine: Engine, wait: float = LOCK_WAIT_SECONDS) -> CallLock:
    """The lock for this database: advisory (PostgreSQL), a lock file (SQLite file), in-process (SQLite memory)."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(engine, wait)
    database = engine.url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        return FileLock(Path(f"{database}.jira-lock"), wait)
    return LocalLock(wait)


class LocalLock:
    """One process only (an in-memory SQLite database cannot be shared by two)."""

    def __init__(self, wait: float) -> None:
        self.wait = wait
        self._lock = threading.Lock()

    @contextmanager
    def hold(self) -> Iterator[None]:
        if not self._lock.acquire(timeout=self.wait):
            raise LockBusy(f"the Jira call lock was not free within {self.wait:.0f}s")
        try:
            yield
        finally:
            self._lock.release()

    def close(self) -> None:
        return None


class FileLock:
    """SQLite: ``flock`` on a file beside the database (every worker runs on that host)."""

    POLL_SECONDS = 0.002

    def __init__(self, path: Path, wait: float) -> None:
        self.path = path
        self.wait = wait
        self._fd: int | None = None
        self._threads = LocalLock(wait)  # flock is per open file: this process's threads share one

    @contextmanager
    def hold(self) -> Iterator[None]:
        deadline = time.monotonic() + self.wait
        with self._threads.hold():
            fd = self._file()
            while not _try_flock(fd):
                if time.monotonic() >= deadline:
                    raise LockBusy(f"{self.path} stayed locked for {self.wait:.0f}s")
                time.sleep(self.POLL_SECONDS)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _file(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class AdvisoryLock:
    """PostgreSQL: a session-level advisory lock, taken on a connection kept for it alone.

    The connection is taken from the pool once and never given back (it carries a lock_timeout): on
    any failure, and on close, it is closed, which also ends the session and so releases the lock.
    """

    KEYS = {"space": 0x6E63, "key": 0x6A697261}  # two int4 keys: apart from the claims' one-bigint locks

    def __init__(self, engine: Engine, wait: float) -> None:
        self.engine = engine
        self.wait = wait
        self._conn: Connection | None = None
        self._threads = LocalLock(wait)  # session locks are re-entrant: one holder per process at a time

    @contextmanager
    def hold(self) -> Iterator[Connection]:
        with self._threads.hold():
            conn = self._lock()
            try:
                yield conn
            finally:
                self._unlock(conn)

    def _lock(self) -> Connection:
        kept = self._conn is not None
        try:
            return self._take(self._connection())
        except DBAPIError:
            if not kept:
                raise
        # The connection kept since the last careful spell had died (a restart, an idle timeout): once more.
        return self._take(self._connection())

    def _take(self, conn: Connection) -> Connection:
        try:
            conn.execute(text("SELECT pg_advisory_lock(:space, :key)"), self.KEYS)
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_not_available: lock_timeout passed
                raise LockBusy(f"the Jira call lock was not free within {self.wait:.0f}s") from None
            self.close()
            raise
        return conn

    def _unlock(self, conn: Connection) -> None:
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:space, :key)"), self.KEYS)
        except DBAPIError:
            self.close()  # the session ends, and the lock with it
            raise

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                conn.execute(text("SELECT set_config('lock_timeout', :wait, false)"),
                             {"wait": f"{max(1, round(self.wait * 1000))}ms"})
            except DBAPIError:
                conn.invalidate()
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.invalidate()  # never back to the pool: close the session (and any lock it holds)
            conn.close()
