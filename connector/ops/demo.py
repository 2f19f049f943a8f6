"""`nc-connector demo`: the story that brought us here, played through real HTTP on the embedded default.

SQLite in a temporary directory, the Jira sandbox on a free loopback port (in this process),
`nc-connector serve` (web app + worker, a child process) on another. Signed deliveries arrive
2-3 times, two different changes share a second, a comment is redelivered, Jira has an outage
(503 with Retry-After) in the middle; last, a change made in Qualio whose webhook was lost is found by
reconcile against a Qualio stand-in (also in this process). Then a table of what happened. Leaves nothing
running.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func, select

from connector import db
from connector.budgets import SharedBudget
from connector.models import WAITING, Delivery, DeliveryStatus
from connector.qualio.client import QualioClient
from connector.qualio.reconcile import Reconciler
from connector.receive.signing import signed_headers
from connector.receive.webhook import WEBHOOK_PATH
from connector.sandbox import RunningSandbox, start_in_thread
from connector.sandbox.qualio import QualioState, RunningQualio
from connector.sandbox.qualio import start_in_thread as start_qualio

DEADLINE_SECONDS = 50.0
Say = Callable[[str], None]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _nc(nc_id: str, event: str, at: str, **fields: Any) -> dict[str, Any]:
    return {"eventType": event, "ncId": nc_id, "timestamp": at, **fields}


def story() -> list[tuple[str, list[tuple[dict[str, Any], int]]]]:
    """(phase, [(payload, copies sent)]): what Qualio sends, in order."""
    created = [
        _nc("NC-2025-001", "nc.created", "2025-01-05T09:00:00Z", title="Label printer misprints lot numbers",
            status="open", severity="major", owner="dana@example.com",
            url="https://app.qualio.com/quality-events/events/1001"),
        _nc("NC-2025-002", "nc.created", "2025-01-05T09:01:00Z", title="Torque wrench out of calibration",
            status="open", severity="minor", url="https://app.qualio.com/quality-events/events/1002"),
        _nc("NC-2025-003", "nc.created", "2025-01-05T09:02:00Z", title="Supplier CoA missing for lot 7731",
            status="open", severity="minor", url="https://app.qualio.com/quality-events/events/1003"),
        _nc("NCR-12", "nc.created", "2025-01-05T09:03:00Z", title="Cleaning log not signed off",
            status="open", severity="critical", url="https://app.qualio.com/quality-events/events/1012"),
    ]
    same_second = "2025-01-05T10:15:32Z"
    return [
        ("a burst of new NCs, each delivered 2-3 times", [(p, 3 if i % 2 == 0 else 2) for i, p in enumerate(created)]),
        ("two different changes to NC-2025-003 in the same second", [
            (_nc("NC-2025-003", "nc.status_changed", same_second, status="under_investigation",
                 changedFields=["status"]), 2),
            (_nc("NC-2025-003", "nc.updated", same_second, status="under_investigation", severity="major",
                 changedFields=["severity"]), 1),
        ]),
        ("a comment on NC-2025-002, redelivered", [
            (_nc("NC-2025-002", "nc.comment_added", "2025-01-05T10:20:00Z", changedFields=["comments"],
                 comment={"id": "c-1001", "author": "dana@example.com", "createdAt": "2025-01-05T10:20:00Z",
                          "body": "Wrench W-17 pulled from the line; recalibration booked."}), 3),
        ]),
        ("Jira outage (503, Retry-After: 2) while NCs move on", [
            (_nc("NC-2025-001", "nc.status_changed", "2025-01-05T11:00:00Z", status="under_investigation",
                 changedFields=["status"]), 2),
            (_nc("NCR-12", "nc.closed", "2025-01-05T11:05:00Z", status="closed", changedFields=["status"]), 3),
        ]),
    ]


@contextmanager
def _serving(env: dict[str, str], port: int, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`nc-connector serve` (gunicorn + worker child) in its own process group, ended by its PID."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "connector", "serve", "--port", str(port), "--workers", "2"],
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def _wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} after {timeout:.0f}s")


def _send_all(url: str, secret: str, batch: list[tuple[dict[str, Any], int]]) -> Counter[int]:
    """Send every payload `copies` times at once (a sender's retries reuse the webhook-id)."""
    jobs = []
    for payload, copies in batch:
        body = json.dumps(payload).encode()
        msg_id = f"msg_{uuid.uuid4().hex[:16]}"
        jobs += [(body, signed_headers(secret, msg_id, body)) for _ in range(copies)]

    def send(job: tuple[bytes, dict[str, str]]) -> int:
        body, headers = job
        return requests.post(url, data=body, headers={**headers, "Content-Type": "application/json"},
                             timeout=10).status_code

    with ThreadPoolExecutor(8) as pool:
        return Counter(pool.map(send, jobs))


def _settled(engine: Any) -> bool:
    with db.reader(engine).connect() as conn:
        waiting = conn.execute(select(func.count()).where(Delivery.status.in_(WAITING)))
        return int(waiting.scalar_one()) == 0


def run_demo(say: Say = print) -> int:
    """Play the story; print the table; 0 when every NC has exactly one issue and nothing is lost."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nc-connector-demo-") as tmp, start_in_thread() as sandbox, \
            start_qualio(_qualio_state()) as qualio:
        secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
        port = _free_port()
        db_url = f"sqlite:///{Path(tmp) / 'nc-connector.db'}"
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("NC_CONNECTOR_")},
               "NC_CONNECTOR_DATABASE_URL": db_url, "NC_CONNECTOR_WEBHOOK_SECRET": secret,
               "NC_CONNECTOR_JIRA_URL": sandbox.url, "NC_CONNECTOR_JIRA_PAT": sandbox.state.config.pat,
               "NC_CONNECTOR_JIRA_PROJECT": sandbox.state.config.project_key,
               "NC_CONNECTOR_WORKER_POLL_INTERVAL": "0.2s", "NC_CONNECTOR_RETRY_BASE": "1s",
               "NC_CONNECTOR_LOG_LEVEL": "WARNING", "NC_CONNECTOR_QUALIO_URL": qualio.url,
               "NC_CONNECTOR_QUALIO_API_KEY": qualio.state.api_key, "NC_CONNECTOR_RECONCILE_INTERVAL": "0"}
        say(f"Jira sandbox on {sandbox.url}; database {db_url}")
        base = f"http://127.0.0.1:{port}"
        with _serving(env, port, Path(tmp) / "serve.log") as proc:
            _wait_until(lambda: requests.get(f"{base}/readyz", timeout=1).ok, 30, "nc-connector did not start")
            say(f"nc-connector serving on {base} (pid {proc.pid}) with a sync worker")
            engine = db.make_engine(db_url)
            answers = _play(base, secret, sandbox, engine, say)
            found = _lost_webhook(qualio, engine, say)
            summary = {**_summary(answers, sandbox, engine), "reconciled": found}
            summary["ok"] = summary["ok"] and found == 1
            engine.dispose()
    say(_table(summary, time.monotonic() - started))
    return 0 if summary["ok"] else 1


def _play(base: str, secret: str, sandbox: RunningSandbox, engine: Any, say: Say) -> Counter[int]:
    answers: Counter[int] = Counter()
    for index, (phase, batch) in enumerate(story(), 1):
        if phase.startswith("Jira outage"):
            sandbox.state.add_fault("unavailable", 4, retry_after=2)
        got = _send_all(base + WEBHOOK_PATH, secret, batch)
        answers += got
        say(f"[{index}/5] {phase}: sent {sum(got.values())}, accepted {got[202]}, duplicates {got[200]}")
        _wait_until(lambda: _settled(engine), DEADLINE_SECONDS, "the queue did not drain")
    return answers


def _qualio_state() -> QualioState:
    """Qualio as the story leaves it: NCR-12 (the one NC of the story with a Qualio code) closed."""
    state = QualioState(api_key="demo-qualio-key")
    state.add_event("NCR", "closed", "Cleaning log not signed off", code="NCR-12",
                    at=datetime(2025, 1, 5, 11, 5, tzinfo=UTC))
    return state


def _lost_webhook(qualio: RunningQualio, engine: Any, say: Say) -> int:
    """NCR-12 is retitled in Qualio and its webhook never comes: reconcile finds it and the worker syncs it."""
    qualio.state.change("NCR-12", title="Cleaning log not signed off (night shift)")
    client = QualioClient(qualio.url, qualio.state.api_key, limiter=SharedBudget(engine, "qualio", 200))
    report = Reconciler(engine, client, ("NCR",)).run("cli")
    _wait_until(lambda: _settled(engine), DEADLINE_SECONDS, "the queue did not drain")
    f = report.figures
    say(f"[5/5] NCR-12 retitled in Qualio, its webhook lost: reconcile scanned {f.scanned}, changed {f.changed} "
        f"({f.requests} Qualio requests), queued as a delivery from reconcile, synced to Jira")
    return f.changed


def _summary(answers: Counter[int], sandbox: RunningSandbox, engine: Any) -> dict[str, Any]:
    stats = sandbox.state.stats()
    issues = requests.get(f"{sandbox.url}/_sandbox/issues", timeout=10).json()["issues"]
    with db.reader(engine).connect() as conn:
        retries = conn.execute(select(func.coalesce(func.sum(Delivery.attempts), 0))).scalar_one()
        dead = conn.execute(select(func.count()).where(Delivery.status == DeliveryStatus.DEAD)).scalar_one()
    rows = [(issue["key"], issue["fields"]["summary"], issue["fields"]["status"]["name"],
             len(issue["fields"]["comment"]["comments"])) for issue in issues]
    ncs = {p["ncId"] for _, batch in story() for p, _ in batch}
    ok = (answers.get(202, 0) + answers.get(200, 0) == sum(answers.values()) and len(issues) == len(ncs)
          and stats["comments"] == 1 and dead == 0)
    return {"received": sum(answers.values()), "accepted": answers.get(202, 0),
            "duplicates": answers.get(200, 0), "created": stats["creates"], "updates": stats["updates"],
            "transitions": stats["transitions"], "comments": stats["comments"], "retries": int(retries),
            "outage": stats["faultsServed"].get("unavailable", 0), "dead": int(dead), "issues": rows, "ok": ok}


def _table(s: dict[str, Any], seconds: float) -> str:
    lines = [
        "",
        "nc-connector demo: results",
        "---------------------------------------------",
        f"deliveries received        {s['received']:>5}",
        f"  accepted (202)           {s['accepted']:>5}",
        f"  duplicates dropped (200) {s['duplicates']:>5}",
        f"Jira issues created        {s['created']:>5}",
        f"Jira issue updates         {s['updates']:>5}",
        f"Jira transitions           {s['transitions']:>5}",
        f"Jira comments              {s['comments']:>5}",
        f"lost webhooks reconciled   {s['reconciled']:>5}",
        f"Jira 503s during outage    {s['outage']:>5}",
        f"attempts spent             {s['retries']:>5}  (a 503 with Retry-After spends none)",
        f"dead letters               {s['dead']:>5}",
        "---------------------------------------------",
        f"{'key':<6} {'status':<12} {'comments':>8}  summary",
    ]
    lines += [f"{key:<6} {status:<12} {comments:>8}  {summary}" for key, summary, status, comments in s["issues"]]
    lines.append(f"finished in {seconds:.1f}s: " + ("one Jira issue per NC, nothing lost" if s["ok"]
                                                    else "FAILED: see the counts above"))
    return "\n".join(lines)
