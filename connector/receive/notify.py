"""The workers' wake-up on PostgreSQL: one NOTIFY for all the deliveries a web process committed meanwhile,
sent by a thread of that process after their commits, never inside a request's transaction.

Why not NOTIFY in the ingest statement, as before: PostgreSQL takes one global lock on its notification
queue at the commit of every transaction that sent a NOTIFY, so every new delivery's commit waited for the
others' (pgbench, 16 clients: the same INSERTs ran at about a quarter of their rate with the NOTIFY, p99 x10;
bench/README.md). A wake-up is only a hint: an idle worker LISTENs with a timeout of its poll interval
(connector.sync.wakeup), so a NOTIFY that is late or lost (this process killed, the database away) costs at
most that interval, never a delivery. A NOTIFY sent after the commit can never wake a worker too early.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.pool import Pool

from connector.db import driver_connection

NOTIFY_CHANNEL = "nc_connector_deliveries"
# The least time between two NOTIFYs of one process: under load that makes one NOTIFY (and one commit taking
# the queue's lock) per process per interval, whatever the rate of deliveries; idle, a wake-up goes at once.
MIN_INTERVAL_SECONDS = 0.05

# A NOTIFY gives its transaction an XID, so its commit would wait for a WAL flush (an fsync) like a
# delivery's; a wake-up is a hint that needs no durability, so this commit does not wait for it.
_NOTIFY = f"SELECT set_config('synchronous_commit', 'off', true), pg_notify('{NOTIFY_CHANNEL}', '')"

log = logging.getLogger(__name__)


class Notifier:
    """poke(): a NOTIFY will be sent soon after, by this object's thread (one per process and database)."""

    def __init__(self, send: Callable[[], None], interval: float = MIN_INTERVAL_SECONDS) -> None:
        self._send = send
        self._interval = interval
        self._poked = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.sent = 0  # NOTIFYs sent (for tests and curiosity)

    def poke(self) -> None:
        self._poked.set()
        if self._thread is None:
            with self._lock:
                if self._thread is None:  # started lazily: in the web process, after the server's fork
                    self._thread = threading.Thread(target=self._run, name="nc-notify", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            self._poked.wait()
            self._poked.clear()  # pokes from here on are covered by the next NOTIFY, not this one
            try:
                self._send()
                self.sent += 1
            except Exception as exc:  # the database is away: the workers poll meanwhile
                log.debug("wake-up NOTIFY not sent", extra={"error": type(exc).__name__})
            time.sleep(self._interval)  # this pause is what coalesces a busy process's wake-ups


_NOTIFIERS: weakref.WeakKeyDictionary[Engine, Notifier] = weakref.WeakKeyDictionary()
_NOTIFIERS_LOCK = threading.Lock()


def notifier(engine: Engine) -> Notifier:
    """This process's notifier for the engine's database (its thread holds the pool, not the engine)."""
    with _NOTIFIERS_LOCK:
        found = _NOTIFIERS.get(engine)
        if found is None:
            found = _NOTIFIERS[engine] = Notifier(_sender(engine.pool))
        return found


def _sender(pool: Pool) -> Callable[[], None]:
    def send() -> None:
        with driver_connection(pool) as conn:
            conn.autocommit = True
            try:
                conn.execute(_NOTIFY)
            finally:
                conn.autocommit = False  # how SQLAlchemy expects its pooled connections
    return send
