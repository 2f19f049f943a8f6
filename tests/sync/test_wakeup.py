"""An idle worker wakes when a delivery is stored: at once on PostgreSQL (LISTEN/NOTIFY), by polling on SQLite."""

from __future__ import annotations

import threading
import time

from connector.receive.events import validate_event
from connector.receive.fingerprint import fingerprint
from connector.receive.store import record_delivery
from connector.sync.wakeup import Waiter


def test_a_stored_delivery_ends_the_wait(engine):
    stop = threading.Event()
    waiter = Waiter(engine, stop)
    waiter.wait(0.01)  # connects and listens on PostgreSQL
    event = validate_event({"eventType": "nc.updated", "ncId": "NC-3-3", "timestamp": "2025-01-05T10:15:32Z"})
    timer = threading.Timer(0.3, lambda: record_delivery(engine, event, b"{}", fingerprint(event.payload), None))
    timer.start()
    started = time.monotonic()
    waiter.wait(1.5)
    waited = time.monotonic() - started
    timer.join()
    waiter.close()
    if engine.dialect.name == "postgresql":
        assert 0.2 < waited < 1.2
    else:
        assert waited >= 1.4  # SQLite has no notifications: the poll interval bounds the delay
