"""The sync loop: claim an NC's deliveries -> sync to Jira -> record; retries, dead letters, housekeeping.

`run_forever` runs the loop in a thread of its own, beside the heartbeat (`heartbeat.Heartbeat`), so that a stop
can be bounded: once `stop` is set the sync in flight may finish for `worker_stop_timeout` seconds; past that it
is given up, and in every case the worker's claims are released (due at once) before it returns.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from connector import metrics, throttles
from connector.identity import process_id
from connector.receive import prune
from connector.settings import Settings
from connector.sync import queue
from connector.sync.apply import Syncer
from connector.sync.errors import InstallationFault, LeaseLost, Permanent, RetryLater
from connector.sync.heartbeat import Heartbeat
from connector.sync.queue import Claim
from connector.sync.wakeup import Waiter

log = logging.getLogger(__name__)
HOUSEKEEPING_EVERY_SECONDS = 3600.0


def backoff_delay(attempt: int, base: float, cap: float, rand: random.Random | None = None) -> float:
    """Exponential backoff with equal jitter: half fixed, half random, capped."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return float(ceiling / 2 + (rand or random).uniform(0, ceiling / 2))


def supervisor_pid(supervisor: str | None) -> int | None:
    """The PID of the `serve` whose supervisor id ("host:pid:uuid") this is: the worker's parent process."""
    try:
        return int(supervisor.rsplit(":", 2)[1]) if supervisor else None
    except (IndexError, ValueError):
        return None


@dataclass
class Counts:
    synced: int = 0
    retried: int = 0
    dead: int = 0
    ignored: int = 0


