"""Sightings of recent duplicates, counted in memory and written once a second per process.

A sighting moves a fingerprint row's `last_seen_at` (prune's key) and `times_seen` (a statistic). Writing
each at once made a duplicate cost a write, a WAL record and a commit, where the delivery it repeats is
already stored: in a retry storm, duplicates are most of the traffic. So store.py writes a sighting at once
only when the row's stored `last_seen_at` is older than COALESCE_SECONDS; a sighting of a row seen more
recently is noted here and written with the others of this process by one statement every FLUSH_SECONDS
(and when the process exits normally).

What that costs, and why prune's guarantee holds anyway: a process that dies (SIGKILL, power loss) loses the
sightings it had not written, i.e. under FLUSH_SECONDS of `times_seen` increments. Whatever is lost, a
row's stored `last_seen_at` is never more than COALESCE_SECONDS behind its true last sighting (an older one
is written at once), and prune keeps a row for its retention plus COALESCE_SECONDS after the stored time
(store.prune), so a fingerprint is never removed within its retention of its last sighting.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.pool import Pool

from connector.db import begin_immediate

COALESCE_SECONDS = 60.0  # a sighting of a row whose stored last_seen_at is younger than this waits here
FLUSH_SECONDS = 1.0  # how often a process writes the sightings it holds
GIVE_UP_AFTER = 60  # failed flushes in a row (the database away a minute): the sightings held are dropped

log = logging.getLogger(__name__)
Pending = dict[int, tuple[Any, int]]  # fingerprint row id -> (latest sighting as the driver binds it, count)
Write = Callable[[Sequence[tuple[int, Any, int]]], None]

# One statement for all of a flush's rows, locked in id order: two processes flushing overlapping rows
# then wait for each other instead of deadlocking. Only sightings: the commit need not wait for its WAL
# flush (as for a duplicate's sighting in store.py).
_PG_FLUSH = """
WITH v AS (SELECT * FROM unnest(%s::bigint[], %s::timestamp[], %s::int[]) AS v(id, seen, n)),
locked AS (SELECT f.id FROM fingerprints f JOIN v ON f.id = v.id ORDER BY f.id FOR UPDATE OF f)
UPDATE fingerprints f SET last_seen_at = GREATEST(f.last_seen_at, v.seen), times_seen = f.times_seen + v.n
FROM v WHERE f.id = v.id AND f.id IN (SELECT id FROM locked)
"""
_SQLITE_FLUSH = "UPDATE fingerprints SET last_seen_at = max(last_seen_at, ?), times_seen = times_seen + ? WHERE id = ?"


class SightingLog:
    """note(row ids, time): counted now, written by this object's thread within about `interval`."""

    def __init__(self, write: Write, interval: float = FLUSH_SECONDS) -> None:
        self._write = write
        self._interval = interval
        self._lock = threading.Lock()
        self._pending: Pending = {}
        self._thread: threading.Thread | None = None  # runs while sightings are pending
        self._failures = 0

    def note(self, row_ids: Iterable[int], seen: Any) -> None:
        with self._lock:
            for row_id in row_ids:
                latest, count = self._pending.get(row_id, (seen, 0))
                self._pending[row_id] = (max(latest, seen), count + 1)
            if self._thread is None:  # started lazily: in a web process, after the server's fork
                self._thread = threading.Thread(target=self._run, name="nc-sightings", daemon=True)
                self._thread.start()

    def pending(self) -> int:
        """Sightings counted and not yet written."""
        with self._lock:
            return sum(count for _, count in self._pending.values())

    def flush(self) -> None:
        """Write what is pending now; on failure it stays pending (merged with what came meanwhile), and
        after GIVE_UP_AFTER failures in a row it is dropped: statistics only, prune's margin covers it."""
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return
        try:
            self._write(sorted((row_id, seen, count) for row_id, (seen, count) in batch.items()))
            self._failures = 0
        except Exception as exc:  # the database is away: try again at the next interval
            self._failures += 1
            dropped = self._failures >= GIVE_UP_AFTER
            log.warning("sightings dropped" if dropped else "sightings not written yet",
                        extra={"rows": len(batch), "error": type(exc).__name__})
            if dropped:
                self._failures = 0
                return
            with self._lock:
                for row_id, (seen, count) in batch.items():
                    latest, later = self._pending.get(row_id, (seen, 0))
                    self._pending[row_id] = (max(latest, seen), count + later)

    def _run(self) -> None:
        while True:
            time.sleep(self._interval)
            self.flush()
            with self._lock:  # the same lock as note(): a sighting noted now finds no thread and starts one
                if not self._pending:
                    self._thread = None
                    return


_LOGS: weakref.WeakKeyDictionary[Engine, SightingLog] = weakref.WeakKeyDictionary()
_LOGS_LOCK = threading.Lock()


def sighting_log(engine: Engine) -> SightingLog:
    """This process's sighting log for the engine's database (it holds the pool, not the engine)."""
    with _LOGS_LOCK:
        found = _LOGS.get(engine)
        if found is None:
            write = _pg_writer(engine.pool) if engine.dialect.name == "postgresql" else _sqlite_writer(engine.pool)
            found = _LOGS[engine] = SightingLog(write)
            # A normal exit writes what it holds. atexit does not run in a multiprocessing child (granian's
            # workers are ones), and a child forgets the parent's multiprocessing finalizers: so one here,
            # in the process that uses the log.
            multiprocessing.util.Finalize(found, found.flush, exitpriority=10)
        return found


def flush_all() -> None:
    """Write every pending sighting of this process now (at exit; tests, before they read or empty tables).
    A log whose engine is gone writes what it holds by its own thread, within FLUSH_SECONDS."""
    with _LOGS_LOCK:
        logs = list(_LOGS.values())
    for found in logs:
        found.flush()


atexit.register(flush_all)  # a plain process's normal exit (gunicorn's workers, the CLI); a second flush is a no-op


def _pg_writer(pool: Pool) -> Write:
    def write(rows: Sequence[tuple[int, Any, int]]) -> None:
        raw = pool.connect()
        try:
            conn: Any = raw.driver_connection
            conn.execute("SET LOCAL synchronous_commit = off")  # only sightings: no wait for the WAL flush
            conn.execute(_PG_FLUSH, [[r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]])
            conn.commit()
        except BaseException:
            raw.invalidate()
            raise
        finally:
            raw.close()
    return write


def _sqlite_writer(pool: Pool) -> Write:
    def write(rows: Sequence[tuple[int, Any, int]]) -> None:
        raw = pool.connect()
        try:
            conn: Any = raw.driver_connection
            (level,) = conn.execute("PRAGMA synchronous").fetchone()
            conn.execute("PRAGMA synchronous=NORMAL")  # only sightings: no fsync (see store._record_sqlite_batch)
            try:
                begin_immediate(conn)
                try:
                    conn.executemany(_SQLITE_FLUSH, [(seen, count, row_id) for row_id, seen, count in rows])
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            finally:
                conn.execute(f"PRAGMA synchronous={int(level)}")
        except BaseException:
            raw.invalidate()
            raise
        finally:
            raw.close()
    return write
