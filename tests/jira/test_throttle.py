"""Jira's rate limits across workers (connector.jira.throttle): Retry-After shared, careful mode single-flight.

On a real SQLite file and the real PostgreSQL database; Jira is the in-memory fake for the
bookkeeping, the sandbox over loopback where timing matters, and real worker processes for the
whole story.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from connector import db, throttles
from connector.jira.gateway import JiraClientGateway, JiraError, Pressure
from connector.jira.throttle import CAREFUL, PAUSE, AdvisoryLock, FileLock, JiraThrottle, LockBusy, Paused
from connector.sandbox import RequestRecord, RunningSandbox, start_in_thread
from tests.conftest import load_fixture
from tests.fake_jira import FakeIssue, FakeJira
from tests.helpers import body_of, signed
from tests.processes import drained, free_port, running
from tests.sandbox_client import connector_env, running_sandbox

NEAR_LIMIT = Pressure(status=200, near_limit=True, remaining=3, reason=None)


@pytest.fixture
def throttle(engine: Engine) -> Iterator[JiraThrottle]:
    made = JiraThrottle(engine, lock_wait=5)
    yield made
    made.close()


def careful_for(engine: Engine) -> float:
    return throttles.throttled(engine, CAREFUL)[CAREFUL]


# -- the bookkeeping ---------------------------------------------------------------------------------


def test_near_limit_turns_careful_mode_on_for_every_worker(engine, throttle):
    jira = FakeJira()
    jira.issues["QA-1"] = jira_issue()
    jira.pressure_on["get_issue"] = NEAR_LIMIT
    with throttle.call(jira) as gateway:
        gateway.get_issue("QA-1")
    assert 25 < careful_for(engine) <= 30 and throttles.paused_for(engine, PAUSE) == 0
    with throttle.call(jira) as gateway:  # a call without pressure leaves careful mode as it is
        gateway.get_issue("QA-1")
    assert 25 < careful_for(engine) <= 30


def test_a_calm_answer_turns_nothing_on(engine, throttle):
    jira = FakeJira()
    jira.issues["QA-1"] = jira_issue()
    with throttle.call(jira) as gateway:
        gateway.get_issue("QA-1")
    assert throttles.throttled(engine, PAUSE, CAREFUL) == {PAUSE: 0.0, CAREFUL: 0.0}


@pytest.mark.parametrize(("status", "retry_after", "pause", "careful"), [
    (429, 20.0, 20, 60),  # careful mode lasts three times the Retry-After when that is longer than 30 s
    (503, 2.0, 2, 30),
    (429, None, 0, 30),  # rate limited without saying for how long: careful, no shared pause
    (503, None, 0, 0),  # plain unavailability is no rate-limit signal
])
def test_an_error_answer_shares_its_retry_after_and_turns_careful_mode_on(engine, throttle, status, retry_after,
                                                                          pause, careful):
    jira = FakeJira()
    jira.fail_next["find_issues_by_label"] = [JiraError("no", status=status, retry_after=retry_after,
                                                        retryable=True)]
    with pytest.raises(JiraError), throttle.call(jira) as gateway:
        gateway.find_issues_by_label("qualio-nc-1", "QA")
    waits = throttles.throttled(engine, PAUSE, CAREFUL)
    assert pause - 2 < waits[PAUSE] <= pause or waits[PAUSE] == pause == 0
    assert careful - 2 < waits[CAREFUL] <= careful or waits[CAREFUL] == careful == 0


def test_no_call_during_a_retry_after(engine, throttle):
    jira = FakeJira()
    throttles.pause(engine, PAUSE, 10)
    with pytest.raises(Paused) as paused, throttle.call(jira) as gateway:
        gateway.get_issue("QA-1")
    assert 8 < paused.value.wait <= 10 and jira.calls == []


def jira_issue() -> FakeIssue:
    return FakeIssue("QA-1", {"summary": "x", "labels": []})


# -- the locks ---------------------------------------------------------------------------------------


HOLD_FLOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(60)
"""


