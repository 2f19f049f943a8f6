"""Shared fixtures and helpers of the reliability suite.

- `sandbox`: the Jira sandbox as a real process (`nc-connector sandbox`), with its control API.
- `pg_engine`: this run's PostgreSQL database (tests/conftest.py `pg_url`), emptied per test.
- `cluster`: the connector's processes for one test (`serve --no-worker` instances and `worker`
  processes), every one ended by its PID when the test ends, also when it fails.
- `LoadGenerator`: several client threads (one requests.Session each) posting signed deliveries,
  bounded in attempts and time.
- `nc_story`: an NC's deliveries in phases (create; a same-second pair of distinct updates; a
  final update plus a comment in one second) and what Jira must show afterwards.
- `check_consistency`: compares Jira (the sandbox) and the tables with what was sent: lost and doubled.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, func, select

from connector import db
from connector.models import CommentLink, Delivery, Fingerprint, NcLink
from tests.conftest import truncate
from tests.helpers import signed
from tests.processes import drain, free_port, start, stop, wait_ready
from tests.reliability.figures import Figures, report
from tests.sandbox_client import MARKER_PREFIX, Sandbox, connector_env, jira_writes, running_sandbox

# --------------------------------------------------------------------------- the Jira sandbox


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with running_sandbox(tmp_path / "sandbox.log") as client:
        yield client


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    """This run's PostgreSQL database (migrated once per run), emptied for this test."""
    engine = db.make_engine(pg_url)
    truncate(engine)
    yield engine
    engine.dispose()


# --------------------------------------------------------------------------- the connector's processes


