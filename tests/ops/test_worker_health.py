"""What operators see of the workers: /readyz's rule for the worker that serve runs, heartbeat ages in /metrics,
the workers in `status`."""

from __future__ import annotations

import re
import sqlite3
import time
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, update

from connector import db
from connector.models import Worker as WorkerRow
from connector.ops.app import create_app
from connector.ops.cli import main
from connector.sync import heartbeat
from tests.conftest import make_settings

SUPERVISOR = "host:42:abcd1234"


@pytest.fixture
def workers(engine):
    with engine.begin() as conn:
        conn.execute(delete(WorkerRow))
    yield engine
    with engine.begin() as conn:
        conn.execute(delete(WorkerRow))


def app_client(db_url, engine, supervisor: str | None, **env: str):
    app = create_app(make_settings(db_url, NC_CONNECTOR_WORKER_HEARTBEAT="2s", **env), engine)
    app.config["NC_SUPERVISOR"] = supervisor  # what serve's SUPERVISOR_ENV gives its web processes
    return app.test_client()


def age(engine, worker_id: str, seconds: float) -> None:
    with engine.begin() as conn:
        conn.execute(update(WorkerRow).where(WorkerRow.id == worker_id)
                     .values(beat_at=db.now(conn) - timedelta(seconds=seconds)))


def test_readyz_needs_a_fresh_heartbeat_of_the_supervised_worker(db_url, workers):
    client = app_client(db_url, workers, SUPERVISOR)
    missing = client.get("/readyz")
    assert missing.status_code == 503 and "no heartbeat yet" in missing.get_json()["detail"]
    heartbeat.beat(workers, "host:43:w1", SUPERVISOR, None)
    heartbeat.beat(workers, "host:50:other", "host:49:elsewhere", None)
    assert client.get("/readyz").status_code == 200
    age(workers, "host:43:w1", 7)  # 3 beats of 2 s missed
    stale = client.get("/readyz")
    detail = stale.get_json()["detail"]
    assert stale.status_code == 503 and stale.mimetype == "application/problem+json"
    assert "pid" in detail and "has not beaten for 7" in detail and "limit 6s" in detail
    age(workers, "host:43:w1", 5)  # late, not yet stale
    assert client.get("/readyz").status_code == 200


def test_readyz_answers_while_a_stopped_worker_holds_the_sqlite_write_lock(tmp_path, sqlite_template):
    # A worker stopped (SIGSTOP, a debugger, a long prune) inside its transaction holds SQLite's write lock;
    # /readyz only reads, so it must say the worker is stale, not wait for that lock (SQLITE_BUSY_TIMEOUT_MS).
    path = tmp_path / "locked.db"
    path.write_bytes(sqlite_template.read_bytes())
    url = f"sqlite:///{path}"
    engine = db.make_engine(url)
    try:
        heartbeat.beat(engine, "host:43:w1", SUPERVISOR, None)
        age(engine, "host:43:w1", 7)
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("UPDATE workers SET claim = 'NC-1'")  # written, not committed: readers see the old rows
        try:
            started = time.monotonic()
            stale = app_client(url, engine, SUPERVISOR).get("/readyz")
            assert time.monotonic() - started < 5
            assert stale.status_code == 503 and "has not beaten for 7" in stale.get_json()["detail"]
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    finally:
        engine.dispose()


def test_readyz_ignores_workers_when_serve_runs_none(db_url, workers):
    heartbeat.beat(workers, "host:43:w1", SUPERVISOR, None)
    age(workers, "host:43:w1", 3600)
    assert app_client(db_url, workers, None).get("/readyz").status_code == 200  # serve --no-worker, gunicorn


def test_metrics_carry_each_workers_heartbeat_age(db_url, workers):
    heartbeat.beat(workers, "host:43:w1", SUPERVISOR, "NC-1")
    heartbeat.beat(workers, "host:44:w2", None, None)
    age(workers, "host:44:w2", 30)
    body = app_client(db_url, workers, None).get("/metrics").get_data(as_text=True)
    lines = {re.search(r'worker="([^"]+)"', line).group(1): float(line.rsplit(" ", 1)[1])  # type: ignore[union-attr]
             for line in body.splitlines() if line.startswith("nc_connector_worker_heartbeat_age_seconds{")}
    assert set(lines) == {"host:43:w1", "host:44:w2"}
    assert lines["host:43:w1"] < 5 and 29 < lines["host:44:w2"] < 60


def test_status_lists_the_workers_and_flags_a_stale_one(db_url, workers):
    heartbeat.beat(workers, "host:43:w1", SUPERVISOR, "NC-2025-001")
    heartbeat.beat(workers, "host:44:w2", None, None)
    age(workers, "host:44:w2", 90)
    result = CliRunner().invoke(main, ["status"], env={"NC_CONNECTOR_DATABASE_URL": db_url,
                                                       "NC_CONNECTOR_WORKER_HEARTBEAT": "2s"})
    assert result.exit_code == 0, result.output
    assert "workers: 2" in result.output
    (first,) = [line for line in result.output.splitlines() if "host:43:w1" in line]
    assert "syncing NC-2025-001" in first and f"run by serve {SUPERVISOR}" in first and "STALE" not in first
    (second,) = [line for line in result.output.splitlines() if "host:44:w2" in line]
    assert "STALE: no heartbeat for 9" in second and "idle" in second


@pytest.mark.parametrize(("name", "value"), [("NC_CONNECTOR_WORKER_HEARTBEAT", "0s"),
                                             ("NC_CONNECTOR_WORKER_STOP_TIMEOUT", "soon"),
                                             ("NC_CONNECTOR_WORKER_RESTART_LIMIT", "0"),
                                             ("NC_CONNECTOR_WORKER_RESTART_WINDOW", "-5m")])
def test_a_bad_supervision_setting_stops_serve_with_exit_code_2(name, value, tmp_path):
    result = CliRunner().invoke(main, ["serve", "--port", "1"], env={
        "NC_CONNECTOR_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "NC_CONNECTOR_ALLOW_UNSIGNED": "true",
        name: value})
    assert result.exit_code == 2 and name in result.output, result.output
