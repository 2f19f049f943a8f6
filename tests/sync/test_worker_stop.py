"""A worker asked to stop: the sync in flight finishes (bounded by worker_stop_timeout), claims are released,
the heartbeat row goes; and the claims of a worker given back (queue.release, queue.claims_of)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import delete, select

from connector.mapping.load import default_mapping_path, load_mapping
from connector.models import Delivery
from connector.models import Worker as WorkerRow
from connector.sync import heartbeat, queue
from connector.sync.apply import Syncer
from connector.sync.worker import Worker
from tests.conftest import load_fixture, make_settings
from tests.sync.helpers import deliver


class HeldSyncer(Syncer):
    """A Syncer whose sync waits for `release` (bounded) before doing the real thing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()

    def sync(self, claim: Any) -> Any:
        self.entered.set()
        self.release.wait(20)
        try:
            return super().sync(claim)
        finally:
            self.finished.set()


@pytest.fixture
def held_worker(engine, db_url, jira) -> Callable[..., Worker]:
    with engine.begin() as conn:
        conn.execute(delete(WorkerRow))

    def build(stop_timeout: str = "20s") -> Worker:
        settings = make_settings(db_url, NC_CONNECTOR_WORKER_HEARTBEAT="0.05s",
                                 NC_CONNECTOR_WORKER_POLL_INTERVAL="0.05s",
                                 NC_CONNECTOR_WORKER_STOP_TIMEOUT=stop_timeout)
        mapping = load_mapping(default_mapping_path(), project_override="QA")
        return Worker(engine, settings, HeldSyncer(engine, jira, mapping, settings.jira_search_lag),
                      supervisor="sup-test")
    return build


def start(worker: Worker, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=worker.run_forever, args=(stop,), daemon=True)
    thread.start()
    assert worker.syncer.entered.wait(10), "the worker never started a sync"  # type: ignore[attr-defined]
    return thread


def rows(engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(Delivery.status, Delivery.claimed_by, Delivery.attempts)).all())


def test_stop_mid_sync_finishes_it_and_holds_nothing(engine, held_worker, jira):
    deliver(engine, load_fixture("nc_created"))
    worker, stop = held_worker(), threading.Event()
    thread = start(worker, stop)
    time.sleep(0.2)  # a few beats while the sync is in flight
    (row,) = heartbeat.list_workers(engine)
    assert row.claim == "NCR-12" and row.supervisor == "sup-test" and row.age_seconds < 2
    stop.set()
    time.sleep(0.2)
    assert thread.is_alive()  # still finishing the sync in flight
    worker.syncer.release.set()  # type: ignore[attr-defined]
    thread.join(10)
    assert not thread.is_alive()
    assert rows(engine) == [("done", None, 0)]
    assert len(jira.issues) == 1
    assert heartbeat.list_workers(engine) == []  # a clean stop deletes the row


def test_stop_timeout_gives_the_sync_up_and_releases_its_claim(engine, held_worker):
    deliver(engine, load_fixture("nc_created"))
    worker, stop = held_worker(stop_timeout="0.3s"), threading.Event()
    thread = start(worker, stop)
    stopped_at = time.monotonic()
    stop.set()
    thread.join(10)
    took = time.monotonic() - stopped_at
    assert not thread.is_alive() and 0.3 <= took < 3, took
    assert rows(engine) == [("queued", None, 0)]  # due again at once, no attempt spent
    assert queue.claim_next(engine, "next", 60) is not None  # the next worker takes it at once
    worker.syncer.release.set()  # type: ignore[attr-defined]
    assert worker.syncer.finished.wait(10)  # type: ignore[attr-defined]
    assert rows(engine) == [("processing", "next", 0)]  # the abandoned sync recorded nothing over it


def test_claims_of_and_release(engine):
    for nc in ("NC-1", "NC-2"):
        deliver(engine, {**load_fixture("nc_created"), "ncId": nc})
    first = queue.claim_next(engine, "w1", 600)
    assert first is not None
    (held,) = queue.claims_of(engine, "w1")
    assert held.nc_id == first.nc_id and held.ids == first.ids and held.worker_id == "w1"
    assert queue.claims_of(engine, "w2") == []
    assert queue.release(engine, "w1") == 1
    assert queue.claims_of(engine, "w1") == []
    again = queue.claim_next(engine, "w2", 600)  # no lease to wait out
    assert again is not None and again.nc_id == first.nc_id
