"""Shared fixtures and helpers of the Jira sandbox tests.

Success responses and error bodies are checked against the OpenAPI description's schema for the twin
v3 path (v2 takes plain strings where v3 takes ADF; the schemas allow both). Most tests use Flask's
test client with a fake clock (`clock`) and a recording sleep (`sleeps`); `labelled` is a client with
three labelled issues for the search tests.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from connector.sandbox import SandboxConfig, SandboxState, create_sandbox_app
from tests.openapi import JIRA_SPEC, OpenAPI, load

EMAIL, TOKEN, PAT = "sandbox@example.com", "sandbox-token", "sandbox-pat"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode()}
V2, V3 = "/rest/api/2", "/rest/api/3"
NOT_FOUND = "Issue does not exist or you do not have permission to see it."
START = 1_750_000_000.0
Json = dict[str, Any]


# -- the published spec (tests/openapi.py checks values against it) ----------------------------------------


def spec() -> OpenAPI:
    return load(JIRA_SPEC)


NESTED_FIELDS = {"status": "StatusDetails", "priority": "Priority", "issuetype": "IssueTypeDetails",
                 "project": "ProjectDetails", "assignee": "UserDetails", "reporter": "UserDetails",
                 "creator": "UserDetails", "resolution": "Resolution", "comment": "PageOfComments"}


def assert_schema(value: Any, schema: Json) -> None:
    problems = spec().problems(value, schema)
    assert not problems, problems


def assert_response(response: Any, v3_path: str, status: int | None = None) -> Any:
    """The response has `status` and its JSON matches the spec's schema for that answer."""
    expected = status or response.status_code
    assert response.status_code == expected, response.get_data(as_text=True)
    body = response.get_json()
    assert_schema(body, spec().response(v3_path, response.request.method, expected))
    return body


def assert_error(response: Any, status: int) -> Json:
    assert response.status_code == status, response.get_data(as_text=True)
    body: Json = response.get_json()
    assert_schema(body, spec().component("ErrorCollection"))
    return body


def assert_issue(issue: Json) -> None:
    """An issue matches IssueBean, and its system fields match their own schemas."""
    assert_schema(issue, spec().component("IssueBean"))
    for field_id, name in NESTED_FIELDS.items():
        if issue["fields"].get(field_id) is not None:
            assert_schema(issue["fields"][field_id], spec().component(name))
    for component in issue["fields"].get("components", []):
        assert_schema(component, spec().component("ProjectComponent"))


# -- fixtures ------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_state(clock: FakeClock, sleeps: list[float]) -> Callable[..., SandboxState]:
    def make(**options: Any) -> SandboxState:
        return SandboxState(SandboxConfig(**options), clock=clock, sleep=sleeps.append)

    return make


@pytest.fixture
def state(make_state: Callable[..., SandboxState]) -> SandboxState:
    return make_state()


@pytest.fixture
def client(state: SandboxState) -> FlaskClient:
    return create_sandbox_app(state).test_client()


@pytest.fixture
def make_client(make_state: Callable[..., SandboxState]) -> Callable[..., FlaskClient]:
    """A test client of a sandbox with the given SandboxConfig options (workflow=..., deployment_type=...)."""
    def make(**options: Any) -> FlaskClient:
        return create_sandbox_app(make_state(**options)).test_client()

    return make


def call(client: FlaskClient, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
    headers = kwargs.pop("headers", AUTH)
    return client.open(path, method=method, json=body, headers=headers, **kwargs)


def new_issue(**fields: Any) -> Json:
    base: Json = {"project": {"key": "QA"}, "issuetype": {"name": "Non-conformance"},
                  "summary": "Pump P-7 calibration overdue"}
    return {"fields": {**base, **fields}}


def create(client: FlaskClient, **fields: Any) -> str:
    response = call(client, "POST", f"{V2}/issue", new_issue(**fields))
    assert response.status_code == 201, response.get_data(as_text=True)
    key: str = response.get_json()["key"]
    return key


def search_keys(client: FlaskClient, jql: str, path: str = "search") -> list[str]:
    response = call(client, "GET", f"{V2}/{path}", query_string={"jql": jql, "fields": "summary"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return [issue["key"] for issue in response.get_json()["issues"]]


def assert_status(response: Any, status: int) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


@pytest.fixture
def labelled(client: FlaskClient, clock: FakeClock) -> FlaskClient:
    """QA-1 [qualio-nc-1, qualio], QA-2 [qualio-nc-2, qualio], QA-3 [other], created a second apart."""
    for labels in (["qualio-nc-1", "qualio"], ["qualio-nc-2", "qualio"], ["other"]):
        create(client, labels=labels, summary=f"Pump issue {labels[0]}")
        clock.advance(1)
    return client
