"""Scenario 9: a worker that stays alive, with real processes over loopback.

- SIGKILL the worker child of a running `serve` while it syncs (Jira slow over a create): serve starts a new
  one, the dead worker's claim is released at once, and both the NC in flight and a delivery sent right
  after the death reach Jira, one issue each. The figure: seconds from the death to that next delivery synced.
- Kill it again and again: serve gives up and exits with code 3 (for systemd to restart the unit).
- /readyz follows the supervised worker's heartbeat (SIGSTOP: 503 with the reason; SIGCONT: ready again), and
  a web process that the server restarts leaves the worker alone (under granian and under gunicorn).
- SIGKILL serve itself: its orphaned worker stops.
(SIGTERM mid-sync: test_sigterm.py.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, select

from connector import db
from connector.models import Delivery
from connector.ops.supervise import EXIT_GAVE_UP
from connector.sync import heartbeat
from tests.conftest import load_fixture
from tests.helpers import body_of, signed
from tests.processes import free_port, start, stop, wait_ready
from tests.reliability.figures import Figures, report
from tests.sandbox_client import Sandbox, connector_env, jira_writes

pytestmark = pytest.mark.slow

CREATE = "/rest/api/2/issue"
BEAT = "0.5s"  # heartbeat: stale after 1.5 s (tighter flaps on a loaded 2-core machine)


def env_for(db_url: str, sandbox: Sandbox, **extra: str) -> dict[str, str]:
    return connector_env(db_url, sandbox, NC_CONNECTOR_WORKER_HEARTBEAT=BEAT, NC_CONNECTOR_JIRA_SEARCH_LAG="5s",
                         NC_CONNECTOR_JIRA_TIMEOUT="10", NC_CONNECTOR_LOG_LEVEL="INFO", **extra)


@contextmanager
def serving(env: dict[str, str], log: Path, server: str = "granian") -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`serve --workers 1` (with its worker) until the block ends; ended by its PID (its process group)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(["serve", "--port", str(port), "--workers", "1", "--server", server], env, log)
    try:
        wait_ready(f"{base}/healthz", proc)
        yield proc, base
    finally:
        stop(proc)


def send(base: str, payload: dict[str, Any]) -> int:
    body = body_of(payload)
    return requests.post(f"{base}/webhooks/qualio", data=body, headers=signed(body), timeout=10).status_code


def nc(number: int) -> dict[str, Any]:
    return {**load_fixture("nc_created"), "ncId": f"NC-2026-{number:04d}", "title": f"Supervised {number}"}


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = 60, poll: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"{what}: not after {timeout}s")


def child_of(engine: Engine, serve: subprocess.Popen[bytes], other_than: int | None = None) -> heartbeat.WorkerInfo:
    """The heartbeat row of the worker this serve runs (its supervisor id carries serve's PID)."""
    def found() -> heartbeat.WorkerInfo | None:
        for worker in heartbeat.list_workers(engine):
            if (worker.supervisor or "").split(":")[1:2] == [str(serve.pid)] and worker.pid != other_than:
                return worker
        return None
    return wait_for("the supervised worker's heartbeat", found)  # type: ignore[no-any-return]


def status_of(engine: Engine, nc_id: str) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(Delivery.status).where(Delivery.nc_id == nc_id)).scalars())


def held(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(Delivery.id, Delivery.claimed_by)
                                 .where(Delivery.status == "processing")).all())


def create_in_flight(sandbox: Sandbox) -> bool:
    return any(r["fault"] == "slow" and r["answered"] is None
               for r in sandbox.requests_log(method="POST", path=CREATE)["requests"])


def create_sent(sandbox: Sandbox) -> bool:
    return any(r["fault"] == "slow" for r in sandbox.requests_log(method="POST", path=CREATE)["requests"])


def ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_sigkill_of_the_worker_child_restarts_it_and_deliveries_reach_jira(db_url, engine, sandbox, tmp_path):
    began = time.monotonic()
    with serving(env_for(db_url, sandbox), tmp_path / "serve.log") as (serve, base):
        first = child_of(engine, serve)
        assert ppid(first.pid) == serve.pid
        assert Path(f"/proc/{first.pid}/cmdline").read_bytes().split(b"\0")[-3:-1] == [b"connector", b"worker"]
        wait_ready(f"{base}/readyz", serve)
        sandbox.faults(faults=[{"kind": "slow", "seconds": 2, "method": "POST", "path": CREATE}])
        assert send(base, nc(1)) == 202
        # Killed while Jira takes 2 s over the create (on a loaded machine maybe just after its answer: one issue
        # is owed either way).
        wait_for("the create sent", lambda: create_sent(sandbox), poll=0.05)
        os.kill(first.pid, signal.SIGKILL)  # the child of the serve we started
        died = time.monotonic()
        assert send(base, nc(2)) == 202  # the next delivery, while no worker runs
        second = child_of(engine, serve, other_than=first.pid)
        restarted = time.monotonic() - died
        wait_for("the next delivery synced", lambda: status_of(engine, "NC-2026-0002") == ["done"])
        next_synced = time.monotonic() - died
        wait_for("the NC in flight synced", lambda: status_of(engine, "NC-2026-0001") == ["done"])
        in_flight_synced = time.monotonic() - died
        assert serve.poll() is None and second.supervisor == first.supervisor
        assert held(engine) == []
    summaries = sorted(i["fields"]["summary"] for i in sandbox.issues())
    assert summaries == ["[NC-2026-0001] Supervised 1", "[NC-2026-0002] Supervised 2"]  # one issue each
    assert len(sandbox.requests_log(method="POST", path=CREATE)["requests"]) == 2  # the killed create not repeated
    report(Figures(f"9 supervision ({engine.dialect.name})", sent=2, acknowledged=2, jira_issues=len(summaries),
                   jira_writes=jira_writes(sandbox.stats()),
                   crashes=1, seconds=time.monotonic() - began,
                   note=f"SIGKILL of serve's worker mid-create -> new worker beating {restarted:.2f}s, next "
                        f"delivery synced {next_synced:.2f}s, the NC in flight synced {in_flight_synced:.2f}s"))


