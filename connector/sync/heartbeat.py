"""Worker heartbeats: one row per live sync worker in `workers`, beaten from a thread of its own.

A worker's row says who it is (`host:pid:uuid`, the id its claims carry in `deliveries.claimed_by`), which
`serve` runs it (`supervisor`, from SUPERVISOR_ENV), when it started, when it last beat (the database's clock,
so hosts whose clocks differ agree) and the NC it was syncing at that beat. The beat runs beside the sync loop,
so a long Jira call does not make a live worker look dead; a worker that dies stops beating. A clean stop
deletes the row; so does the supervisor of a worker that died, and rows nobody beat for PRUNE_AFTER_SECONDS
are deleted by any live worker (a SIGKILLed standalone worker).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, insert, select, update

from connector import db
from connector.models import Worker as WorkerRow

log = logging.getLogger(__name__)

SUPERVISOR_ENV = "NC_CONNECTOR_SUPERVISOR"  # set by `serve` for its worker child and its web processes
STALE_BEATS = 3  # a worker that missed this many beats in a row counts as stale (not running)
PRUNE_AFTER_SECONDS = 900.0
PRUNE_EVERY_SECONDS = 60.0


def stale_after(interval: float) -> float:
    """Seconds without a beat after which a worker beating every `interval` seconds counts as stale."""
    return STALE_BEATS * interval


@dataclass(frozen=True)
class WorkerInfo:
    """One row of `workers`, with its heartbeat age by the database's clock at the time it was read."""

    id: str
    host: str
    pid: int
    supervisor: str | None
    started_at: datetime
    beat_at: datetime
    claim: str | None
    age_seconds: float

    def is_stale(self, interval: float) -> bool:
        return self.age_seconds > stale_after(interval)


def beat(engine: Engine, worker_id: str, supervisor: str | None, claim: str | None) -> None:
    """Record a beat of this process's worker (and the NC being synced); the first beat, or one after a
    prune, inserts the row.

    A new row of a supervisor replaces the rows of that supervisor's earlier workers: it runs one at a
    time, so those are dead (and their claims were released when it saw them die)."""
    with engine.begin() as conn:
        now = db.now(conn)
        updated = conn.execute(update(WorkerRow).where(WorkerRow.id == worker_id)
                               .values(beat_at=now, claim=claim)).rowcount
        if updated:
            return
        if supervisor:
            conn.execute(delete(WorkerRow).where(WorkerRow.supervisor == supervisor, WorkerRow.id != worker_id))
        conn.execute(insert(WorkerRow).values(id=worker_id, host=socket.gethostname(), pid=os.getpid(),
                                              supervisor=supervisor, started_at=now, beat_at=now, claim=claim))


def remove(engine: Engine, worker_ids: list[str] | str) -> int:
    """Delete the rows of workers that stopped (or died); returns how many."""
    ids = [worker_ids] if isinstance(worker_ids, str) else worker_ids
    with engine.begin() as conn:
        return conn.execute(delete(WorkerRow).where(WorkerRow.id.in_(ids))).rowcount


def prune(engine: Engine, older_than: float = PRUNE_AFTER_SECONDS) -> int:
    """Delete the rows of workers that have not beaten for `older_than` seconds; returns how many."""
    with engine.begin() as conn:
        cutoff = db.now(conn) - timedelta(seconds=older_than)
        return conn.execute(delete(WorkerRow).where(WorkerRow.beat_at < cutoff)).rowcount


def list_workers(engine: Engine) -> list[WorkerInfo]:
    """Every worker row, oldest first, each with its heartbeat age."""
    with db.reader(engine).connect() as conn:
        now = db.now(conn)
        rows = conn.execute(select(WorkerRow).order_by(WorkerRow.started_at, WorkerRow.id)).all()
    return [WorkerInfo(r.id, r.host, r.pid, r.supervisor, r.started_at, r.beat_at, r.claim,
                       max(0.0, (now - r.beat_at).total_seconds())) for r in rows]


def supervised(engine: Engine, supervisor: str) -> WorkerInfo | None:
    """The worker that the `serve` with this supervisor id runs (its newest row), if it has beaten yet."""
    rows = [w for w in list_workers(engine) if w.supervisor == supervisor]
    return max(rows, key=lambda w: w.beat_at) if rows else None


def of_process(engine: Engine, supervisor: str, pid: int) -> list[str]:
    """The ids of the rows a supervisor's child process `pid` wrote (one, unless it never beat: none)."""
    with db.reader(engine).connect() as conn:
        return list(conn.execute(select(WorkerRow.id).where(WorkerRow.supervisor == supervisor,
                                                            WorkerRow.pid == pid)).scalars())


class Heartbeat:
    """Beats every `interval` seconds from a daemon thread until stop(); `claim()` names the NC in flight."""

    def __init__(self, engine: Engine, worker_id: str, supervisor: str | None, interval: float,
                 claim: Callable[[], str | None]) -> None:
        self.engine = engine
        self.worker_id = worker_id
        self.supervisor = supervisor
        self.interval = interval
        self._claim = claim
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._last_prune = float("-inf")
        self._failing = False

    def start(self) -> None:
        self._thread.start()

    def stop(self, remove_row: bool = True) -> None:
        """Stop beating; delete our row (a clean stop: the worker is gone, not stale)."""
        self._stop.set()
        self._thread.join(timeout=self.interval + 10)
        if remove_row:
            try:
                remove(self.engine, self.worker_id)
            except Exception:  # the database is down: the row goes stale, and is pruned later
                log.warning("could not delete this worker's heartbeat row", extra={"worker": self.worker_id})

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat_once()

    def beat_once(self) -> None:
        try:
            beat(self.engine, self.worker_id, self.supervisor, self._claim())
            if time.monotonic() - self._last_prune >= PRUNE_EVERY_SECONDS:
                self._last_prune = time.monotonic()
                prune(self.engine)
        except Exception as exc:  # the database went away: keep beating, say so once per outage
            if not self._failing:
                log.warning("heartbeat failed: %s", type(exc).__name__, extra={"worker": self.worker_id})
            self._failing = True
            return
        if self._failing:
            log.info("heartbeat recorded again", extra={"worker": self.worker_id})
        self._failing = False
