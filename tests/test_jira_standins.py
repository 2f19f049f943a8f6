"""The default mapping, unchanged, against every Jira stand-in: the sandbox's workflows (Cloud's simplified one,
Data Center's classic one with its resolution screen, one with no direct path to done) and jira820, an
independent fake of Jira Data Center 8.20 that nobody here wrote. Real HTTP, the real gateway, a real
database; the worker runs in this process.

Each stand-in gets the same story: NCs created, updated, commented, closed and reopened (zero dead letters),
and a transition that can never happen while the same deliveries carry a comment and new fields (the
comment posted once, the fields applied, an older delivery afterwards not winning).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from connector.jira.gateway import JiraClientGateway
from connector.mapping.load import default_mapping_path, load_mapping
from connector.mapping.rules import Mapping
from connector.sandbox import start_in_thread
from connector.sync import links
from connector.sync.apply import Syncer
from connector.sync.worker import Worker
from tests.conftest import load_fixture, make_settings
from tests.processes import free_port, stop, wait_ready
from tests.sync.helpers import dead_letters, deliver, drain

pytestmark = pytest.mark.slow

CATEGORY = {"open": "new", "under_investigation": "indeterminate", "closed": "done"}


@dataclass
class StandIn:
    name: str
    url: str
    gateway: JiraClientGateway

    def issue(self, key: str) -> dict[str, Any]:
        answer = requests.get(f"{self.url}/rest/api/2/issue/{key}", params={"fields": "summary,status,resolution"},
                              headers=self.gateway_headers(), timeout=10)
        answer.raise_for_status()
        data: dict[str, Any] = answer.json()
        return data

    def comments(self, key: str) -> int:
        return len(self.gateway.comments(key))

    def gateway_headers(self) -> dict[str, str]:
        return {"Authorization": "Bearer sandbox-pat"}


@contextmanager
def jira820(log: Path) -> Iterator[StandIn]:
    """jira820 (PyPI, MIT) on a free loopback port, its project named QA; ended by its PID."""
    port = free_port()
    env = {**os.environ, "JIRA820_HOST": "127.0.0.1", "JIRA820_PORT": str(port), "JIRA820_PROJECT_KEY": "QA"}
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "jira820"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/rest/api/2/serverInfo", proc)
        yield StandIn("jira820", url, JiraClientGateway(url, pat="sandbox-pat"))
    finally:
        stop(proc)


@contextmanager
def sandbox(workflow: str, deployment: str) -> Iterator[StandIn]:
    with start_in_thread(workflow=workflow, deployment_type=deployment) as running:
        url = running.url
        gateway = JiraClientGateway(url, email="sandbox@example.com", api_token="sandbox-token") \
            if deployment == "Cloud" else JiraClientGateway(url, pat="sandbox-pat")
        yield StandIn(f"sandbox {workflow}", url, gateway)


STAND_INS = {
    "sandbox-cloud": lambda tmp: sandbox("cloud", "Cloud"),
    "sandbox-classic": lambda tmp: sandbox("classic", "Server"),
    "sandbox-gated": lambda tmp: sandbox("gated", "Server"),
    "sandbox-review": lambda tmp: sandbox("review", "Cloud"),
    "jira820": lambda tmp: jira820(tmp / "jira820.log"),
}


@pytest.fixture(params=list(STAND_INS))
def jira(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StandIn]:
    with STAND_INS[request.param](tmp_path) as stand_in:
        yield stand_in
        stand_in.gateway.close()


def make_worker(engine: Any, db_url: str, jira: StandIn, mapping: Mapping) -> Worker:
    settings = make_settings(db_url, NC_CONNECTOR_MAX_ATTEMPTS="2", NC_CONNECTOR_RETRY_BASE="0.01s",
                             NC_CONNECTOR_JIRA_SEARCH_LAG="1s")
    return Worker(engine, settings, Syncer(engine, jira.gateway, mapping, settings.jira_search_lag))


def event(nc_id: str, kind: str, at: str, **fields: Any) -> dict[str, Any]:
    return {"eventType": kind, "ncId": nc_id, "timestamp": at, **fields}


def test_the_default_mapping_runs_the_whole_story_on_every_stand_in(engine, db_url, jira, capsys):
    worker = make_worker(engine, db_url, jira, load_mapping(default_mapping_path(), project_override="QA"))
    base = {k: v for k, v in load_fixture("nc_created").items() if k not in ("ncId", "timestamp", "eventType")}
    story = [
        event("NC-1", "nc.created", "2025-03-01T08:00:00Z", **base),
        event("NC-2", "nc.created", "2025-03-01T08:00:00Z", **{**base, "title": "Second"}),
        event("NC-1", "nc.updated", "2025-03-02T08:00:00Z", title="Renamed", status="under_investigation"),
        event("NC-1", "nc.comment_added", "2025-03-03T08:00:00Z",
              comment={"id": "c-1", "author": "dana@example.com", "body": "Root cause: firmware."}),
        event("NC-1", "nc.closed", "2025-03-04T08:00:00Z"),  # thin: the event type implies the status
        event("NC-2", "nc.closed", "2025-03-04T08:00:00Z", status="closed"),
        event("NC-2", "nc.updated", "2025-03-05T08:00:00Z", status="open"),  # reopened in Qualio
    ]
    categories = {}
    for payload in story:
        deliver(engine, payload)
        drain(worker)
        key = links.get(engine, payload["ncId"]).jira_key
        categories.setdefault(payload["ncId"], []).append(jira.issue(key)["fields"]["status"]["statusCategory"]["key"])
    assert dead_letters(engine) == []
    one, two = (jira.issue(links.get(engine, nc).jira_key) for nc in ("NC-1", "NC-2"))
    assert one["fields"]["summary"] == "[NC-1] Renamed" and jira.comments(one["key"]) == 1
    assert categories == {"NC-1": ["new", "indeterminate", "indeterminate", "done"], "NC-2": ["new", "done", "new"]}
    with capsys.disabled():
        print(f"\n{jira.name}: NC-1 {one['fields']['status']['name']} "
              f"(resolution {(one['fields'].get('resolution') or {}).get('name')}), "
              f"NC-2 {two['fields']['status']['name']}; statuses {categories}; dead letters 0")


def test_a_transition_that_can_never_happen_costs_only_itself(engine, db_url, jira, tmp_path, capsys):
    text = default_mapping_path().read_text(encoding="utf-8").replace(
        'under_investigation = "category:indeterminate"', 'under_investigation = "Investigating"').replace(
        'allowed = ["To Do", "In Progress", "Done"]', 'allowed = ["To Do", "In Progress", "Done", "Investigating"]')
    custom = tmp_path / "mapping.toml"
    custom.write_text(text, encoding="utf-8")
    worker = make_worker(engine, db_url, jira, load_mapping(custom, project_override="QA"))
    deliver(engine, event("NC-9", "nc.created", "2025-03-01T08:00:00Z", title="First", status="open"))
    drain(worker)
    deliver(engine, event("NC-9", "nc.comment_added", "2025-03-03T08:00:00Z", title="Newest",
                          status="under_investigation", comment={"id": "c-9", "body": "Seen."}))
    drain(worker)
    (dead,) = dead_letters(engine)
    assert dead.failed_step == "transition" and "to 'Investigating'" in dead.last_error
    key = links.get(engine, "NC-9").jira_key
    assert jira.issue(key)["fields"]["summary"] == "[NC-9] Newest" and jira.comments(key) == 1
    deliver(engine, event("NC-9", "nc.updated", "2025-03-02T08:00:00Z", title="Older"))
    drain(worker)
    assert jira.issue(key)["fields"]["summary"] == "[NC-9] Newest" and jira.comments(key) == 1
    with capsys.disabled():
        print(f"\n{jira.name}: failed step {dead.failed_step!r}; summary kept 'Newest' after an older delivery; "
              f"comments 1")
