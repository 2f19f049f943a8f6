"""The sandbox over real loopback HTTP: the `jira` client against it, Retry-After, dropped connections."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from jira import JIRA

from connector.sandbox import start_in_thread
from tests.sandbox.conftest import EMAIL, PAT, TOKEN, V2, new_issue


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[Any]:
    options = getattr(request, "param", {})
    with start_in_thread(**options) as sandbox:
        yield sandbox


@pytest.mark.parametrize(("served", "search_path"), [({"deployment_type": "Server"}, f"{V2}/search"),
                                                     ({"deployment_type": "Cloud"}, f"{V2}/search/jql")],
                         indirect=["served"], ids=["Server", "Cloud"])
def test_the_jira_client_works_against_the_sandbox(served: Any, search_path: str) -> None:
    jira = JIRA(served.url, basic_auth=(EMAIL, TOKEN), timeout=5, max_retries=1)
    try:
        issue = jira.create_issue(project="QA", issuetype="Non-conformance", summary="NC-7: seal wear",
                                  description="Plain text", labels=["qualio-nc-NC-7"],
                                  customfield_10010={"value": "Critical"})
        assert (issue.key, issue.fields.status.name, issue.fields.customfield_10010.value) == ("QA-1", "To Do",
                                                                                                 "Critical")
        assert jira.add_comment(issue, "From Qualio").body == "From Qualio"
        first = jira.add_remote_link(issue.key, {"url": "https://q.example/7", "title": "NC-7"}, globalId="q:NC-7")
        again = jira.add_remote_link(issue.key, {"url": "https://q.example/7", "title": "NC-7!"}, globalId="q:NC-7")
        assert first.id == again.id and [lk.object.title for lk in jira.remote_links(issue.key)] == ["NC-7!"]
        jira.transition_issue(issue, "Start Progress")
        issue.update(fields={"summary": "NC-7: seal wear (line 3)"}, labels=[{"add": "escalated"}])
        assert (issue.fields.status.name, issue.fields.labels) == ("In Progress", ["qualio-nc-NC-7", "escalated"])
        found = jira.search_issues('project = QA AND labels = "qualio-nc-NC-7" ORDER BY created ASC')
        assert [i.key for i in found] == ["QA-1"]
    finally:
        jira.close()
    paths = [r.path for r in served.state.requests()]
    assert paths[0] == f"{V2}/serverInfo" and search_path in paths
    assert served.state.stats()["faultsServed"]["rate_limit"] == 0


def test_the_jira_client_honours_retry_after(served: Any) -> None:
    served.state.add_fault("rate_limit", retry_after=1, method="POST", path=f"{V2}/issue")
    jira = JIRA(served.url, token_auth=PAT, timeout=5, max_retries=2)
    try:
        started = time.monotonic()
        issue = jira.create_issue(fields=new_issue()["fields"])
        assert issue.key == "QA-1" and time.monotonic() - started >= 1
    finally:
        jira.close()
    statuses = [(r.method, r.status) for r in served.state.requests() if r.path == f"{V2}/issue"]
    assert statuses == [("POST", 429), ("POST", 201)]
    assert served.state.retry_after_violations() == []


def test_dropped_connections_over_http(served: Any) -> None:
    url, auth = f"{served.url}{V2}/issue", (EMAIL, TOKEN)
    served.state.add_fault("drop", method="POST", path=f"{V2}/issue")
    with pytest.raises(requests.ConnectionError):
        requests.post(url, json=new_issue(), auth=auth, timeout=5)
    served.state.add_fault("drop_after", method="POST", path=f"{V2}/issue")
    with pytest.raises(requests.ConnectionError):
        requests.post(url, json=new_issue(), auth=auth, timeout=5)
    assert [i.key for i in served.state.issues()] == ["QA-1"]
    control = requests.post(f"{served.url}/_sandbox/faults", json={"latency": 0.01}, timeout=5)
    assert control.json()["latency"] == [{"seconds": 0.01, "method": "*", "path": "*"}]
    assert requests.get(f"{url}/QA-1", auth=auth, timeout=5).json()["key"] == "QA-1"
