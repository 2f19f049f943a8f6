"""The supervisor with stand-in children (real processes): restarts with backoff, gives up, stops its child, and
releases what a dead child held."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from connector.models import Delivery
from connector.models import Worker as WorkerRow
from connector.ops import supervise
from connector.ops.supervise import EXIT_GAVE_UP, Supervisor, describe, restart_delay, serve_supervised
from connector.sync import heartbeat
from tests.conftest import load_fixture, make_settings
from tests.sync.helpers import deliver


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def wait_until(predicate, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_restart_delay_doubles_and_is_capped():
    assert [restart_delay(n) for n in (1, 2, 3, 4, 5)] == [0.0, 0.5, 1.0, 2.0, 4.0]
    assert restart_delay(30) == supervise.BACKOFF_MAX


def test_describe_says_how_it_ended():
    assert describe(None).startswith("exited (status unknown")
    assert describe(signal.SIGKILL) == "was killed by SIGKILL"  # a wait status: the signal in the low bits
    assert describe(3 << 8) == "exited with code 3"
    assert describe(35) == "was killed by signal 35"  # SIGRTMIN+1: a signal Python has no name for


def test_a_child_that_keeps_exiting_is_restarted_with_backoff_then_given_up(tmp_path):
    settings = make_settings(NC_CONNECTOR_WORKER_RESTART_LIMIT="3", NC_CONNECTOR_WORKER_RESTART_WINDOW="60s")
    gave_up = threading.Event()
    started = tmp_path / "starts"
    sup = Supervisor(settings, python(f"open({str(started)!r}, 'a').write('x'); raise SystemExit(1)"),
                     on_give_up=gave_up.set)
    began = time.monotonic()
    sup.start()
    assert gave_up.wait(20)
    took = time.monotonic() - began
    assert sup.gave_up and sup.spawned == 3 and started.read_text() == "xxx"
    assert took >= restart_delay(1) + restart_delay(2)  # the backoff was waited out
    sup.stop()
    assert sup.spawned == 3  # nothing started after giving up


def test_stop_ends_the_child_and_starts_no_other(tmp_path):
    settings = make_settings(NC_CONNECTOR_WORKER_STOP_TIMEOUT="5s")
    env_seen = tmp_path / "env"
    code = (f"import os, time; open({str(env_seen)!r}, 'w').write(os.environ['{heartbeat.SUPERVISOR_ENV}']); "
            "time.sleep(60)")
    sup = Supervisor(settings, python(code), on_give_up=lambda: None)
    sup.start()
    assert wait_until(lambda: env_seen.exists() and env_seen.read_text() != "")
    assert env_seen.read_text() == sup.id  # the child learns who supervises it
    pid = sup.child_pid
    assert pid is not None
    began = time.monotonic()
    sup.stop()
    assert time.monotonic() - began < 5 and sup.child_pid is None
    assert sup.spawned == 1 and not sup.gave_up and len(sup.exits) == 0


def test_a_dead_childs_claims_are_released_and_its_row_deleted(db_url, engine):
    with engine.begin() as conn:
        conn.execute(delete(WorkerRow))
    deliver(engine, load_fixture("nc_created"))
    settings = make_settings(db_url, NC_CONNECTOR_WORKER_RESTART_LIMIT="1", NC_CONNECTOR_RETRY_BASE="0.2s")
    # A child that beats and claims like a worker, then dies mid-sync.
    code = ("import os, signal; from connector import db; from connector.sync import heartbeat, queue; "
            f"engine = db.make_engine({db_url!r}); me = f'host:{{os.getpid()}}:x'; "
            f"heartbeat.beat(engine, me, os.environ['{heartbeat.SUPERVISOR_ENV}'], 'NCR-12'); "
            "assert queue.claim_next(engine, me, 600) is not None; os.kill(os.getpid(), signal.SIGKILL)")
    gave_up = threading.Event()
    sup = Supervisor(settings, python(code), on_give_up=gave_up.set)
    sup.start()
    assert gave_up.wait(30)
    sup.stop()
    with engine.connect() as conn:
        status, claimed_by, attempts, error = conn.execute(
            select(Delivery.status, Delivery.claimed_by, Delivery.attempts, Delivery.last_error)).one()
    assert (status, claimed_by, attempts) == ("queued", None, 1)  # not the 600 s lease: free after the backoff
    assert error == "the worker syncing it was killed by SIGKILL"
    assert heartbeat.list_workers(engine) == []


def test_serve_supervised_exits_non_zero_once_the_supervisor_gave_up():
    settings = make_settings(NC_CONNECTOR_WORKER_RESTART_LIMIT="1")
    server_stopped = threading.Event()
    sup = Supervisor(settings, python("raise SystemExit(1)"), on_give_up=server_stopped.set)

    def server() -> None:  # stands in for gunicorn: runs until told to stop, then exits 0 as it does
        server_stopped.wait(20)
        raise SystemExit(0)

    with pytest.raises(SystemExit) as exited:
        serve_supervised(server, sup)
    assert exited.value.code == EXIT_GAVE_UP


def test_a_worker_that_cannot_be_started_makes_serve_give_up(tmp_path: Path):
    """Popen failing (the venv replaced under a running serve) must not leave serve up with no worker."""
    gave_up = threading.Event()
    sup = Supervisor(make_settings(), [str(tmp_path / "no-such-python"), "-m", "connector", "worker"],
                     on_give_up=gave_up.set)
    sup.start()
    try:
        assert gave_up.wait(10) and sup.gave_up
    finally:
        sup.stop()


def test_serve_supervised_keeps_the_servers_exit_code(tmp_path: Path):
    with pytest.raises(SystemExit) as exited:
        serve_supervised(lambda: sys.exit(4), None)
    assert exited.value.code == 4
    serve_supervised(lambda: None, None)  # a server that returns: serve returns too