def test_the_sqlite_lock_file_excludes_other_processes_and_dies_with_its_holder(tmp_path):
    path = tmp_path / "nc-connector.db.jira-lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_FLOCK, str(path)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        lock = FileLock(path, wait=0.3)
        started = time.monotonic()
        with pytest.raises(LockBusy), lock.hold():
            pass
        assert 0.3 <= time.monotonic() - started < 2
        holder.kill()  # a holder that dies lets go: the kernel closes its descriptor
        holder.wait(10)
        with lock.hold():
            pass
        lock.close()
    finally:
        holder.kill()
        holder.wait(10)


@pytest.mark.postgres
def test_the_postgresql_lock_excludes_other_sessions_and_ends_with_its_session(pg_url):
    engine = db.make_engine(pg_url)
    other = create_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)  # close() ends the session
    lock = AdvisoryLock(engine, wait=0.3)
    try:
        with other.connect() as holder:
            holder.execute(text("SELECT pg_advisory_lock(:space, :key)"), AdvisoryLock.KEYS)
            started = time.monotonic()
            with pytest.raises(LockBusy), lock.hold():
                pass
            assert 0.3 <= time.monotonic() - started < 2
        # The holder's session has ended (as when its process dies): the lock went with it.
        with lock.hold(), other.connect() as probe:  # held now: another session cannot take it
            taken = probe.execute(text("SELECT pg_try_advisory_lock(:space, :key)"), AdvisoryLock.KEYS)
            assert taken.scalar_one() is False
        with other.connect() as probe:  # and let go after the call
            taken = probe.execute(text("SELECT pg_try_advisory_lock(:space, :key)"), AdvisoryLock.KEYS)
            assert taken.scalar_one() is True
            probe.execute(text("SELECT pg_advisory_unlock(:space, :key)"), AdvisoryLock.KEYS)
    finally:
        lock.close()
        other.dispose()
        engine.dispose()


@pytest.mark.postgres
def test_the_postgresql_lock_reconnects_when_its_kept_connection_died(pg_url):
    engine = db.make_engine(pg_url)
    lock = AdvisoryLock(engine, wait=1)
    try:
        with lock.hold() as kept:
            kept_pid = kept.execute(text("SELECT pg_backend_pid()")).scalar_one()
        # The server drops the kept session (a restart, an idle timeout). Only that one, by its pid: a match on
        # pg_stat_activity's last query also found other locks' idle sessions of this test process.
        with engine.connect() as admin:
            assert admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": kept_pid}).scalar_one()
        with lock.hold() as renewed:
            assert renewed.execute(text("SELECT pg_backend_pid()")).scalar_one() != kept_pid
    finally:
        lock.close()
        engine.dispose()


# -- timing, over loopback ---------------------------------------------------------------------------


@pytest.fixture
def slow_jira() -> Iterator[RunningSandbox]:
    """The sandbox answering every request after 0.3 s, with one issue, QA-1."""
    with start_in_thread(latency=0.3) as sandbox:
        sandbox.state.create_issue({"project": {"key": "QA"}, "issuetype": {"name": "Task"}, "summary": "x"},
                                   "sandbox")
        yield sandbox


def two_workers(db_url: str, sandbox: RunningSandbox) -> list[tuple[JiraThrottle, JiraClientGateway]]:
    """Two workers' throttles and gateways, each on an engine (and a lock) of its own."""
    return [(JiraThrottle(db.make_engine(db_url), lock_wait=5), JiraClientGateway(sandbox.url, pat="sandbox-pat"))
            for _ in range(2)]


def run_together(calls: list[Callable[[], None]], stagger: float = 0.0) -> list[BaseException | None]:
    """Run each call in a thread of its own (started `stagger` seconds apart); their exceptions, in order."""
    outcomes: list[BaseException | None] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            calls[index]()
        except Exception as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
        time.sleep(stagger)
    for thread in threads:
        thread.join(20)
    return outcomes


def overlapping(records: list[RequestRecord]) -> bool:
    """Whether some request arrived before the one before it had been answered."""
    return any(later.time < (earlier.answered or 0) for earlier, later in itertools.pairwise(records))


def get_issue(throttle: JiraThrottle, gateway: JiraClientGateway) -> Callable[[], None]:
    def call() -> None:
        with throttle.call(gateway) as jira:
            jira.get_issue("QA-1")
    return call


def close_all(workers: list[tuple[JiraThrottle, JiraClientGateway]]) -> None:
    for throttle, gateway in workers:
        throttle.close()
        throttle.engine.dispose()
        gateway.close()


