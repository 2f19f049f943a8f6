"""The workers' wake-up: sent after the commit, one NOTIFY for the deliveries a process committed meanwhile."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from connector.receive.notify import NOTIFY_CHANNEL, Notifier


def test_a_poke_is_sent_soon_and_a_burst_of_pokes_is_one_or_two_sends():
    sent: list[float] = []
    release = threading.Event()

    def send() -> None:
        sent.append(time.monotonic())
        release.wait(5)  # the first NOTIFY is slow: every poke meanwhile waits for the next one

    notifier = Notifier(send, interval=0.001)
    poked = time.monotonic()
    notifier.poke()
    deadline = time.monotonic() + 5
    while not sent and time.monotonic() < deadline:
        time.sleep(0.001)
    assert sent and sent[0] - poked < 1.0
    for _ in range(200):
        notifier.poke()
    release.set()
    deadline = time.monotonic() + 5
    while len(sent) < 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(0.05)
    assert len(sent) == 2  # the 200 pokes made during the first send are covered by one more


def test_a_failed_send_does_not_stop_the_notifier():
    calls: list[int] = []

    def send() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("database away")

    notifier = Notifier(send, interval=0.001)
    notifier.poke()
    time.sleep(0.05)
    notifier.poke()
    deadline = time.monotonic() + 5
    while notifier.sent < 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert len(calls) == 2 and notifier.sent == 1


@pytest.mark.postgres
def test_concurrent_new_deliveries_wake_the_workers_with_fewer_notifies(pg_url):
    import psycopg

    from connector import db
    from connector.receive.events import validate_event
    from connector.receive.fingerprint import fingerprint
    from connector.receive.store import Accepted, record_delivery
    from tests.conftest import truncate

    engine = db.make_engine(pg_url)
    truncate(engine)
    listener = psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    outcomes: list[Any] = []
    try:
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        start = threading.Barrier(4)

        def sender(thread: int) -> None:
            start.wait()
            for i in range(25):
                event = validate_event({"eventType": "nc.updated", "ncId": f"NC-8-{thread}-{i}",
                                        "timestamp": "2025-01-05T10:15:32Z"})
                outcomes.append(record_delivery(engine, event, b"{}", fingerprint(event.payload), None))

        threads = [threading.Thread(target=sender, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        woken = sum(1 for _ in listener.notifies(timeout=0.5))
        assert len([o for o in outcomes if isinstance(o, Accepted)]) == 100
        assert 1 <= woken < 100  # at least one wake-up after the last commit, far fewer than deliveries
    finally:
        listener.close()
        truncate(engine)
        engine.dispose()
