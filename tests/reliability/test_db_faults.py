"""Scenario 4, database faults: a private PostgreSQL is stopped (-m immediate, -m fast) under a stream of deliveries.

Real processes: the private PostgreSQL (initdb/pg_ctl), `nc-connector serve` (2 web processes + its sync worker)
and the Jira sandbox. Several client threads send signed deliveries (distinct NCs, updates, comments, duplicates)
and retry a 503 with the same webhook-id, as a Standard Webhooks sender would. Every request is recorded with its
send time, answer and answer time, so the outage windows can be checked: while the database is down nothing is
acknowledged (503 + Retry-After only), every 2xx matches a committed row, and at the end every acknowledged change
is in Jira exactly once; the web processes and the worker keep their PIDs through the outage.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, func, select, text

from connector import db
from connector.models import Delivery, Fingerprint
from tests.helpers import signed
from tests.processes import drained, free_port, running
from tests.reliability.figures import Figures, report, soak_factor
from tests.reliability.pg_instance import PgInstance, private_postgres
from tests.sandbox_client import Sandbox, connector_env, jira_writes

pytestmark = pytest.mark.slow

DATABASE = "nc_connector"
PHASE_SECONDS = 3.0  # sending with the database up, before, between and after the outages
DOWN_SECONDS = 3.0  # sending while it is down
CLIENTS = 4
NCS_PER_CLIENT = 4
PACE_SECONDS = 0.03  # between one client's deliveries
RETRY_PAUSE_SECONDS = 0.2  # a 503 says Retry-After: 5; the test retries sooner to stay bounded
SEND_TIMEOUT = 15.0
DRAIN_TIMEOUT = 40.0
# A claim whose sync the outage cut off stays `processing` (the worker cannot re-queue it while the database is
# down); the same worker takes it again as soon as the database is back, so the default lease (120 s) is kept
# here to show that no NC waits for it.
LEASE = "120s"
BASE_TIME = datetime(2031, 3, 1, 8, 0, tzinfo=UTC)
STATUS_IN_JIRA = {"open": "To Do", "under_investigation": "In Progress", "closed": "Done"}
PRIORITY_IN_JIRA = {"minor": "Low", "major": "High", "critical": "Highest"}
SEVERITIES = ("minor", "major", "critical")


# --------------------------------------------------------------------------- processes


@pytest.fixture
def pg() -> Iterator[PgInstance]:
    """The private server, with a migrated database of ours; stopped and removed also when the test fails."""
    with private_postgres() as instance:
        admin = db.make_engine(instance.url(), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{DATABASE}"'))
        finally:
            admin.dispose()
        yield instance


@pytest.fixture
def db_engine(pg: PgInstance) -> Iterator[Engine]:
    engine = db.make_engine(pg.url(DATABASE))
    yield engine
    engine.dispose()


def pg_env(pg: PgInstance, sandbox: Sandbox) -> dict[str, str]:
    return connector_env(pg.url(DATABASE), sandbox, NC_CONNECTOR_JIRA_TIMEOUT="5", NC_CONNECTOR_WORKER_LEASE=LEASE,
                         NC_CONNECTOR_JIRA_SEARCH_LAG="2s")


def db_upgrade(env: dict[str, str]) -> None:
    """`nc-connector db upgrade` against the private server, as an operator would run it."""
    done = subprocess.run([sys.executable, "-m", "connector", "db", "upgrade"], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def children_of(pid: int) -> dict[int, str]:
    """PID -> command line of the direct children of `pid` (gunicorn's web processes, the sync worker)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except (OSError, ValueError, IndexError):
            continue
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def serve_family(serve_pid: int, web_processes: int, timeout: float = 30) -> dict[int, str]:
    """Wait until serve has its gunicorn web processes and its sync worker child; return them."""
    deadline = time.monotonic() + timeout
    while True:
        family = children_of(serve_pid)
        workers = [p for p, cmd in family.items() if cmd.endswith("connector worker")]
        if len(workers) == 1 and len(family) == web_processes + 1:
            return family
        if time.monotonic() > deadline:
            raise TimeoutError(f"serve {serve_pid} has children {family}")
        time.sleep(0.1)


# --------------------------------------------------------------------------- the senders


@dataclass
class Exchange:
    """One HTTP request to the receiver: what was sent, when, and what came back when."""

    nc_id: str
    body: bytes
    webhook_id: str
    intended_duplicate: bool
    sent: float
    answered: float = 0.0
    status: int = 0  # 0: no HTTP answer at all
    retry_after: str | None = None
    answer: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass
class NcTrack:
    """What one client has had acknowledged for one NC: the expected final state in Jira."""

    nc_id: str
    events: int = 0
    last_acked: dict[str, Any] | None = None
    comments: list[str] = field(default_factory=list)  # bodies of acknowledged comments
    acked_late: int = 0  # first acknowledgement was "duplicate": an earlier 503'd attempt had committed


def make_event(nc_id: str, n: int, close: bool = False) -> dict[str, Any]:
    """The NC's n-th change, one second after the previous; every third one carries a comment."""
    moment = (BASE_TIME + timedelta(seconds=n)).isoformat().replace("+00:00", "Z")
    payload: dict[str, Any] = {
        "eventType": "nc.created" if n == 0 else "nc.updated", "ncId": nc_id, "timestamp": moment,
        "title": f"{nc_id} revision {n}", "description": f"Change {n} of {nc_id}.",
        "status": "open" if n == 0 else "under_investigation", "severity": SEVERITIES[n % 3],
        "owner": "dana@example.com", "url": f"https://app.qualio.com/quality-events/events/{nc_id[-3:]}",
    }
    if n and n % 3 == 0:
        payload.update(eventType="nc.comment_added", changedFields=["comments"],
                       comment={"id": f"c-{nc_id}-{n}", "author": "sam@example.com", "createdAt": moment,
                                "body": f"Comment {n} on {nc_id}."})
    if close:  # only nc.comment_added posts a comment
        payload.pop("comment", None)
        payload.update(eventType="nc.closed", status="closed", changedFields=["status"])
    return payload


class Senders:
    """CLIENTS threads, each owning NCS_PER_CLIENT NCs, sending round-robin until told to stop."""

    def __init__(self, base: str, seed: int, max_per_client: int) -> None:
        self.base = base
        self.exchanges: list[Exchange] = []
        self.stop = threading.Event()
        self.give_up_at = time.monotonic() + 3600.0
        self.failures: list[str] = []
        self.max_per_client = max_per_client
        self.tracks = [[NcTrack(f"NC-2031-{c * 10 + k + 100:03d}") for k in range(NCS_PER_CLIENT)]
                       for c in range(CLIENTS)]
        self.threads = [threading.Thread(target=self._client, args=(c, random.Random(seed + c)), daemon=True,
                                         name=f"sender-{c}") for c in range(CLIENTS)]

    @property
    def all_tracks(self) -> list[NcTrack]:
        return [t for tracks in self.tracks for t in tracks]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self, timeout: float = 60) -> None:
        self.stop.set()
        self.give_up_at = time.monotonic() + timeout / 2
        for thread in self.threads:
            thread.join(timeout)
        assert not any(t.is_alive() for t in self.threads), "a sender thread did not finish"
        assert not self.failures, self.failures

    def post(self, nc_id: str, body: bytes, webhook_id: str, intended_duplicate: bool = False) -> Exchange:
        exchange = Exchange(nc_id, body, webhook_id, intended_duplicate, sent=time.monotonic())
        try:
            answer = requests.post(f"{self.base}/webhooks/qualio", data=body,
                                   headers=signed(body, webhook_id=webhook_id), timeout=SEND_TIMEOUT)
            exchange.status = answer.status_code
            exchange.retry_after = answer.headers.get("Retry-After")
            exchange.answer = answer.json() if "json" in answer.headers.get("Content-Type", "") else {}
        except (requests.RequestException, ValueError) as exc:
            exchange.error = f"{type(exc).__name__}: {exc}"
        exchange.answered = time.monotonic()
        self.exchanges.append(exchange)
        return exchange

    def deliver(self, track: NcTrack, payload: dict[str, Any]) -> bool:
        """Send one change until it is acknowledged (the same webhook-id on every retry)."""
        body = json.dumps(payload).encode()
        webhook_id = f"msg_{uuid.uuid4().hex}"
        while time.monotonic() < self.give_up_at:
            exchange = self.post(track.nc_id, body, webhook_id)
            if exchange.status in (200, 202):
                track.events += 1
                track.last_acked = payload
                track.acked_late += exchange.status == 200
                if "comment" in payload:
                    track.comments.append(payload["comment"]["body"])
                return True
            if exchange.status != 503:
                self.failures.append(f"{track.nc_id}: {exchange.status} {exchange.error} {exchange.answer}")
                return False
            time.sleep(RETRY_PAUSE_SECONDS)
        self.failures.append(f"{track.nc_id}: change {track.events} never acknowledged")
        return False

    def _client(self, index: int, rng: random.Random) -> None:
        tracks = self.tracks[index]
        try:
            for turn in range(self.max_per_client):
                if self.stop.is_set():
                    break
                track = tracks[turn % len(tracks)]
                payload = make_event(track.nc_id, track.events)
                if not self.deliver(track, payload):
                    return
                body = json.dumps(payload).encode()
                roll = rng.random()
                if roll < 0.2:  # the sender's at-least-once copy: same content, a new webhook-id
                    self.post(track.nc_id, body, f"msg_{uuid.uuid4().hex}", intended_duplicate=True)
                elif roll < 0.3:  # the same content re-serialised by a proxy
                    self.post(track.nc_id, json.dumps(payload, indent=1, sort_keys=True).encode(),
                              f"msg_{uuid.uuid4().hex}", intended_duplicate=True)
                time.sleep(PACE_SECONDS)
            for track in tracks[::2]:  # close every other NC once the stream is over
                if track.last_acked is not None and not self.deliver(track, make_event(track.nc_id, track.events,
                                                                                        close=True)):
                    return
        except Exception as exc:  # a bug in the test itself: report it, do not hang
            self.failures.append(f"sender {index}: {type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------- checks


@dataclass
class Outage:
    mode: str
    stopping: float  # monotonic: pg_ctl stop called
    down: float  # pg_ctl stop returned: the server is gone
    restarting: float  # pg_ctl start called
    up: float  # pg_ctl start returned
    up_wall: datetime


def outage_problems(exchanges: list[Exchange], outages: list[Outage]) -> tuple[list[str], list[int]]:
    """Requests sent after the server was gone and answered before it was restarted: 503 only."""
    problems: list[str] = []
    inside: list[int] = []
    for outage in outages:
        window = [e for e in exchanges if e.sent >= outage.down and e.answered <= outage.restarting]
        inside.append(len(window))
        for e in window:
            if e.status != 503:
                problems.append(f"{e.nc_id}: {e.status} while the database was down ({outage.mode}) {e.answer}")
    return problems, inside


def answer_problems(exchanges: list[Exchange]) -> list[str]:
    problems: list[str] = []
    for e in exchanges:
        if e.status == 0:
            problems.append(f"{e.nc_id}: no answer: {e.error}")
        elif e.status not in (200, 202, 503):
            problems.append(f"{e.nc_id}: unexpected {e.status} {e.answer}")
        elif e.status == 503 and not (e.retry_after or "").isdigit():
            problems.append(f"{e.nc_id}: 503 without a usable Retry-After ({e.retry_after!r})")
    return problems


def unstored_acknowledgements(engine: Engine, exchanges: list[Exchange]) -> tuple[list[str], int]:
    """Every 2xx must match a committed row: 202 -> its delivery (same bytes), 200 -> the fingerprint it names."""
    with engine.connect() as conn:
        deliveries = {row.id: row for row in conn.execute(select(Delivery.id, Delivery.fingerprint, Delivery.payload))}
        fingerprints = set(conn.execute(select(Fingerprint.fingerprint)).scalars())
    missing: list[str] = []
    accepted = Counter(e.answer.get("fingerprint") for e in exchanges if e.status == 202)
    doubled = sum(n - 1 for n in accepted.values() if n > 1)  # one content accepted twice: dedup failed
    for e in exchanges:
        if e.status == 202:
            row = deliveries.get(e.answer.get("deliveryId", -1))
            if row is None or row.fingerprint != e.answer.get("fingerprint") or row.payload != e.body.decode():
                missing.append(f"{e.nc_id}: 202 {e.answer} has no matching committed delivery")
        elif e.status == 200 and e.answer.get("fingerprint") not in fingerprints:
            missing.append(f"{e.nc_id}: 200 {e.answer} has no committed fingerprint")
    return missing, doubled


def jira_problems(issues: list[dict[str, Any]], tracks: list[NcTrack]) -> tuple[list[str], list[str]]:
    """(lost, doubled): each acknowledged NC has one issue in its last acknowledged state, each comment once."""
    by_nc: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for issue in issues:
        for label in issue["fields"]["labels"]:
            if label.startswith("qualio-nc-"):
                by_nc[label.removeprefix("qualio-nc-")].append(issue)
    lost: list[str] = []
    doubled: list[str] = []
    known = {t.nc_id for t in tracks}
    doubled += [f"issue {i['key']} for an NC never sent" for nc, found in by_nc.items() if nc not in known
                for i in found]
    for track in tracks:
        found = by_nc.get(track.nc_id, [])
        if track.last_acked is None:
            if found:
                doubled.append(f"{track.nc_id}: issue without an acknowledged delivery")
            continue
        if not found:
            lost.append(f"{track.nc_id}: no Jira issue")
            continue
        if len(found) > 1:
            doubled.append(f"{track.nc_id}: {len(found)} issues {[i['key'] for i in found]}")
        fields = found[0]["fields"]
        last = track.last_acked
        expected = {"summary": f"[{track.nc_id}] {last['title']}", "status": STATUS_IN_JIRA[last["status"]],
                    "priority": PRIORITY_IN_JIRA[last["severity"]]}
        actual = {"summary": fields["summary"], "status": fields["status"]["name"],
                  "priority": fields["priority"]["name"]}
        if actual != expected:
            lost.append(f"{track.nc_id}: Jira has {actual}, last acknowledged {expected}")
        bodies = [c["body"] for c in fields["comment"]["comments"]]
        for comment in track.comments:
            count = sum(comment in body for body in bodies)
            if count == 0:
                lost.append(f"{track.nc_id}: comment {comment!r} missing")
            elif count > 1:
                doubled.append(f"{track.nc_id}: comment {comment!r} posted {count} times")
        if len(bodies) > len(track.comments):
            doubled.append(f"{track.nc_id}: {len(bodies)} comments in Jira, {len(track.comments)} acknowledged")
    return lost, doubled


def probe(url: str) -> int:
    try:
        return requests.get(url, timeout=10).status_code
    except requests.RequestException:
        return 0


# --------------------------------------------------------------------------- scenario 4


def test_database_outages_under_load_lose_and_double_nothing(pg, db_engine, sandbox, tmp_path):
    """Stop the database (-m immediate, then -m fast) under a stream of deliveries: 503 only while it is down,
    every acknowledged change stored and in Jira exactly once, no process restarted, the worker resumes."""
    started = time.monotonic()
    env = pg_env(pg, sandbox)
    db_upgrade(env)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    modes = [("immediate", "fast")[k % 2] for k in range(2 * soak_factor())]
    senders = Senders(base, seed=4, max_per_client=400 * soak_factor())
    outages: list[Outage] = []
    probes: list[tuple[str, int, int]] = []
    with running(["serve", "--port", str(port), "--workers", "2"], env, tmp_path / "serve.log",
                 ready_url=f"{base}/readyz") as serve:
        family = serve_family(serve.pid, web_processes=2)
        try:
            senders.start()
            time.sleep(PHASE_SECONDS)
            for mode in modes:
                stopping = time.monotonic()
                pg.stop(mode)
                down = time.monotonic()
                time.sleep(DOWN_SECONDS / 3)
                probes.append((mode, probe(f"{base}/healthz"), probe(f"{base}/readyz")))
                time.sleep(DOWN_SECONDS * 2 / 3)
                assert alive(serve.pid) and all(alive(p) for p in family), "a process died during the outage"
                restarting = time.monotonic()
                pg.start()
                outages.append(Outage(mode, stopping, down, restarting, time.monotonic(), datetime.now(UTC)))
                time.sleep(PHASE_SECONDS)
        finally:
            if not pg.running():  # a failure mid-outage: let the senders end quickly
                pg.start()
            senders.finish()
        drained(db_engine, DRAIN_TIMEOUT)
        after = children_of(serve.pid)
        serve_alive = alive(serve.pid)
    seconds = time.monotonic() - started

    exchanges = senders.exchanges
    tracks = senders.all_tracks
    issues = sandbox.issues()
    stats = sandbox.stats()
    unstored, doubled_accepts = unstored_acknowledgements(db_engine, exchanges)
    lost_in_jira, doubled_in_jira = jira_problems(issues, tracks)
    with db_engine.connect() as conn:
        statuses = dict(conn.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
        finished = list(conn.execute(select(Delivery.finished_at).where(Delivery.status == "done")).scalars())
    in_outage_problems, in_window = outage_problems(exchanges, outages)
    acknowledged = [e for e in exchanges if e.status in (200, 202)]
    figures = Figures(
        scenario="database faults", sent=len(exchanges), acknowledged=len(acknowledged),
        duplicates=sum(e.status == 200 for e in exchanges), jira_issues=len(issues), jira_writes=jira_writes(stats),
        faults=len(outages), lost=len(unstored) + len(lost_in_jira), doubled=doubled_accepts + len(doubled_in_jira),
        seconds=seconds,
        note=(f"{'+'.join(modes)}; 503 {sum(e.status == 503 for e in exchanges)}, "
              f"in outage windows {in_window}; changes {sum(t.events for t in tracks)}, "
              f"acked as duplicate after a 503 {sum(t.acked_late for t in tracks)}; "
              f"deliveries {statuses}"))
    report(figures)

    assert answer_problems(exchanges) == []
    assert in_outage_problems == []
    assert all(n >= CLIENTS for n in in_window), f"too few requests inside the outage windows: {in_window}"
    assert all(health == 200 and ready == 503 for _, health, ready in probes), probes
    assert unstored == [] and lost_in_jira == [], (unstored + lost_in_jira)[:20]
    assert doubled_accepts == 0 and doubled_in_jira == [], doubled_in_jira[:20]
    assert figures.lost == 0 and figures.doubled == 0
    assert set(statuses) <= {"done", "ignored", "superseded"}, statuses
    # No restarts: the serve process, its gunicorn web processes and its worker are the ones we started.
    assert serve_alive and after == family, (family, after)
    # The worker resumed after each outage, not only at the end: it finished deliveries before the next stop.
    ends = [o.up_wall for o in outages[1:]] + [datetime.now(UTC)]
    for outage, end in zip(outages, ends, strict=True):
        assert any(outage.up_wall <= f <= end for f in finished if f), f"no sync after the {outage.mode} outage"


IN_FLIGHT = {"create": "/rest/api/2/issue", "comment": "/rest/api/2/issue/*/comment"}


def in_flight(sandbox: Sandbox, path: str, timeout: float = 20) -> dict[str, Any]:
    """The one Jira request to `path`, once the sandbox has it (answered or not)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sandbox.requests_log(method="POST", path=path)["requests"]
        if found:
            assert len(found) == 1, found
            return found[0]
        time.sleep(0.02)
    raise TimeoutError(f"no POST {path} reached Jira in {timeout}s")


@pytest.mark.parametrize(("call", "mode"), [("create", "immediate"), ("comment", "fast")])
def test_database_down_while_worker_waits_on_jira(call, mode, pg, db_engine, sandbox, tmp_path):
    """The database goes away while the worker's create (or comment) call is in flight, and comes back:
    the call is not repeated (the issue is adopted by its marker label, the comment found by its marker)."""
    started = time.monotonic()
    env = pg_env(pg, sandbox)
    db_upgrade(env)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    senders = Senders(base, seed=44, max_per_client=0)
    first, second = NcTrack("NC-2031-901"), NcTrack("NC-2031-902")
    path = IN_FLIGHT[call]
    # Jira takes 3 s over the call (and applies it); the database is stopped meanwhile.
    sandbox.faults(faults=[{"kind": "slow", "seconds": 3, "method": "POST", "path": path}])
    with running(["serve", "--port", str(port), "--workers", "1"], env, tmp_path / "serve.log",
                 ready_url=f"{base}/readyz") as serve:
        family = serve_family(serve.pid, web_processes=1)
        assert senders.deliver(first, make_event(first.nc_id, 0))
        if call == "comment":
            assert senders.deliver(first, make_event(first.nc_id, 3))  # every third change carries a comment
        assert in_flight(sandbox, path)["answered"] is None, "Jira answered before the database was stopped"
        stopping = time.monotonic()
        pg.stop(mode)
        down = time.monotonic()
        update, other = make_event(first.nc_id, 4), make_event(second.nc_id, 0)
        during = [senders.post(first.nc_id, json.dumps(update).encode(), "msg_update_901"),
                  senders.post(second.nc_id, json.dumps(other).encode(), "msg_create_902")]
        deadline = time.monotonic() + 10
        while in_flight(sandbox, path)["answered"] is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # the worker now fails to record the call's result, and fails to re-queue the claim
        assert alive(serve.pid) and all(alive(p) for p in family)
        restarting = time.monotonic()
        pg.start()
        outage = Outage(mode, stopping, down, restarting, time.monotonic(), datetime.now(UTC))
        senders.give_up_at = time.monotonic() + 20
        assert senders.deliver(first, update) and senders.deliver(second, other)
        drained(db_engine, DRAIN_TIMEOUT)
        after = children_of(serve.pid)
        serve_alive = alive(serve.pid)
    seconds = time.monotonic() - started
    log = (tmp_path / "serve.log").read_text(errors="replace")

    exchanges = senders.exchanges
    issues = sandbox.issues()
    calls = sandbox.requests_log(method="POST", path=path)["requests"]
    unstored, doubled_accepts = unstored_acknowledgements(db_engine, exchanges)
    lost_in_jira, doubled_in_jira = jira_problems(issues, [first, second])
    in_outage_problems, in_window = outage_problems(exchanges, [outage])
    figures = Figures(
        scenario=f"database faults mid-{call}", sent=len(exchanges),
        acknowledged=sum(e.status in (200, 202) for e in exchanges), duplicates=sum(e.status == 200 for e in exchanges),
        jira_issues=len(issues), jira_writes=jira_writes(sandbox.stats()), faults=1,
        lost=len(unstored) + len(lost_in_jira), doubled=doubled_accepts + len(doubled_in_jira), seconds=seconds,
        note=f"-m {mode}; POST {path} sent {len(calls)}; during the outage {[e.status for e in during]}")
    report(figures)

    assert [e.status for e in during] == [503, 503] and in_window == [2]
    assert answer_problems(exchanges) == [] and in_outage_problems == []
    assert unstored == [] and lost_in_jira == [] and doubled_accepts == 0 and doubled_in_jira == [], (
        unstored + lost_in_jira + doubled_in_jira)
    assert figures.lost == 0 and figures.doubled == 0
    assert "sync failed unexpectedly" in log, "the outage did not cut the sync off"
    if call == "create":
        creates = [c for c in calls if f"qualio-nc-{first.nc_id}" in json.dumps(c["body"])]
        assert len(creates) == 1, "the cut-off create was sent again"
        assert "adopted existing Jira issue" in log, "the retry did not find the issue created before the outage"
    else:
        assert len(calls) == 1, "the cut-off comment was posted again"
    assert serve_alive and after == family, (family, after)