def test_without_pressure_calls_run_at_once_and_in_careful_mode_they_take_turns(db_url, engine, slow_jira):
    workers = two_workers(db_url, slow_jira)
    try:
        assert run_together([get_issue(*w) for w in workers]) == [None, None]
        calm = slow_jira.state.requests()
        assert len(calm) == 2 and overlapping(calm)  # no lock: both were at Jira at the same time
        throttles.pause(engine, CAREFUL, 30)
        assert run_together([get_issue(*w) for w in workers]) == [None, None]
        careful = slow_jira.state.requests()[2:]
        assert len(careful) == 2 and not overlapping(careful)  # one after the other
    finally:
        close_all(workers)


def test_in_careful_mode_a_call_waiting_for_the_lock_honours_the_retry_after_its_holder_got(db_url, engine,
                                                                                            slow_jira):
    """The holder's 429 is recorded before it lets go; the next holder reads it before sending anything."""
    slow_jira.state.add_fault("rate_limit", retry_after=3, method="GET")
    throttles.pause(engine, CAREFUL, 30)
    workers = two_workers(db_url, slow_jira)
    try:
        first, second = run_together([get_issue(*w) for w in workers], stagger=0.1)
        assert isinstance(first, JiraError) and first.status == 429
        assert isinstance(second, Paused) and 2 < second.wait <= 3
        assert [r.status for r in slow_jira.state.requests()] == [429]  # the second call was never sent
        assert slow_jira.state.retry_after_violations() == []
    finally:
        close_all(workers)


# -- the whole story: worker processes against a write budget ----------------------------------------


def send(base: str, payload: dict[str, Any]) -> int:
    body = body_of(payload)
    return requests.post(f"{base}/webhooks/qualio", data=body, headers=signed(body), timeout=10).status_code


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_worker_processes_under_a_write_budget_send_nothing_before_retry_after(db_url, engine, tmp_path):
    """Jira's budget (20 writes / 3 s) is hit again and again; not one request arrives inside a Retry-After
    (counted strictly: no allowance for calls in flight), and once careful mode is on the calls take turns.

    PostgreSQL only, the several-workers deployment (the SQLite lock file is tested across processes above)."""
    ncs = 40  # 80 writes: a create and a remote link each
    with running_sandbox(tmp_path / "sandbox.log") as sandbox:
        sandbox.faults(latency=0.02, budget={"limit": 20, "window": 3})
        env = connector_env(db_url, sandbox, NC_CONNECTOR_JIRA_SEARCH_LAG="2s", NC_CONNECTOR_LOG_LEVEL="INFO")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with running(["serve", "--no-worker", "--port", str(port), "--workers", "1"], env,
                     tmp_path / "serve.log", ready_url=f"{base}/readyz"), \
             running(["worker"], env, tmp_path / "worker-1.log"), running(["worker"], env, tmp_path / "worker-2.log"):
            started = time.monotonic()
            for n in range(ncs):
                assert send(base, {**load_fixture("nc_created"), "ncId": f"NC-2026-{n:03d}"}) == 202
            drained(engine, timeout=40)
            elapsed = time.monotonic() - started
        log = sandbox.requests_log()
        stats = sandbox.stats()
        issues = sandbox.issues()
    records = log["requests"]
    limited = [r for r in records if r["status"] == 429]
    print(f"\nbudget[{engine.dialect.name}]: {ncs} NCs in {elapsed:.1f}s, {len(records)} requests, "
          f"{len(limited)} 429s, violations {len(log['retryAfterViolations'])}")
    assert len(issues) == ncs and stats["faultsServed"]["budget"] == len(limited) > 0
    assert log["retryAfterViolations"] == []
    careful_from = limited[0]["answered"] + 0.5  # by then both workers know (calls on the wire aside)
    later = [r for r in records if r["time"] >= careful_from]
    turns = [(a["seq"], b["seq"]) for a, b in itertools.pairwise(later) if b["time"] < a["answered"]]
    assert later and turns == [], f"requests sent while another was at Jira, in careful mode: {turns[:5]}"
    warnings = [p for p in tmp_path.glob("worker-*.log") if "rate-limit pressure" in p.read_text()]
    assert warnings, "no worker logged careful mode"
