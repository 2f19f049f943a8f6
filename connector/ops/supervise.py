"""`serve`'s supervision of its sync worker: a child process (`python -m connector worker`, so `ps` shows it) that is
restarted whenever it exits or dies, with backoff, until it has exited `worker_restart_limit` times within
`worker_restart_window`; then serve gives up and exits non-zero (EXIT_GAVE_UP), for systemd to restart the unit.

It is a thread of the serve process, beside whatever `serving.serve` runs (gunicorn today): to give up it
sends SIGTERM to its own process, as systemd would, and the server shuts down its way. Nothing here depends on
the server's internals, with one exception it has to live with: gunicorn's arbiter reaps *every* child
(`waitpid(-1)`), so the worker's exit status is sometimes lost to it (logged as unknown); its exit never is.

When the worker dies, the supervisor releases what it held at once (an attempt counted, after the retry
backoff), so the next worker need not wait out the lease (NC_CONNECTOR_WORKER_LEASE, 120 s by default); this is
what an expired lease would allow too, and the sync steps already cope with a write whose answer was lost.
The worker and the web processes learn the supervisor's id from SUPERVISOR_ENV: the worker writes it into its
heartbeat row, and /readyz finds "the worker that this serve runs" by it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from sqlalchemy import Engine

from connector import db
from connector.identity import process_id
from connector.settings import Settings
from connector.sync import heartbeat, queue
from connector.sync.heartbeat import SUPERVISOR_ENV
from connector.sync.worker import backoff_delay

log = logging.getLogger(__name__)

EXIT_GAVE_UP = 3  # serve's exit code when its worker kept dying
BACKOFF_BASE = 0.5  # seconds before the second restart in the window (the first is at once); doubles after
BACKOFF_MAX = 30.0
FORCED_EXIT_AFTER = 60.0  # the server did not stop on our SIGTERM: leave anyway


def worker_command() -> list[str]:
    return [sys.executable, "-m", "connector", "worker"]


def restart_delay(recent_exits: int) -> float:
    """Seconds before restarting a worker that exited `recent_exits` times within the window (>= 1): at once
    after a first exit (every second counts while nothing syncs), then 0.5 s, 1 s, 2 s ... up to BACKOFF_MAX."""
    if recent_exits <= 1:
        return 0.0
    return float(min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (recent_exits - 2)))


def describe(status: int | None) -> str:
    """A wait status in words; None: it was reaped by someone else (the server)."""
    if status is None:
        return "exited (status unknown: reaped by the server)"
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:  # a signal Python has no name for (SIGRTMIN+1 is 35)
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def wait_for(child: subprocess.Popen[bytes]) -> int | None:
    """Block until the child has exited; its wait status, or None when another waiter reaped it first."""
    try:
        _, status = os.waitpid(child.pid, 0)
    except ChildProcessError:  # gunicorn's arbiter waited for it (waitpid(-1)): it is gone all the same
        child.returncode = 0  # known to be over; keeps Popen from warning that it still runs
        return None
    child.returncode = os.waitstatus_to_exitcode(status)
    return status


class Supervisor:
    """Runs the worker child from a daemon thread: start(), then stop() when serve ends."""

    def __init__(self, settings: Settings, command: Sequence[str] | None = None,
                 on_give_up: Callable[[], None] | None = None) -> None:
        self.id = process_id()
        self.settings = settings
        self.command = list(command or worker_command())
        self.on_give_up = on_give_up or give_up_serving
        self.gave_up = False
        self.spawned = 0
        self.exits: deque[float] = deque()  # monotonic times of the exits within the window
        self._child: subprocess.Popen[bytes] | None = None
        self._running = False  # the current child has not been waited for yet (safe to signal its pid)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-supervisor", daemon=True)
        self._engine: Engine | None = None
        # A web process forked while we hold a connection must never close it (it is ours, not theirs).
        os.register_at_fork(after_in_child=self._forget_engine)

    @property
    def child_pid(self) -> int | None:
        with self._lock:
            return self._child.pid if self._child is not None and self._running else None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """SIGTERM the worker and wait for its bounded stop (worker_stop_timeout); SIGKILL it past that."""
        self._stopping.set()
        self._signal(signal.SIGTERM)
        self._thread.join(self.settings.worker_stop_timeout + 10)
        if self._thread.is_alive():
            log.error("the sync worker did not stop in time: killing it")
            self._signal(signal.SIGKILL)
            self._thread.join(10)

    def _signal(self, sig: int) -> None:
        with self._lock:
            if self._child is not None and self._running:
                with contextlib.suppress(ProcessLookupError):
                    self._child.send_signal(sig)

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        with self._lock:
            if self._stopping.is_set():
                return None
            self._child = subprocess.Popen(self.command, env={**os.environ, SUPERVISOR_ENV: self.id})
            self._running = True
            self.spawned += 1
            log.info("sync worker started", extra={"pid": self._child.pid, "supervisor": self.id})
            return self._child

    def _run(self) -> None:
        try:
            self._supervise()
        except Exception:  # e.g. the worker cannot be started at all: serve must not run on without one
            log.critical("the supervision of the sync worker failed; serve exits with code %d", EXIT_GAVE_UP,
                         exc_info=True)
            self.gave_up = True
            self.on_give_up()

    def _supervise(self) -> None:
        while True:
            child = self._spawn()
            if child is None:
                return
            status = wait_for(child)
            with self._lock:
                self._running = False
            if self._stopping.is_set():
                return
            self._after_exit(child.pid, status)
            if self.gave_up:
                return
            if self._stopping.wait(restart_delay(len(self.exits))):
                return

    def _after_exit(self, pid: int, status: int | None) -> None:
        now = time.monotonic()
        self.exits.append(now)
        while self.exits and now - self.exits[0] > self.settings.worker_restart_window:
            self.exits.popleft()
        self._release(pid, status)
        limit, window = self.settings.worker_restart_limit, self.settings.worker_restart_window
        if len(self.exits) >= limit:
            self.gave_up = True
            log.critical("the sync worker (pid %d) %s: %d exits within %.0fs; giving up, serve exits with code %d "
                         "(for systemd to restart it)", pid, describe(status), len(self.exits), window, EXIT_GAVE_UP)
            self.on_give_up()
            return
        log.error("the sync worker (pid %d) %s; restarting it in %.1fs (exit %d of %d allowed within %.0fs)",
                  pid, describe(status), restart_delay(len(self.exits)), len(self.exits), limit, window)

    def _release(self, pid: int, status: int | None) -> None:
        """Give the dead worker's claims back now, one attempt counted, and delete its heartbeat row."""
        try:
            engine = self._database()
            ids = heartbeat.of_process(engine, self.id, pid)
            for worker_id in ids:
                for claim in queue.claims_of(engine, worker_id):
                    self._retry(engine, claim, f"the worker syncing it {describe(status)}")
            heartbeat.remove(engine, ids)
        except Exception:  # the database is down: the claims wait out their lease instead
            log.exception("could not release the dead worker's claims", extra={"pid": pid})

    def _retry(self, engine: Engine, claim: queue.Claim, error: str) -> None:
        # Counted: an NC whose sync kills the worker each time ends as a dead letter, not in a crash loop.
        s = self.settings
        wait = backoff_delay(claim.attempts + 1, s.retry_base, s.retry_max)
        dead = queue.retry_later(engine, claim, error, wait, s.max_attempts, True, s.retry_span)
        log.warning("released %d deliveries of %s held by the dead worker (due in %.1fs, %d dead letters)",
                    len(claim.ids), claim.nc_id, wait, dead, extra={"nc_id": claim.nc_id, "worker": claim.worker_id})

    def _database(self) -> Engine:
        if self._engine is None:
            self._engine = db.make_engine(self.settings.database_url)
        return self._engine

    def _forget_engine(self) -> None:
        if self._engine is not None:
            self._engine.dispose(close=False)
            self._engine = None


