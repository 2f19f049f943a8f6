"""Sightings of recent duplicates: counted in memory, their `times_seen` written once a second per process.

A sighting moves a fingerprint row's `last_seen_at` (prune's key) and `times_seen` (a statistic). Writing
each at once made a duplicate cost a write, a WAL record and a commit, where the delivery it repeats is
already stored: in a retry storm, duplicates are most of the traffic. So store.py writes a sighting at once
(both columns) only when the row's stored `last_seen_at` is older than COALESCE_SECONDS. A sighting of a
row whose stored `last_seen_at` is more recent only counts: this process adds it to the row's `times_seen`
with the others it holds, one statement every FLUSH_SECONDS and when it exits normally. The flush leaves
`last_seen_at` alone: that column is indexed, so updating it made each flushed row cost an index entry per
index (no HOT update), and those flushes were the duplicates' p99; a `times_seen`-only update is HOT.

What that means: `last_seen_at` is the last sighting to within COALESCE_SECONDS, by the rule above alone, and
prune keeps a row for its retention plus COALESCE_SECONDS after it (receive/prune.py), so a fingerprint is
never removed within its retention of its real last sighting. A process that dies outright (SIGKILL, power
loss) loses the counts it had not written: under FLUSH_SECONDS of `times_seen`.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence

from sqlalchemy import Engine
from sqlalchemy.pool import Pool

from connector.db import begin_immediate, driver_connection

COALESCE_SECONDS = 60.0  # a sighting of a row whose stored last_seen_at is younger than this waits here
FLUSH_SECONDS = 1.0  # how often a process writes the sightings it holds
GIVE_UP_AFTER = 60  # failed flushes in a row (the database away a minute): the sightings held are dropped

log = logging.getLogger(__name__)
Write = Callable[[Sequence[tuple[int, int]]], None]  # [(fingerprint row id, sightings to add)], in id order

# One statement for all of a flush's rows, locked in id order: two processes flushing overlapping rows
# then wait for each other instead of deadlocking. Only counts: the commit need not wait for its WAL
# flush (as for a duplicate's sighting in store.py).
_PG_FLUSH = """
WITH v AS (SELECT * FROM unnest(%s::bigint[], %s::int[]) AS v(id, n)),
locked AS (SELECT f.id FROM fingerprints f JOIN v ON f.id = v.id ORDER BY f.id FOR UPDATE OF f)
UPDATE fingerprints f SET times_seen = f.times_seen + v.n
FROM v WHERE f.id = v.id AND f.id IN (SELECT id FROM locked)
"""
_SQLITE_FLUSH = "UPDATE fingerprints SET times_seen = times_seen + ? WHERE id = ?"


class SightingLog:
    """note(row ids): counted now, written by this object's thread within about `interval`."""

    def __init__(self, write: Write, interval: float = FLUSH_SECONDS) -> None:
        self._write = write
        self._interval = interval
        self._lock = threading.Lock()  # guards _pending and _thread
        self._flushing = threading.Lock()  # held from taking a batch to its write or its return to _pending
        self._pending: dict[int, int] = {}  # row id -> sightings not written yet
        self._thread: threading.Thread | None = None  # runs while sightings are pending
        self._failures = 0

    def note(self, row_ids: Iterable[int]) -> None:
        with self._lock:
            for row_id in row_ids:
                self._pending[row_id] = self._pending.get(row_id, 0) + 1
            if self._thread is None:  # started lazily: in a web process, after the server's fork
                thread = threading.Thread(target=self._run, name="nc-sightings", daemon=True)
                thread.start()  # if this raises, the next sighting tries again
                self._thread = thread

    def pending(self) -> int:
        """Sightings counted and not yet written."""
        with self._lock:
            return sum(self._pending.values())

    def flush(self) -> None:
        """Write what is pending now, after any flush under way (so a flush at exit or in a test has
        everything noted before it written). On failure it stays pending (merged with what came meanwhile);
        after GIVE_UP_AFTER failures in a row it is dropped: only times_seen counts, never last_seen_at."""
        with self._flushing:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return
        try:
            self._write(sorted(batch.items()))
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
                for row_id, count in batch.items():
                    self._pending[row_id] = self._pending.get(row_id, 0) + count

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
            _flush_at_exit()
        return found


def flush_all() -> None:
    """Write every pending sighting of this process now (at exit; tests, before they read or empty tables).
    A log whose engine is gone writes what it holds by its own thread, within FLUSH_SECONDS."""
    with _LOGS_LOCK:
        logs = list(_LOGS.values())
    for found in logs:
        found.flush()


_finalized_pid: int | None = None  # the process whose multiprocessing exit hooks flush (a child has its own)


def _flush_at_exit() -> None:
    """A normal exit writes what is held. atexit does not run in a multiprocessing child (granian's workers
    are ones), and a child forgets its parent's multiprocessing finalizers: so one per process that logs."""
    global _finalized_pid
    if _finalized_pid != os.getpid():
        _finalized_pid = os.getpid()
        multiprocessing.util.Finalize(None, flush_all, exitpriority=10)


def _forget_after_fork() -> None:
    """A forked child starts with no logs: the parent's pending counts are the parent's to write, and its
    flush thread does not exist in the child."""
    global _LOGS_LOCK
    _LOGS_LOCK = threading.Lock()
    _LOGS.clear()


atexit.register(flush_all)  # a plain process's normal exit (gunicorn's workers, the CLI); a second flush is a no-op
os.register_at_fork(after_in_child=_forget_after_fork)


def _pg_writer(pool: Pool) -> Write:
    def write(rows: Sequence[tuple[int, int]]) -> None:
        with driver_connection(pool) as conn:
            conn.execute("SET LOCAL synchronous_commit = off")  # only counts: no wait for the WAL flush
            conn.execute(_PG_FLUSH, [[row_id for row_id, _ in rows], [count for _, count in rows]])
            conn.commit()
    return write


def _sqlite_writer(pool: Pool) -> Write:
    def write(rows: Sequence[tuple[int, int]]) -> None:
        with driver_connection(pool) as conn:
            (level,) = conn.execute("PRAGMA synchronous").fetchone()
            conn.execute("PRAGMA synchronous=NORMAL")  # only counts: no fsync (see store._record_sqlite_batch)
            try:
                begin_immediate(conn)
                try:
                    conn.executemany(_SQLITE_FLUSH, [(count, row_id) for row_id, count in rows])
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            finally:
                conn.execute(f"PRAGMA synchronous={int(level)}")
    return write