SERVERS = pytest.mark.parametrize("server", ["granian", "gunicorn"])  # supervision must not depend on the server


@SERVERS
def test_serve_gives_up_when_its_worker_keeps_dying(server, sqlite_url, sandbox, tmp_path):
    engine = db.make_engine(sqlite_url)
    env = env_for(sqlite_url, sandbox, NC_CONNECTOR_WORKER_RESTART_LIMIT="3",
                  NC_CONNECTOR_WORKER_RESTART_WINDOW="60s")
    port = free_port()
    log = tmp_path / "serve.log"
    serve = start(["serve", "--port", str(port), "--workers", "1", "--server", server], env, log)
    try:
        killed: list[int] = []
        for _ in range(3):
            victim = child_of(engine, serve, other_than=killed[-1] if killed else None)
            os.kill(victim.pid, signal.SIGKILL)
            killed.append(victim.pid)
        code = serve.wait(30)
    finally:
        stop(serve)
        engine.dispose()
    text = log.read_text(errors="replace")
    assert code == EXIT_GAVE_UP, text[-2000:]
    assert "3 exits within 60s; giving up" in text
    assert len(set(killed)) == 3


@SERVERS
def test_readyz_follows_the_heartbeat_and_a_web_restart_spares_the_worker(server, sqlite_url, sandbox, tmp_path):
    engine = db.make_engine(sqlite_url)
    try:
        with serving(env_for(sqlite_url, sandbox), tmp_path / "serve.log", server) as (serve, base):
            worker = child_of(engine, serve)
            wait_for("ready", lambda: requests.get(f"{base}/readyz", timeout=5).status_code == 200)
            os.kill(worker.pid, signal.SIGSTOP)  # alive, but not beating
            try:
                stale = wait_for("503 once stale", lambda: (r := requests.get(f"{base}/readyz", timeout=5))
                                 .status_code == 503 and r.json(), timeout=10)  # (a 503 Response is falsy)
                assert f"(pid {worker.pid}) has not beaten for" in stale["detail"]
            finally:
                os.kill(worker.pid, signal.SIGCONT)
            wait_for("ready again", lambda: requests.get(f"{base}/readyz", timeout=5).status_code == 200)
            web = wait_for("a web process", lambda: [p for p in children(serve.pid) if p != worker.pid])
            os.kill(web[0], signal.SIGTERM)  # the server starts another; its exit must not stop the worker
            wait_for("a new web process", lambda: [p for p in children(serve.pid) if p not in (worker.pid, web[0])])
            time.sleep(1.0)
            assert child_of(engine, serve).pid == worker.pid and worker.pid in children(serve.pid)
            wait_for("ready with the same worker", lambda: requests.get(f"{base}/readyz", timeout=5).status_code == 200)
            assert child_of(engine, serve).pid == worker.pid
    finally:
        engine.dispose()


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if ppid(int(entry.name)) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return found


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    target = tmp_path / "nc-connector.db"
    target.write_bytes(sqlite_template.read_bytes())
    return f"sqlite:///{target}"


def test_the_worker_of_a_killed_serve_stops_itself(sqlite_url, sandbox, tmp_path):
    engine = db.make_engine(sqlite_url)
    group: int | None = None
    try:
        with serving(env_for(sqlite_url, sandbox), tmp_path / "serve.log") as (serve, _):
            group = serve.pid  # serve leads the process group of its web processes and its worker
            orphan = child_of(engine, serve).pid
            os.kill(serve.pid, signal.SIGKILL)  # serve only (OOM killer, say): no chance to stop its worker
            serve.wait(10)
            wait_for("the orphaned worker gone", lambda: not alive(orphan), timeout=15)
        assert "the serve that ran this worker is gone: stopping" in (tmp_path / "serve.log").read_text()
        assert heartbeat.list_workers(engine) == []  # a clean stop: its row is gone
    finally:
        # serve's web processes outlive it (the server's business, not the worker's): end them, by the group
        # serve led, which `stop` no longer reaches once serve itself is gone.
        if group is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        engine.dispose()


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
