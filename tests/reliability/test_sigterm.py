"""Scenario 9, continued: SIGTERM to a worker in the middle of a sync (real processes over loopback).

The sync in flight (Jira takes 4 s over the create) finishes, nothing stays claimed, the heartbeat row goes and
the worker exits 0; with a stop timeout shorter than the sync, the claim is released instead (due at once, no
attempt spent) and the next worker syncs the NC: one issue, one create, either way.
"""

from __future__ import annotations

import signal
import time

import pytest
from sqlalchemy import select

from connector import db
from connector.models import Delivery
from connector.sync import heartbeat
from tests.processes import free_port, start, stop, wait_ready
from tests.reliability.test_supervision import CREATE, create_in_flight, env_for, held, nc, send, status_of, wait_for

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("stop_timeout", ["20s", "0.5s"], ids=["finishes", "gives-up"])
def test_sigterm_mid_sync(stop_timeout, db_url, engine, sandbox, tmp_path):
    env = env_for(db_url, sandbox, NC_CONNECTOR_WORKER_STOP_TIMEOUT=stop_timeout)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = start(["serve", "--no-worker", "--port", str(port), "--workers", "1"], env, tmp_path / "serve.log")
    worker = start(["worker"], env, tmp_path / "worker.log")
    try:
        wait_ready(f"{base}/readyz", web)
        # Jira takes 4 s over the create (under the 5 s search lag, so a create still landing is found, not repeated)
        sandbox.faults(faults=[{"kind": "slow", "seconds": 4, "method": "POST", "path": CREATE}])
        assert send(base, nc(1)) == 202
        wait_for("the create in flight", lambda: create_in_flight(sandbox), poll=0.05)
        asked = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(30)
        took = time.monotonic() - asked
        assert code == 0 and held(engine) == []  # no claim held, in either case
        assert not [w for w in heartbeat.list_workers(engine) if w.pid == worker.pid]
        if stop_timeout == "20s":
            assert status_of(engine, "NC-2026-0001") == ["done"] and took >= 1, took  # the answer was awaited
        else:
            assert status_of(engine, "NC-2026-0001") == ["queued"] and took < 3, took  # not the 4 s create
            with engine.connect() as conn:  # due at once, no attempt spent
                due, attempts = conn.execute(select(Delivery.next_attempt_at, Delivery.attempts)).one()
                assert due <= db.now(conn) and attempts == 0
            restarted = start(["worker"], env, tmp_path / "worker2.log")
            try:
                wait_for("the next worker syncs it", lambda: status_of(engine, "NC-2026-0001") == ["done"])
            finally:
                stop(restarted)
    finally:
        stop(worker)
        stop(web)
    assert len(sandbox.issues()) == 1 and len(sandbox.requests_log(method="POST", path=CREATE)["requests"]) == 1