class Worker:
    def __init__(self, engine: Engine, settings: Settings, syncer: Syncer, worker_id: str | None = None,
                 supervisor: str | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.syncer = syncer
        self.worker_id = worker_id or process_id()
        self.supervisor = supervisor  # the `serve` that runs this worker, for its /readyz
        self.counts = Counts()
        self.current_nc: str | None = None  # the NC being synced now (the heartbeat reports it)
        self._stopping = threading.Event()
        self._last_housekeeping = time.monotonic()

    def run_once(self) -> bool:
        """Sync at most one NC; False when there was nothing to do (or Jira, or a fault, asks us to wait)."""
        waits = throttles.throttled(self.engine, "jira", throttles.INSTALLATION)
        if any(wait > 0 for wait in waits.values()) or self._stopping.is_set():  # stopping: claim nothing new
            return False
        claim = queue.claim_next(self.engine, self.worker_id, self.settings.worker_lease)
        if claim is None:
            return False
        # A fault of the installation whose pause is over: this sync is the probe.
        probing = throttles.INSTALLATION in waits and throttles.fault(self.engine) is not None
        self.current_nc = claim.nc_id
        try:
            answered = self.process(claim)
        finally:
            self.current_nc = None
        if answered and probing and throttles.clear_fault(self.engine):
            log.warning("the installation works again: syncing resumes", extra={"worker": self.worker_id})
        return True

    def process(self, claim: Claim) -> bool:
        """Sync one claim; True when Jira (and Qualio) answered it, whatever the NC's outcome."""
        context: dict[str, Any] = {"nc_id": claim.nc_id, "delivery_ids": claim.ids, "worker": self.worker_id}
        try:
            result = self.syncer.sync(claim)
        except InstallationFault as exc:
            wait = throttles.record_fault(self.engine, str(exc), self.settings.retry_base, self.settings.retry_max)
            queue.retry_later(self.engine, claim, str(exc), wait, self.settings.max_attempts, count_attempt=False)
            metrics.SYNCS.labels("paused").inc()
            log.error("every worker pauses %.0fs: %s", wait, exc, extra=context)
            return False
        except RetryLater as exc:
            self._retry(claim, str(exc), exc.delay, exc.count_attempt, context)
        except LeaseLost as exc:  # the NC is another worker's now: its rows are not ours to touch
            metrics.SYNCS.labels("lease_lost").inc()
            log.warning("%s", exc, extra=context)
        except Permanent as exc:
            queue.bury(self.engine, claim, str(exc), exc.step)
            self.counts.dead += 1
            metrics.SYNCS.labels("dead").inc()
            log.error("dead letter: %s", exc, extra=context)
            return True
        except Exception as exc:  # a bug or an unforeseen failure: retried within the budget, never lost
            log.exception("sync failed unexpectedly", extra=context)
            self._retry(claim, f"{type(exc).__name__}: {exc}", None, True, context)
        else:
            outcome = "ignored" if result.jira_key is None and result.writes == 0 else "synced"
            if outcome == "ignored":
                self.counts.ignored += 1
            else:
                self.counts.synced += 1
            metrics.SYNCS.labels(outcome).inc()
            log.info("NC %s", outcome, extra={**context, "jira_key": result.jira_key, "issue_created": result.created,
                                              "jira_writes": result.writes, "comments_posted": result.comments})
            return True
        return False

    def _retry(self, claim: Claim, error: str, delay: float | None, count_attempt: bool,
               context: dict[str, object]) -> None:
        wait = delay if delay is not None else backoff_delay(
            claim.attempts + 1, self.settings.retry_base, self.settings.retry_max)
        dead = queue.retry_later(self.engine, claim, error, wait, self.settings.max_attempts, count_attempt,
                                 self.settings.retry_span)
        if dead:
            self.counts.dead += dead
            metrics.SYNCS.labels("dead").inc()
            log.error("%d dead letter(s) after %d attempts: %s", dead, self.settings.max_attempts, error,
                      extra=context)
        if dead < len(claim.ids):
            self.counts.retried += 1
            metrics.SYNCS.labels("retry").inc()
            log.warning("retry in %.1fs: %s", wait, error, extra=context)

    def housekeeping(self) -> None:
        """Prune expired fingerprints and old finished deliveries, at most once an hour."""
        if time.monotonic() - self._last_housekeeping < HOUSEKEEPING_EVERY_SECONDS:
            return
        self._last_housekeeping = time.monotonic()
        result = prune.prune(self.engine, self.settings.fingerprint_retention, self.settings.delivery_retention)
        log.info("housekeeping", extra={"pruned_fingerprints": result.fingerprints,
                                        "pruned_deliveries": result.deliveries})

    def run_forever(self, stop: threading.Event) -> None:
        """Sync until `stop` is set, then stop within worker_stop_timeout (see the module docstring).

        Raises RuntimeError when the loop ended without `stop` (so the process exits non-zero and its
        supervisor restarts it)."""
        self._stopping = stop
        beat = Heartbeat(self.engine, self.worker_id, self.supervisor, self.settings.worker_heartbeat,
                         lambda: self.current_nc)
        beat.beat_once()  # registered before the first claim (a supervisor finds its child's claims by it)
        beat.start()
        loop = threading.Thread(target=self._loop, args=(stop,), name="sync-loop", daemon=True)
        loop.start()
        parent = supervisor_pid(self.supervisor)
        while not stop.is_set() and loop.is_alive():
            stop.wait(1.0)
            if parent and os.getppid() != parent:  # serve was killed: do not sync on as an orphan
                log.error("the serve that ran this worker is gone: stopping", extra={"worker": self.worker_id})
                stop.set()
        loop.join(self.settings.worker_stop_timeout)
        finished = not loop.is_alive()
        self._release(in_flight=None if finished else self.current_nc)
        beat.stop()
        if finished:
            self.syncer.close()
        log.info("worker stopped", extra={"worker": self.worker_id})
        if not stop.is_set():
            raise RuntimeError("the sync loop ended unexpectedly")

    def _release(self, in_flight: str | None) -> None:
        """Give back what we still hold: nothing after a finished sync (unless a release failed earlier), the
        NC in flight when the stop timeout gave it up."""
        try:
            released = queue.release(self.engine, self.worker_id)
        except Exception:  # the database is down: the lease expires instead
            log.exception("could not release this worker's claims", extra={"worker": self.worker_id})
            return
        if in_flight is not None:
            log.warning("stop timeout: gave up the sync of %s after %.0fs; released its %d deliveries for the "
                        "next worker", in_flight, self.settings.worker_stop_timeout, released,
                        extra={"worker": self.worker_id, "nc_id": in_flight})

    def _loop(self, stop: threading.Event) -> None:
        log.info("worker started", extra={"worker": self.worker_id, "supervisor": self.supervisor})
        if self.settings.worker_lease <= self.settings.jira_timeout:
            log.warning("NC_CONNECTOR_WORKER_LEASE is not longer than NC_CONNECTOR_JIRA_TIMEOUT: a slow Jira call "
                        "can outlive the claim, and another worker then takes the NC over")
        waiter = Waiter(self.engine, stop)
        while not stop.is_set():
            try:
                busy = self.run_once()
                self.housekeeping()
            except Exception:  # the database went away, say: keep the loop alive and try again
                log.exception("worker loop error", extra={"worker": self.worker_id})
                busy = False
                stop.wait(min(5.0, self.settings.retry_base))
            if not busy and not stop.is_set():
                waiter.wait(self.settings.worker_poll_interval)
        waiter.close()
