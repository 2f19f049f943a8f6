"""Shared by the Jira gateway tests: the test credentials, the gateways, and the request checker.

Every request the gateway sends is checked against the published Jira spec (``check_request``): the
operation exists (v2 path read as its v3 twin), its query parameters are declared and its JSON body
matches the request-body schema, except that v2 takes plain strings where v3 takes ADF.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import responses
from prometheus_client import REGISTRY

from connector.jira.gateway import JiraClientGateway
from tests.conftest import FIXTURES as TEST_FIXTURES
from tests.openapi import JIRA_SPEC, OpenAPI, load

FIXTURES = TEST_FIXTURES / "jira"

CLOUD = "https://example.atlassian.net"
SERVER = "https://jira.example.com"
EMAIL = "nc-bot@example.com"
TOKEN = "ATATT3xFfGF0-test-token-7d1c0e5a"  # a test value, not a credential
PAT = "NjQ5ODc2NTQzMjEwOnRlc3QtcGF0LXZhbHVl"
BASIC = "Basic " + base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode()
BEARER = f"Bearer {PAT}"
API = "/rest/api/2/"
LABEL = "qualio-nc-NCR-12"
JQL = f'project = "NC" AND labels = "{LABEL}" ORDER BY created ASC'


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


# -- the published spec (tests/openapi.py checks values against it) ----------------------------------


def spec() -> OpenAPI:
    return load(JIRA_SPEC)


def spec_operation(method: str, v2_path: str) -> tuple[str, dict[str, Any]]:
    """The spec's (path template, operation) for this v2 request, read as its v3 twin."""
    return spec().match(v2_path.replace("/rest/api/2/", "/rest/api/3/", 1), method)


# v2 takes plain strings where v3 takes Atlassian Document Format.
V2_PLAIN_STRINGS = {"addComment": ["body"], "createIssue": ["fields.description", "fields.environment"],
                    "editIssue": ["fields.description", "fields.environment"]}


def spec_problems(method: str, url: str, body: Any) -> list[str]:
    """Everything in this request that the published spec does not allow."""
    parts = urlsplit(url)
    _, operation = spec_operation(method, parts.path)
    declared = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
    problems = [f"query parameter {name!r} not declared" for name in parse_qs(parts.query) if name not in declared]
    schema = spec().request_body(operation)
    if body is None:
        return problems + ([f"{operation['operationId']} needs a body"] if schema else [])
    if schema is None:
        return [*problems, f"{operation['operationId']} takes no JSON body"]
    problems += spec().problems(body, schema, request=True)
    for dotted in V2_PLAIN_STRINGS.get(operation["operationId"], []):
        node = body
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None and not isinstance(node, str):
            problems.append(f"{dotted}: v2 takes a plain string, got {type(node).__name__}")
    return problems


# -- helpers ---------------------------------------------------------------------------------------


def cloud_gateway(timeout: float = 10.0) -> JiraClientGateway:
    return JiraClientGateway(CLOUD, email=EMAIL, api_token=TOKEN, timeout=timeout)


def server_gateway() -> JiraClientGateway:
    return JiraClientGateway(SERVER, pat=PAT)


def mock_server_info(rsps: responses.RequestsMock, base: str = CLOUD, kind: str = "cloud") -> None:
    rsps.get(f"{base}{API}serverInfo", json=fixture(f"server_info_{kind}"))


def check_request(call: Any, method: str, path: str, *, query: dict[str, list[str]] | None = None,
                  body: Any = None, auth: str = BASIC) -> None:
    """The exact request, and that the spec allows it."""
    request = call.request
    parts = urlsplit(request.url)
    assert (request.method, parts.path) == (method, path)
    assert parse_qs(parts.query) == (query or {})
    sent = None if request.body is None else json.loads(request.body)
    assert sent == body
    assert request.headers["Authorization"] == auth
    assert request.headers["Accept"].startswith("application/json")
    if body is not None:
        assert request.headers["Content-Type"] == "application/json"
    assert spec_problems(method, request.url, sent) == []


def calls_of(rsps: responses.RequestsMock, path_end: str) -> list[Any]:
    return [c for c in rsps.calls if urlsplit(str(c.request.url)).path.endswith(path_end)]


def jira_calls(method: str, status: str) -> float:
    value = REGISTRY.get_sample_value("nc_connector_jira_call_seconds_count", {"method": method, "status": status})
    return value or 0.0


CREATE_FIELDS: dict[str, Any] = {
    "project": {"key": "NC"},
    "issuetype": {"name": "Bug"},
    "summary": "NCR-12: Non Compliance: procedure was not followed",
    "description": "Cleaning log for line 3 was not signed off.\n\nQualio: https://app.qualio.com/quality-events/events/123456",
    "labels": ["qualio-nc", LABEL],
    "priority": {"name": "Medium"},
    "duedate": "2025-02-15",
    "customfield_10042": {"value": "Minor"},
}