def give_up_serving() -> None:
    """Stop serve the way systemd would (SIGTERM to itself), whatever server it runs; leave for good if that
    server does not stop within FORCED_EXIT_AFTER seconds."""
    def force() -> None:
        time.sleep(FORCED_EXIT_AFTER)
        log.critical("the server did not stop after SIGTERM: exiting")
        os._exit(EXIT_GAVE_UP)

    threading.Thread(target=force, name="forced-exit", daemon=True).start()
    os.kill(os.getpid(), signal.SIGTERM)


def serve_supervised(run_server: Callable[[], None], supervisor: Supervisor | None) -> None:
    """Run the server (blocking) with the supervisor beside it; stop the worker once the server has stopped.
    Raises SystemExit(EXIT_GAVE_UP) when the supervisor gave up, else keeps the server's exit code."""
    owner = os.getpid()
    code: int | str | None = 0
    if supervisor is not None:
        supervisor.start()
    try:
        run_server()
    except SystemExit as exc:
        if os.getpid() != owner:  # a web process forked by the server leaving: the worker is not its to stop
            raise
        code = exc.code
    finally:
        if supervisor is not None and os.getpid() == owner:
            supervisor.stop()
    if supervisor is not None and supervisor.gave_up:
        code = EXIT_GAVE_UP
    if code:
        raise SystemExit(code)
