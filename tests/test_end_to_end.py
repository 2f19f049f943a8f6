"""End to end with real processes: the Jira sandbox, `nc-connector serve`, extra workers, SIGKILL."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from connector.models import CommentLink, Delivery, NcLink
from tests.conftest import load_fixture
from tests.helpers import body_of, signed
from tests.processes import drained, free_port, running, start, stop
from tests.sandbox_client import Sandbox, connector_env, running_sandbox

pytestmark = pytest.mark.slow


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with running_sandbox(tmp_path / "sandbox.log") as client:
        yield client


def e2e_env(db_url: str, sandbox: Sandbox, **extra: str) -> dict[str, str]:
    return connector_env(db_url, sandbox, **{"NC_CONNECTOR_JIRA_SEARCH_LAG": "2s", **extra})


def send(base: str, payload: dict[str, Any], webhook_id: str | None = None) -> int:
    body = body_of(payload)
    return requests.post(f"{base}/webhooks/qualio", data=body, headers=signed(body, webhook_id=webhook_id),
                         timeout=10).status_code


def nc_payloads(count: int) -> list[dict[str, Any]]:
    return [{**load_fixture("nc_created"), "ncId": f"NC-2026-{i:03d}", "title": f"NC number {i}"}
            for i in range(count)]


def test_duplicate_bursts_two_workers_one_issue_per_nc(db_url, engine, sandbox, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = e2e_env(db_url, sandbox)
    with running(["serve", "--port", str(port), "--workers", "2"], env, tmp_path / "serve.log",
                 ready_url=f"{base}/readyz"), \
         running(["worker"], env, tmp_path / "worker2.log"):
        payloads = nc_payloads(12)
        answers = [send(base, p, webhook_id=f"msg_{i}") for _ in range(3) for i, p in enumerate(payloads)]
        comment = {**load_fixture("same_second_comment_added"), "ncId": "NC-2026-000"}
        answers += [send(base, comment) for _ in range(3)]
        drained(engine)
    issues = sandbox.issues()
    print(f"\ne2e[{engine.dialect.name}]: sent {len(answers)}, accepted {answers.count(202)}, "
          f"duplicates {answers.count(200)}, issues {len(issues)}, stats {sandbox.stats()}")
    assert answers.count(202) == 13 and answers.count(200) == 26
    expected = sorted(f"[NC-2026-{i:03d}] NC number {i}" for i in range(12))
    assert sorted(i["fields"]["summary"] for i in issues) == expected
    assert sum(len(i["fields"]["comment"]["comments"]) for i in issues) == 1
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).where(NcLink.state == "linked")).scalar_one() == 12
        assert conn.execute(select(func.count()).select_from(CommentLink)).scalar_one() == 1


def create_requests(sandbox: Sandbox) -> list[dict[str, Any]]:
    return list(sandbox.requests_log(method="POST", path="/rest/api/2/issue")["requests"])


def test_sigkill_between_create_and_commit_makes_no_second_issue(db_url, engine, sandbox, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = e2e_env(db_url, sandbox, NC_CONNECTOR_WORKER_LEASE="2s", NC_CONNECTOR_JIRA_SEARCH_LAG="6s",
                  NC_CONNECTOR_JIRA_TIMEOUT="10")
    # Jira takes 3 s over the create and applies it; the worker is killed while it waits for the answer.
    sandbox.faults(faults=[{"kind": "slow", "seconds": 3, "method": "POST", "path": "/rest/api/2/issue"}])
    with running(["serve", "--port", str(port), "--workers", "1", "--no-worker"], env, tmp_path / "serve.log",
                 ready_url=f"{base}/readyz"):
        assert send(base, load_fixture("nc_created")) == 202
        victim = start(["worker"], env, tmp_path / "worker1.log")
        try:
            deadline = time.monotonic() + 20
            while not create_requests(sandbox) and time.monotonic() < deadline:
                time.sleep(0.02)
            stop(victim, signal.SIGKILL)
        finally:
            stop(victim, signal.SIGKILL)
        with engine.connect() as conn:
            assert conn.execute(select(NcLink.state)).scalar_one() == "creating"  # committed before the call
        with running(["worker"], env, tmp_path / "worker2.log"):
            drained(engine)
    issues = sandbox.issues()
    assert len(issues) == 1 and len(create_requests(sandbox)) == 1
    with engine.connect() as conn:
        assert conn.execute(select(NcLink.jira_key)).scalar_one() == issues[0]["key"]


def test_connection_dropped_after_create_makes_no_second_issue(db_url, engine, sandbox, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = e2e_env(db_url, sandbox)
    sandbox.faults(faults=[{"kind": "drop_after", "method": "POST", "path": "/rest/api/2/issue"}])
    with running(["serve", "--port", str(port), "--workers", "1"], env, tmp_path / "serve.log",
                 ready_url=f"{base}/readyz"):
        assert send(base, load_fixture("nc_created")) == 202
        drained(engine)
    assert len(sandbox.issues()) == 1 and len(create_requests(sandbox)) == 1


def test_jira_outage_and_rate_limit_honour_retry_after(db_url, engine, sandbox, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = e2e_env(db_url, sandbox)
    sandbox.faults(faults=[{"kind": "unavailable", "count": 2, "retryAfter": 2},
                           {"kind": "rate_limit", "count": 2, "retryAfter": 1}])
    with running(["serve", "--port", str(port), "--workers", "1"], env, tmp_path / "serve.log",
                 ready_url=f"{base}/readyz"):
        started = time.monotonic()
        for payload in nc_payloads(3):
            assert send(base, payload) == 202
        drained(engine)
        elapsed = time.monotonic() - started
    log = sandbox.requests_log()
    assert log["retryAfterViolations"] == []
    assert len(sandbox.issues()) == 3
    assert elapsed >= 2 * 2 + 2 * 1 - 0.5  # each Retry-After was waited out, by every worker


def test_dead_letter_then_replay_after_the_fix(db_url, engine, sandbox, tmp_path):
    env = e2e_env(db_url, sandbox)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    bad_mapping = tmp_path / "bad.toml"
    default = Path(__file__).parent.parent / "mappings" / "default.toml"
    bad_mapping.write_text(default.read_text().replace('issue_type = "Task"', 'issue_type = "Epic"'))
    bad_env = {**env, "NC_CONNECTOR_MAPPING_FILE": str(bad_mapping)}
    with running(["serve", "--port", str(port), "--workers", "1"], bad_env, tmp_path / "serve.log",
                 ready_url=f"{base}/readyz"):
        assert send(base, load_fixture("nc_created")) == 202
        drained(engine)
    with engine.connect() as conn:
        status, error = conn.execute(select(Delivery.status, Delivery.last_error)).one()
    assert status == "dead" and "issuetype" in error
    import os
    import subprocess
    import sys
    cli = [sys.executable, "-m", "connector"]
    listed = subprocess.run([*cli, "dead-letters"], env={**os.environ, **env}, capture_output=True, text=True)
    assert "NCR-12" in listed.stdout and listed.returncode == 0
    replayed = subprocess.run([*cli, "replay", "--all-dead"], env={**os.environ, **env}, capture_output=True,
                              text=True)
    assert "re-queued 1" in replayed.stdout
    with running(["worker"], env, tmp_path / "worker.log"):
        drained(engine)
    assert len(sandbox.issues()) == 1


def test_out_of_order_update_keeps_the_newest_state(db_url, engine, sandbox, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = e2e_env(db_url, sandbox)
    newest = {**load_fixture("nc_created"), "eventType": "nc.updated", "title": "Newest",
              "timestamp": "2025-02-05T00:00:00Z"}
    older = {**load_fixture("nc_created"), "eventType": "nc.updated", "title": "Older",
             "timestamp": "2025-02-04T00:00:00Z"}
    with running(["serve", "--port", str(port), "--workers", "1"], env, tmp_path / "serve.log",
                 ready_url=f"{base}/readyz"):
        assert send(base, newest) == 202
        drained(engine)
        assert send(base, older) == 202
        drained(engine)
    (issue,) = sandbox.issues()
    assert issue["fields"]["summary"] == "[NCR-12] Newest"
    assert json.loads(json.dumps(sandbox.stats()))["updates"] == 0


def test_mappings_check_live_against_the_sandbox(sandbox, tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, **e2e_env("sqlite:///unused.db", sandbox)}
    check = [sys.executable, "-m", "connector", "mappings", "check"]
    fixture = Path(__file__).parent / "fixtures" / "nc_created.json"
    ok = subprocess.run([*check, "--live", "--payload", str(fixture)], env=env, capture_output=True, text=True,
                        timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert '"summary": "[NCR-12]' in ok.stdout
    # the rich example names a field this Jira lacks: --live finds it, by name
    rich = Path(__file__).parent.parent / "mappings" / "example-rich.toml"
    missing = subprocess.run([*check, str(rich), "--live"], env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "Risk score" in missing.stderr
    wrong = subprocess.run([*check, "--live"], env={**env, "NC_CONNECTOR_JIRA_PROJECT": "NOPE"}, capture_output=True,
                           text=True, timeout=60)
    assert wrong.returncode == 1 and "NOPE" in wrong.stderr
