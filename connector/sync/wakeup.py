"""How an idle worker waits: PostgreSQL LISTEN (woken by the receiver's NOTIFY at commit), else a short sleep."""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import Engine

from connector.receive.store import NOTIFY_CHANNEL

log = logging.getLogger(__name__)


class Waiter:
    """Sleeps up to `timeout` seconds; PostgreSQL ends the wait early when a delivery is queued."""

    def __init__(self, engine: Engine, stop: threading.Event) -> None:
        self._stop = stop
        self._url = engine.url if engine.dialect.name == "postgresql" else None
        self._conn: Any = None

    def wait(self, timeout: float) -> None:
        if self._url is None or not self._listening():
            self._stop.wait(timeout)
            return
        try:
            for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                pass
        except Exception:  # the database went away: poll until it is back
            log.warning("lost the LISTEN connection; polling", exc_info=True)
            self.close()
            self._stop.wait(timeout)

    def _listening(self) -> bool:
        if self._conn is not None:
            return True
        import psycopg

        assert self._url is not None
        try:
            conninfo = self._url.set(drivername="postgresql").render_as_string(hide_password=False)
            self._conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
            self._conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except Exception:
            log.warning("cannot LISTEN for new deliveries; polling", exc_info=True)
            self._conn = None
            return False
        return True

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
