"""Helpers of the sync tests: store a delivery as the webhook would, run the worker dry, read the queue."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, select, update

from connector.clock import utcnow
from connector.models import Delivery
from connector.receive.events import validate_event
from connector.receive.fingerprint import fingerprint
from connector.receive.store import record_delivery
from connector.sync.worker import Worker


def deliver(engine: Engine, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    record_delivery(engine, validate_event(payload), body, fingerprint(payload), None)


def drain(worker: Worker, due_now: bool = True, rounds: int = 20) -> None:
    """Run the worker until the queue is empty, making retried deliveries due at once."""
    for _ in range(rounds):
        if due_now:
            with worker.engine.begin() as conn:
                conn.execute(update(Delivery).where(Delivery.status == "queued").values(next_attempt_at=utcnow()))
        if not worker.run_once():
            return


def statuses(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [s for (s,) in conn.execute(select(Delivery.status).order_by(Delivery.id))]


def dead_letters(engine: Engine) -> list[Delivery]:
    with engine.connect() as conn:
        return list(conn.execute(select(Delivery).where(Delivery.status == "dead").order_by(Delivery.id)).all())
