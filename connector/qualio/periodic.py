"""Periodic reconcile in the worker: every ``interval`` across the installation, one run at a time.

Each worker process runs a ``PeriodicReconcile`` thread. A run is due when the latest run of the whole
installation (``reconcile_runs``, any trigger, not a dry run) started ``interval`` ago or more, so N workers
still reconcile once an interval, not N times; the lease (``reconcile_state``) makes two workers that find
it due at the same moment run one reconcile: the other's ``LeaseLost`` is skipped quietly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine

from connector import db
from connector.qualio import reconcile_store as store
from connector.qualio.reconcile import ReconcileFailed, Reconciler
from connector.qualio.reconcile_store import LeaseLost

__all__ = ["PeriodicReconcile"]

log = logging.getLogger(__name__)

MAX_NAP = 60.0  # look again at least this often: another process may have run it meanwhile


class PeriodicReconcile:
    def __init__(self, engine: Engine, make_reconciler: Callable[[], Reconciler], interval: float) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive (0 turns periodic reconcile off: do not start it)")
        self.engine = engine
        self.make_reconciler = make_reconciler
        self.interval = interval
        self.runs = 0  # runs this process made

    def due_in(self) -> float:
        """Seconds until the next run is due (0: now)."""
        last = store.last_run(self.engine)
        if last is None:
            return 0.0
        started: datetime = last["started_at"]
        elapsed = (db.now(self.engine) - started).total_seconds()
        return max(0.0, self.interval - elapsed)

    def run_once(self) -> bool:
        """Run a reconcile if one is due and no other process runs it; True if this process ran it."""
        if self.due_in() > 0:
            return False
        reconciler = self.make_reconciler()
        try:
            report = reconciler.run(trigger="periodic")
        except LeaseLost:
            return False
        except ReconcileFailed as exc:
            log.error("periodic reconcile failed: %s", exc)
            return True
        finally:
            reconciler.client.close()  # a client (and its HTTP session) per run: close it, or one leaks per interval
        self.runs += 1
        log.info("periodic reconcile", extra={"run_id": report.run_id, "changed": report.figures.changed,
                                              "new": report.figures.new})
        return True

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.run_once()
                wait = self.due_in()
            except Exception:  # the worker's syncing must not die with its reconcile thread
                log.exception("periodic reconcile crashed; trying again later")
                wait = MAX_NAP
            stop.wait(min(max(wait, 1.0), MAX_NAP))

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, args=(stop,), name="periodic-reconcile", daemon=True)
        thread.start()
        return thread
