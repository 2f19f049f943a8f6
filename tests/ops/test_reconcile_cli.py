"""`nc-connector reconcile`: refusals (exit 2), the dry run's drift table, the summary, a second reconcile at the
same time, the listing's source column, `status` and `/metrics` with the last run; the periodic run's schedule."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from connector import db
from connector.models import Delivery, ReconcileRun
from connector.ops.cli import main
from connector.ops.gauges import render
from connector.qualio import reconcile_store
from connector.qualio.periodic import PeriodicReconcile
from connector.qualio.reconcile import Reconciler
from connector.sandbox.qualio import QualioState, start_in_thread
from tests.qualio.reconcile_support import KEY, LONG_AGO, client, soon


@pytest.fixture
def qualio():
    with start_in_thread(QualioState(KEY, limit_per_minute=None)) as running:
        running.state.add_event("NCR", "open", "Before the install", at=LONG_AGO)
        running.state.add_event("NCR", "closed", "Closed before the install", at=LONG_AGO)
        running.state.add_event("NCR", "open", "Missed create", at=soon(30))
        yield running


def run(db_url: str, *args: str, **env: str):
    base = {"NC_CONNECTOR_DATABASE_URL": db_url, "NC_CONNECTOR_QUALIO_PAGE_SIZE": "2",
            "NC_CONNECTOR_QUALIO_MAX_PER_MINUTE": "6000"}
    return CliRunner().invoke(main, list(args), env={**base, **env}, catch_exceptions=False)


def keyed(qualio) -> dict[str, str]:
    return {"NC_CONNECTOR_QUALIO_API_KEY": KEY, "NC_CONNECTOR_QUALIO_URL": qualio.url}


@pytest.mark.parametrize(("args", "env", "message"), [
    (["reconcile"], {}, "no Qualio API key: set NC_CONNECTOR_QUALIO_API_KEY"),
    (["reconcile", "--status", "open"], {"NC_CONNECTOR_QUALIO_API_KEY": "k"}, "--status chooses what --backfill"),
    (["reconcile", "--backfill", "--status", "all"], {"NC_CONNECTOR_QUALIO_API_KEY": "k"}, "'all' is not one of"),
    (["reconcile"], {"NC_CONNECTOR_QUALIO_NC_PREFIXES": "NC-R"}, "NC_CONNECTOR_QUALIO_NC_PREFIXES"),
    (["reconcile"], {"NC_CONNECTOR_RECONCILE_INTERVAL": "hourly"}, "NC_CONNECTOR_RECONCILE_INTERVAL"),
])
def test_bad_input_exits_2_with_a_message(db_url, args, env, message):
    result = run(db_url, *args, **env)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_an_unmigrated_database_is_a_usage_error(tmp_path, qualio):
    result = run(f"sqlite:///{tmp_path / 'empty.db'}", "reconcile", **keyed(qualio))
    assert result.exit_code == 2 and "nc-connector db upgrade" in result.output


def test_dry_run_prints_the_drift_table_and_queues_nothing(db_url, engine, qualio):
    result = run(db_url, "reconcile", "--dry-run", "--backfill", **keyed(qualio))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(line for line in lines if line.startswith("NC "))
    assert header.split() == ["NC", "status", "drift", "what", "differs", "would", "queue"]
    assert any(line.startswith("NCR-1 ") and "backfill" in line and "nc.created (source reconcile)" in line
               for line in lines)
    assert any(line.startswith("NCR-3 ") and " new " in line for line in lines)
    assert not any(line.startswith("NCR-2 ") for line in lines)  # closed: not in the default backfill
    assert "dry run: nothing queued" in result.output and "(not recorded: dry run)" in result.output
    assert "open       [" in result.output and "1 / 1" in result.output  # the progress of each status
    with engine.connect() as conn:
        assert conn.execute(select(Delivery.id)).first() is None


def test_a_run_queues_the_missed_create_and_says_what_it_did(db_url, engine, qualio):
    result = run(db_url, "reconcile", **keyed(qualio))
    assert result.exit_code == 0, result.output
    assert "reconcile completed" in result.output and "(recorded by this run)" in result.output
    assert "scanned 3  changed 0  new 1  backfilled 0  unchanged 0  pre-install left alone 2" in result.output
    assert KEY not in result.output
    listed = run(db_url, "deliveries", "list")
    row = next(line for line in listed.output.splitlines() if "NCR-3" in line)
    assert row.split()[1:4] == ["NCR-3", "nc.created", "reconcile"]
    status = run(db_url, "status")
    assert "last reconcile:" in status.output and "(cli, completed" in status.output and "new 1" in status.output
    metrics = render(engine).decode()
    assert 'nc_connector_reconcile_last_drift{kind="new"} 1.0' in metrics
    assert "nc_connector_reconcile_last_run_success 1.0" in metrics
    again = run(db_url, "reconcile", **keyed(qualio))
    assert "new 0" in again.output and "unchanged 1" in again.output and "(recorded earlier)" in again.output


def test_a_second_reconcile_at_the_same_time_is_refused(db_url, engine, qualio):
    reconcile_store.take_lease(engine, "other-host:1:abc", 300)
    result = run(db_url, "reconcile", **keyed(qualio))
    assert result.exit_code == 1 and "another reconcile is running (other-host:1:abc" in result.output
    assert run(db_url, "reconcile", "--dry-run", **keyed(qualio)).exit_code == 0  # a dry run takes no lease


def test_no_nc_template_fails_with_exit_1(db_url, qualio):
    result = run(db_url, "reconcile", NC_CONNECTOR_QUALIO_NC_PREFIXES="DEV", **keyed(qualio))
    assert result.exit_code == 1 and "no Qualio event template has the prefix DEV" in result.output


def test_the_periodic_run_happens_once_an_interval_across_processes(engine, qualio):
    def make() -> Reconciler:
        return Reconciler(engine, client(qualio.url, engine), ("NCR",), page_size=2)

    first, second = PeriodicReconcile(engine, make, 3600), PeriodicReconcile(engine, make, 3600)
    assert first.due_in() == 0 and first.run_once()
    assert not second.run_once() and second.due_in() > 3500  # ran by the other one: not due for an hour
    with engine.begin() as conn:  # an hour later
        started = conn.execute(select(ReconcileRun.started_at)).scalar_one()
        conn.execute(update(ReconcileRun).values(started_at=started - timedelta(hours=1)))
    reconcile_store.take_lease(engine, "someone-else", 300)  # ...but another process is running one
    assert not second.run_once()
    reconcile_store.release(engine, "someone-else")
    assert second.run_once()
    with engine.connect() as conn:
        assert conn.execute(select(ReconcileRun.trigger).order_by(ReconcileRun.id)).scalars().all() == [
            "periodic", "periodic"]


def test_the_periodic_thread_stops_with_the_worker(engine, qualio):
    stop = threading.Event()
    periodic = PeriodicReconcile(engine, lambda: Reconciler(engine, client(qualio.url, engine), ("NCR",)), 3600)
    thread = periodic.start(stop)
    deadline = threading.Event()
    for _ in range(100):
        if periodic.runs:
            break
        deadline.wait(0.05)
    stop.set()
    thread.join(timeout=5)
    assert periodic.runs == 1 and not thread.is_alive()
    db.now(engine)  # the engine still works


def test_the_worker_starts_the_periodic_run_only_with_a_key_and_an_interval(db_url, qualio):
    from connector.ops.reconcile_cmd import start_periodic
    from tests.conftest import make_settings

    stop = threading.Event()
    assert start_periodic(make_settings(db_url), stop) is None  # no key
    keyed_settings = make_settings(db_url, NC_CONNECTOR_RECONCILE_INTERVAL="0", **keyed(qualio))
    assert start_periodic(keyed_settings, stop) is None  # 0 turns it off
    thread = start_periodic(make_settings(db_url, **keyed(qualio)), stop)
    assert thread is not None and thread.name == "periodic-reconcile"
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