class Cluster:
    """Web instances and worker processes of one test; `close()` ends each by its PID."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.webs: list[subprocess.Popen[bytes]] = []
        self.bases: list[str] = []
        self.workers: list[subprocess.Popen[bytes]] = []  # one per slot; a restarted worker takes its slot
        self.worker_logs: dict[int, Path] = {}
        self.started_workers = 0

    def start_web(self, instances: int = 1, processes: int = 1, timeout: float = 60) -> list[str]:
        """`instances` separate `serve --no-worker --workers <processes>` on ports of their own."""
        new: list[tuple[str, subprocess.Popen[bytes]]] = []
        for _ in range(instances):
            port = free_port()
            log = self.log_dir / f"serve-{len(self.webs)}.log"
            proc = start(["serve", "--no-worker", "--workers", str(processes), "--port", str(port)], self.env, log)
            self.webs.append(proc)
            new.append((f"http://127.0.0.1:{port}", proc))
        for base, proc in new:  # started together, waited for together
            wait_ready(f"{base}/readyz", proc, timeout)
            self.bases.append(base)
        return [base for base, _ in new]

    def start_workers(self, count: int) -> None:
        for _ in range(count):
            self.workers.append(self._spawn_worker())

    def _spawn_worker(self) -> subprocess.Popen[bytes]:
        self.started_workers += 1
        log = self.log_dir / f"worker-{self.started_workers}.log"
        proc = start(["worker"], self.env, log)
        self.worker_logs[proc.pid] = log
        return proc

    def wait_workers_started(self, timeout: float = 30) -> bool:
        """Wait (bounded) until every current worker has logged "worker started" (needs LOG_LEVEL INFO)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            logs = [self.worker_logs[proc.pid] for proc in self.workers]
            if all(path.exists() and "worker started" in path.read_text(errors="replace") for path in logs):
                return True
            if not self.workers_alive():
                return False
            time.sleep(0.1)
        return False

    def worker_slot(self, pid: int) -> int | None:
        return next((slot for slot, proc in enumerate(self.workers) if proc.pid == pid), None)

    def crash_worker(self, slot: int) -> int:
        """SIGKILL the worker in `slot` (by its PID) and start a fresh one there; returns the killed PID."""
        victim = self.workers[slot]
        stop(victim, signal.SIGKILL)
        self.workers[slot] = self._spawn_worker()
        return victim.pid

    def workers_alive(self) -> bool:
        return all(proc.poll() is None for proc in self.workers)

    def drain(self, engine: Engine, timeout: float = 60) -> bool:
        """Wait (bounded) until no delivery is queued or processing; False on timeout or when a worker died."""
        return drain(engine, timeout, alive=self.workers_alive)

    def close(self) -> None:
        for proc in [*self.workers, *self.webs]:
            stop(proc)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of every process log, for a failure message."""
        out = []
        for path in sorted(self.log_dir.glob("*.log")):
            text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)


@pytest.fixture
def cluster(pg_url: str, pg_engine: Engine, sandbox: Sandbox, tmp_path: Path) -> Iterator[Cluster]:
    """The connector's processes on this test's emptied PostgreSQL database and sandbox; add to `cluster.env` first."""
    processes = Cluster(connector_env(pg_url, sandbox, NC_CONNECTOR_LOG_LEVEL="WARNING"), tmp_path)
    try:
        yield processes
    finally:
        processes.close()


# --------------------------------------------------------------------------- deliveries


@dataclass(frozen=True)
class Shot:
    """One HTTP delivery to send: the exact body and its webhook-id (signed at send time)."""

    body: bytes
    webhook_id: str
    target: int = 0  # index into the generator's base URLs (taken modulo their number)


def copies(payload: dict[str, Any], webhook_id: str, count: int = 3, target: int = 0) -> list[Shot]:
    """`count` copies of one delivery, as a sender's retries and a relay produce them.

    Copy 1 and 2: the same bytes and webhook-id (a sender's retry). Copy 3 onwards: the same
    content re-serialised (other key order, whitespace and escaping) under a new webhook-id, as a
    relay that re-signs would send it; the fingerprint of the canonical JSON still matches.
    """
    compact = json.dumps(payload).encode()
    shots = []
    for n in range(count):
        if n < 2:
            shots.append(Shot(compact, webhook_id, target + n))
        else:
            body = json.dumps(payload, sort_keys=True, indent=n - 1, ensure_ascii=False).encode()
            shots.append(Shot(body, f"{webhook_id}_relay{n}", target + n))
    return shots


@dataclass
class LoadResult:
    answers: Counter[int] = field(default_factory=Counter)  # final HTTP status per shot
    requests: int = 0  # HTTP requests that got an answer (retries included)
    errors: int = 0  # transport errors (each retried within the attempt budget)
    unanswered: int = 0  # shots that never got a 2xx answer
    seconds: float = 0.0

    @property
    def accepted(self) -> int:
        return self.answers[202]

    @property
    def duplicates(self) -> int:
        return self.answers[200]

    @property
    def acknowledged(self) -> int:
        return self.answers[200] + self.answers[202]


class LoadGenerator:
    """Posts shots from `threads` client threads, each with its own requests.Session.

    Bounded: each shot is tried at most `attempts` times (on a transport error or a 5xx), each
    request times out after `timeout` seconds, and nothing is started after `deadline` seconds.
    Shots are taken in order, so consecutive copies of one delivery are in flight together.
    """

    def __init__(self, bases: Sequence[str], threads: int = 12, timeout: float = 15.0, attempts: int = 3,
                 deadline: float = 240.0) -> None:
        self.bases = list(bases)
        self.threads = threads
        self.timeout = timeout
        self.attempts = attempts
        self.deadline = deadline
        self.result = LoadResult()
        self._lock = threading.Lock()

    def send(self, shots: Sequence[Shot]) -> LoadResult:
        """Send every shot (returns when all are answered or given up); adds to `self.result`."""
        started = time.monotonic()
        stop_at = started + self.deadline
        cursor = iter(range(len(shots)))

        def client() -> None:
            with requests.Session() as session:
                while time.monotonic() < stop_at:
                    with self._lock:
                        index = next(cursor, None)
                    if index is None:
                        return
                    self._shoot(session, shots[index], stop_at)

        workers = [threading.Thread(target=client, name=f"load-{n}", daemon=True)
                   for n in range(min(self.threads, len(shots)) or 1)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(max(0.0, stop_at - time.monotonic()) + self.timeout * self.attempts)
        with self._lock:
            self.result.seconds += time.monotonic() - started
        return self.result

    def _shoot(self, session: requests.Session, shot: Shot, stop_at: float) -> None:
        base = self.bases[shot.target % len(self.bases)]
        status = None
        for attempt in range(self.attempts):
            if attempt and time.monotonic() > stop_at:
                break
            try:
                answer = session.post(f"{base}/webhooks/qualio", data=shot.body,
                                      headers=signed(shot.body, webhook_id=shot.webhook_id), timeout=self.timeout)
            except requests.RequestException:
                with self._lock:
                    self.result.errors += 1
                time.sleep(0.2)
                continue
            status = answer.status_code
            with self._lock:
                self.result.requests += 1
            if status < 500:
                break
            time.sleep(float(answer.headers.get("Retry-After", "0.5")) / 5)
        with self._lock:
            self.result.answers[status or 0] += 1
            if status not in (200, 202):
                self.result.unanswered += 1


# --------------------------------------------------------------------------- NC stories


@dataclass(frozen=True)
class ExpectedNc:
    """What Jira must show for an NC at the end."""

    nc_id: str
    summary: str
    status: str | None = None
    priority: str | None = None
    comments: tuple[str, ...] = ()  # a text each comment's body contains, exactly once
    description_has: tuple[str, ...] = ()  # texts the description must contain


def nc_id(number: int, prefix: str = "NC-2026") -> str:
    return f"{prefix}-{number:04d}"


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


BASE_TIME = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)


def nc_story(nc: str, number: int, start_at: datetime = BASE_TIME, url: bool = False,
             ) -> tuple[list[list[dict[str, Any]]], ExpectedNc]:
    """The deliveries of one NC in phases (send a phase only once the one before is acknowledged).

    phase 0  nc.created: open, minor
    phase 1  two distinct changes in the same second: severity -> major, status -> under_investigation
    phase 2  in one second: the title changes, and a comment is added
    Jira afterwards: summary "[nc] Final title...", In Progress (under_investigation), priority High
    (major), both same-second changes in the description, the comment exactly once.
    """
    t0, t1, t2 = (stamp(start_at + timedelta(minutes=m)) for m in (0, 1, 2))
    created: dict[str, Any] = {"eventType": "nc.created", "ncId": nc, "timestamp": t0,
                               "title": f"Initial title {number}", "status": "open", "severity": "minor",
                               "description": f"Deviation {number} found in incoming inspection.",
                               "owner": "dana@example.com"}
    if url:
        created["url"] = f"https://acme.qualio.com/events/{nc}"
    severity = {"eventType": "nc.updated", "ncId": nc, "timestamp": t1, "severity": "major",
                "changedFields": ["severity"]}
    status = {"eventType": "nc.status_changed", "ncId": nc, "timestamp": t1, "status": "under_investigation",
              "changedFields": ["status"]}
    title = f"Final title {number} Größe ✓"
    final = {"eventType": "nc.updated", "ncId": nc, "timestamp": t2, "title": title, "changedFields": ["title"]}
    marker = f"marker-{nc}-c1"
    comment = {"eventType": "nc.comment_added", "ncId": nc, "timestamp": t2, "changedFields": ["comments"],
               "comment": {"id": f"{nc}-c1", "author": "sam@example.com", "createdAt": t2,
                           "body": f"Containment done for {nc} ({marker})."}}
    expected = ExpectedNc(nc, f"[{nc}] {title}", status="In Progress", priority="High", comments=(marker,),
                          description_has=("*Severity:* major", "*Qualio status:* under_investigation",
                                           f"Deviation {number} found"))
    return [[created], [severity, status], [final, comment]], expected


def nc_stories(count: int, prefix: str, url: bool = False) -> tuple[list[list[list[dict[str, Any]]]], list[ExpectedNc]]:
    """The stories of `count` NCs (`nc_story`, numbered from 0) and what Jira must show for each."""
    pairs = [nc_story(nc_id(number, prefix), number, url=url) for number in range(count)]
    return [story for story, _ in pairs], [wanted for _, wanted in pairs]


def phase_shots(stories: Sequence[list[list[dict[str, Any]]]], phase: int, copies_each: int = 3,
                shuffle: random.Random | None = None, targets: int = 1) -> list[Shot]:
    """Every delivery of `phase` of the stories, each as `copies_each` adjacent copies (in flight together)."""
    groups = []
    for story_index, story in enumerate(stories):
        if phase >= len(story):
            continue
        for delivery_index, payload in enumerate(story[phase]):
            webhook_id = f"msg_{payload['ncId']}_{phase}_{delivery_index}"
            target = (story_index + delivery_index) % max(1, targets)
            groups.append(copies(payload, webhook_id, copies_each, target))
    if shuffle is not None:
        shuffle.shuffle(groups)
    return [shot for group in groups for shot in group]


# --------------------------------------------------------------------------- checking


@dataclass
class Consistency:
    lost: int = 0
    doubled: int = 0
    problems: list[str] = field(default_factory=list)
    issues: int = 0
    jira_writes: int = 0
    faults_served: int = 0
    stats: dict[str, Any] = field(default_factory=dict)
    deliveries: dict[str, int] = field(default_factory=dict)  # by status
    fingerprints: int = 0
    times_seen: int = 0
    linked: int = 0
    comment_links: int = 0

    def problem(self, text: str, lost: int = 0, doubled: int = 0) -> None:
        self.lost += lost
        self.doubled += doubled
        self.problems.append(text)

    def summary(self, limit: int = 30) -> str:
        shown = self.problems[:limit]
        more = f"\n... and {len(self.problems) - limit} more" if len(self.problems) > limit else ""
        return "\n".join(shown) + more

    def report_figures(self, scenario: str, load: LoadResult, seconds: float, note: str, crashes: int = 0) -> None:
        """The scenario's figures: what the load generator sent and what this check found."""
        report(Figures(scenario=scenario, sent=load.requests, acknowledged=load.acknowledged,
                       duplicates=load.duplicates, jira_issues=self.issues, jira_writes=self.jira_writes,
                       crashes=crashes, faults=self.faults_served, lost=self.lost, doubled=self.doubled,
                       seconds=seconds, note=note))

    def assert_consistent(self, cluster: Cluster, drained: bool) -> None:
        """The queue was drained, nothing lost or doubled, no problem found; failures show the processes' logs."""
        details = f"{self.summary()}\n{cluster.log_tail()}"
        assert drained, f"queue not drained: {self.deliveries}\n{details}"
        assert self.lost == 0 and self.doubled == 0, details
        assert not self.problems, details


def check_consistency(engine: Engine, sandbox: Sandbox, expected: Sequence[ExpectedNc], *,
                      distinct: int | None = None, sightings: int | None = None,
                      finished: Sequence[str] = ("done",)) -> Consistency:
    """Jira and the tables against what was sent; counts lost and doubled (and lists every problem).

    lost: an NC without an issue, a final field value (summary, status, priority, description) not in Jira, a
    comment missing, a delivery not finished, a distinct delivery taken for a duplicate.
    doubled: a second issue for an NC, a comment posted twice, a duplicate stored as a new delivery.
    `distinct`: distinct payloads sent (fingerprints and deliveries expected); `sightings`: copies
    that were answered (the sum of times_seen expected).
    """
    result = Consistency()
    issues = sandbox.issues()
    result.stats = sandbox.stats()
    result.issues = len(issues)
    result.jira_writes = jira_writes(result.stats)
    result.faults_served = int(result.stats.get("faultsServedTotal", 0))
    by_nc: dict[str, list[dict[str, Any]]] = {}
    for issue in issues:
        markers = [lb[len(MARKER_PREFIX):] for lb in issue["fields"].get("labels") or []
                   if lb.startswith(MARKER_PREFIX)]
        if len(markers) != 1:
            result.problem(f"{issue['key']} carries {len(markers)} marker labels", doubled=1)
        for marker in markers:
            by_nc.setdefault(marker, []).append(issue)
    with engine.connect() as conn:
        links = {row.nc_id: row for row in conn.execute(select(NcLink.nc_id, NcLink.jira_key, NcLink.state))}
        result.deliveries = {status: int(n) for status, n in
                             conn.execute(select(Delivery.status, func.count()).group_by(Delivery.status))}
        result.fingerprints = int(conn.execute(select(func.count()).select_from(Fingerprint)).scalar_one())
        result.times_seen = int(conn.execute(select(func.coalesce(func.sum(Fingerprint.times_seen), 0)))
                                .scalar_one())
        result.linked = sum(1 for row in links.values() if row.state == "linked")
        comment_rows = conn.execute(select(CommentLink.nc_id, CommentLink.comment_key,
                                           CommentLink.jira_comment_id)).all()
        result.comment_links = sum(1 for row in comment_rows if row.jira_comment_id is not None)
    wanted = {nc.nc_id for nc in expected}
    for nc, found in sorted(by_nc.items()):
        if nc not in wanted:
            result.problem(f"issue(s) {[i['key'] for i in found]} for an NC never sent: {nc}", doubled=len(found))
    for nc in expected:
        found = by_nc.get(nc.nc_id, [])
        if not found:
            result.problem(f"{nc.nc_id}: no Jira issue", lost=1)
            continue
        if len(found) > 1:
            result.problem(f"{nc.nc_id}: {len(found)} Jira issues {[i['key'] for i in found]}",
                           doubled=len(found) - 1)
        link = links.get(nc.nc_id)
        if link is None or link.state != "linked" or link.jira_key not in {i["key"] for i in found}:
            result.problem(f"{nc.nc_id}: link row {tuple(link) if link else None} does not name its issue", lost=1)
        issue = next((i for i in found if link is not None and i["key"] == link.jira_key), found[0])
        fields = issue["fields"]
        if fields.get("summary") != nc.summary:
            result.problem(f"{nc.nc_id} ({issue['key']}): summary {fields.get('summary')!r}, "
                           f"expected {nc.summary!r}", lost=1)
        status = (fields.get("status") or {}).get("name")
        if nc.status is not None and status != nc.status:
            result.problem(f"{nc.nc_id} ({issue['key']}): status {status!r}, expected {nc.status!r}", lost=1)
        priority = (fields.get("priority") or {}).get("name")
        if nc.priority is not None and priority != nc.priority:
            result.problem(f"{nc.nc_id} ({issue['key']}): priority {priority!r}, expected {nc.priority!r}", lost=1)
        description = str(fields.get("description") or "")
        for text in nc.description_has:
            if text not in description:
                result.problem(f"{nc.nc_id} ({issue['key']}): description lacks {text!r}", lost=1)
        bodies = [str(c.get("body", "")) for i in found for c in (i["fields"].get("comment") or {}).get("comments", [])]
        for marker in nc.comments:
            seen = sum(marker in body for body in bodies)
            if seen == 0:
                result.problem(f"{nc.nc_id} ({issue['key']}): comment {marker} missing", lost=1)
            elif seen > 1:
                result.problem(f"{nc.nc_id} ({issue['key']}): comment {marker} posted {seen} times",
                               doubled=seen - 1)
    unfinished = {s: n for s, n in result.deliveries.items() if s not in finished}
    if unfinished:
        result.problem(f"deliveries not finished: {unfinished}", lost=sum(unfinished.values()))
    if result.linked != len(expected):
        result.problems.append(f"nc_links linked: {result.linked}, NCs: {len(expected)}")
    comments = sum(len(nc.comments) for nc in expected)
    if result.comment_links != comments or len(comment_rows) != comments:
        result.problems.append(f"comment_links: {len(comment_rows)} rows, {result.comment_links} with a Jira id; "
                               f"comments sent: {comments}")
    if distinct is not None:
        stored = sum(result.deliveries.values())
        if result.fingerprints < distinct:
            result.problem(f"fingerprints {result.fingerprints} < distinct payloads {distinct}: "
                           "a distinct delivery was taken for a duplicate", lost=distinct - result.fingerprints)
        elif result.fingerprints > distinct:
            result.problem(f"fingerprints {result.fingerprints} > distinct payloads {distinct}",
                           doubled=result.fingerprints - distinct)
        if stored > distinct:
            result.problem(f"deliveries {stored} > distinct payloads {distinct}: a duplicate was queued",
                           doubled=stored - distinct)
    if sightings is not None and result.times_seen != sightings:
        result.problems.append(f"sum(times_seen) {result.times_seen} != copies answered {sightings}")
    return result
