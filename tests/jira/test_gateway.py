"""The Jira gateway against mocked HTTP (responses) and, for the transport, a real local socket.

Every request the gateway sends is checked against the published Jira spec: the operation exists
(v2 path read as its v3 twin), its query parameters are declared and its JSON body matches the
request-body schema, except that v2 takes plain strings where v3 takes ADF.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.client import RemoteDisconnected
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from jira.resilientsession import ResilientSession
from prometheus_client import REGISTRY
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from connector.jira.gateway import (
    FieldInfo,
    IssueState,
    JiraClientGateway,
    JiraError,
    Pressure,
    Transition,
    gateway_from_settings,
)
from connector.settings import load_settings
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


def test_spec_checker_catches_bad_bodies() -> None:
    """The checker itself: it must reject what Jira would."""
    url = f"{CLOUD}{API}issue/NC-1/remotelink"
    assert spec_problems("POST", url, {"globalId": "x", "object": {"url": "u", "title": "t"}}) == []
    assert spec_problems("POST", url, {"globalId": "x", "object": {"url": "u"}}) == [
        "$.object: required 'title' missing"]
    assert spec_problems("POST", f"{CLOUD}{API}issue", {"feilds": {}}) == ["$.feilds: not a property of this schema"]
    assert spec_problems("POST", f"{CLOUD}{API}issue/NC-1/transitions", {"transition": {"id": 31}}) == [
        "$.transition.id: int is not string"]
    assert spec_problems("POST", f"{CLOUD}{API}issue/NC-1/comment", {"body": {"type": "doc"}}) == [
        "body: v2 takes a plain string, got dict"]
    assert spec_problems("POST", f"{CLOUD}{API}issue/NC-1/comment", {"body": "x", "id": "1"}) == [
        "$.id: read-only, must not be sent"]
    assert spec_problems("GET", f"{CLOUD}{API}field?bogus=1", None) == ["query parameter 'bogus' not declared"]


@pytest.mark.parametrize(("name", "schema"), [
    ("create_issue_201", "CreatedIssue"),
    ("search_jql_page1", "SearchAndReconcileResults"),
    ("search_server", "SearchResults"),
    ("remotelink_201", "RemoteIssueLinkIdentifies"),
    ("issue_nc_24_status_transitions", "IssueBean"),
    ("server_info_cloud", "ServerInformation"),
    ("mypermissions_all", "Permissions"),
    ("createmeta_bug", "PageOfCreateMetaIssueTypeWithField"),
    ("project_nc", "Project"),
    ("comments_nc_24", "PageOfComments"),
])
def test_response_fixtures_match_the_spec(name: str, schema: str) -> None:
    problems = spec().problems(fixture(name), spec().component(schema))
    assert problems == []


# -- helpers ---------------------------------------------------------------------------------------


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


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


# -- construction ----------------------------------------------------------------------------------


def test_building_a_gateway_sends_nothing_and_turns_retries_off(rsps: responses.RequestsMock) -> None:
    gateway = cloud_gateway(timeout=4.5)
    assert len(rsps.calls) == 0
    session = gateway._client._session
    assert isinstance(session, ResilientSession)
    assert session.max_retries == 0  # ResilientSession: a single attempt
    assert session.timeout == 4.5  # passed to every request
    for prefix in ("https://", "http://"):
        retry: Any = getattr(session.get_adapter(prefix + "x"), "max_retries", None)
        assert (retry.total, retry.read) == (0, False)
    assert gateway._client._options["rest_api_version"] == "2"


@pytest.mark.parametrize("kwargs", [
    {}, {"email": EMAIL}, {"api_token": TOKEN}, {"email": EMAIL, "api_token": TOKEN, "pat": PAT},
])
def test_gateway_needs_one_kind_of_credentials(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"API token|PAT|e-mail"):
        JiraClientGateway(CLOUD, **kwargs)


# -- search ----------------------------------------------------------------------------------------


def test_find_issues_by_label_on_cloud_uses_search_jql(rsps: responses.RequestsMock) -> None:
    mock_server_info(rsps)
    page1 = fixture("search_jql_page1")
    rsps.get(f"{CLOUD}{API}search/jql", json=page1)
    rsps.get(f"{CLOUD}{API}search/jql", json=fixture("search_jql_page2"))
    gateway = cloud_gateway()

    assert gateway.find_issues_by_label(LABEL, "NC") == ["NC-24", "NC-31"]

    info, first, second = rsps.calls
    check_request(info, "GET", f"{API}serverInfo")
    query = {"jql": [JQL], "fields": ["key"], "maxResults": ["100"]}
    check_request(first, "GET", f"{API}search/jql", query=query)
    check_request(second, "GET", f"{API}search/jql", query={**query, "nextPageToken": [page1["nextPageToken"]]})
    assert calls_of(rsps, "/search") == []  # never the endpoint Cloud is removing


def test_server_info_is_read_once(rsps: responses.RequestsMock) -> None:
    mock_server_info(rsps)
    rsps.get(f"{CLOUD}{API}search/jql", json=fixture("search_jql_page2"))
    gateway = cloud_gateway()
    gateway.find_issues_by_label(LABEL, "NC")
    gateway.find_issues_by_label(LABEL, "NC")
    assert len(calls_of(rsps, "/serverInfo")) == 1


def test_find_issues_by_label_on_server_uses_search(rsps: responses.RequestsMock) -> None:
    mock_server_info(rsps, SERVER, "server")
    rsps.get(f"{SERVER}{API}search", json=fixture("search_server"))

    assert server_gateway().find_issues_by_label(LABEL, "NC") == ["NC-24", "NC-31"]

    info, search = rsps.calls
    check_request(info, "GET", f"{API}serverInfo", auth=BEARER)
    check_request(search, "GET", f"{API}search", auth=BEARER,
                  query={"jql": [JQL], "fields": ["key"], "startAt": ["0"], "maxResults": ["100"]})


def test_server_search_pages_by_start_at(rsps: responses.RequestsMock) -> None:
    mock_server_info(rsps, SERVER, "server")
    page = fixture("search_server")
    first = {**page, "maxResults": 1, "issues": page["issues"][:1]}
    second = {**page, "startAt": 1, "maxResults": 1, "issues": page["issues"][1:]}
    rsps.get(f"{SERVER}{API}search", json=first)
    rsps.get(f"{SERVER}{API}search", json=second)
    assert server_gateway().find_issues_by_label(LABEL, "NC") == ["NC-24", "NC-31"]
    starts = [parse_qs(urlsplit(str(c.request.url)).query)["startAt"] for c in calls_of(rsps, "/search")]
    assert starts == [["0"], ["1"]]


def test_search_quotes_jql_strings(rsps: responses.RequestsMock) -> None:
    mock_server_info(rsps)
    rsps.get(f"{CLOUD}{API}search/jql", json={"issues": [], "isLast": True})
    assert cloud_gateway().find_issues_by_label('odd"label\\', "NC") == []
    jql = parse_qs(urlsplit(str(rsps.calls[1].request.url)).query)["jql"]
    assert jql == ['project = "NC" AND labels = "odd\\"label\\\\" ORDER BY created ASC']


def test_empty_server_info_is_one_retryable_error(rsps: responses.RequestsMock) -> None:
    """The jira client would ask three more times (JRA-59676); the gateway asks once."""
    rsps.get(f"{CLOUD}{API}serverInfo", body="")
    with pytest.raises(JiraError) as caught:
        cloud_gateway().find_issues_by_label(LABEL, "NC")
    assert (caught.value.status, caught.value.retryable, caught.value.outcome_unknown) == (200, True, False)
    assert len(rsps.calls) == 1


def test_deployment_falls_back_to_version_when_server_info_has_no_type(rsps: responses.RequestsMock) -> None:
    info = fixture("server_info_cloud")
    del info["deploymentType"]
    rsps.get(f"{SERVER}{API}serverInfo", json=info)
    rsps.get(f"{SERVER}{API}search/jql", json={"issues": [], "isLast": True})
    JiraClientGateway(SERVER, email=EMAIL, api_token=TOKEN).find_issues_by_label(LABEL, "NC")


# -- create ----------------------------------------------------------------------------------------

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


def test_create_issue_posts_once_and_returns_the_key(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{CLOUD}{API}issue", json=fixture("create_issue_201"), status=201)
    before = jira_calls("create_issue", "201")

    assert cloud_gateway().create_issue(CREATE_FIELDS) == "NC-24"

    (call,) = rsps.calls
    check_request(call, "POST", f"{API}issue", body={"fields": CREATE_FIELDS})
    assert jira_calls("create_issue", "201") == before + 1


def test_create_issue_sends_string_project_and_type_as_objects(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{CLOUD}{API}issue", json=fixture("create_issue_201"), status=201)
    cloud_gateway().create_issue({"project": "NC", "issuetype": "Bug", "summary": "s"})
    (call,) = rsps.calls
    check_request(call, "POST", f"{API}issue",
                  body={"fields": {"project": {"key": "NC"}, "issuetype": {"name": "Bug"}, "summary": "s"}})


@pytest.mark.parametrize(("status", "retry_after"), [(503, "7"), (429, "30")])
def test_create_issue_is_not_retried_on_503_or_429(rsps: responses.RequestsMock, status: int,
                                                   retry_after: str) -> None:
    rsps.post(f"{CLOUD}{API}issue", json=fixture("error_429"), status=status, headers={"Retry-After": retry_after})
    before = jira_calls("create_issue", str(status))

    with pytest.raises(JiraError) as caught:
        cloud_gateway().create_issue(CREATE_FIELDS)

    assert len(rsps.calls) == 1
    error = caught.value
    assert (error.status, error.retryable, error.retry_after, error.outcome_unknown) == (
        status, True, float(retry_after), False)
    assert error.message == "Rate limit exceeded."
    assert jira_calls("create_issue", str(status)) == before + 1


def test_retry_after_may_be_an_http_date(rsps: responses.RequestsMock) -> None:
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 120))
    rsps.post(f"{CLOUD}{API}issue", status=503, headers={"Retry-After": when})
    with pytest.raises(JiraError) as caught:
        cloud_gateway().create_issue(CREATE_FIELDS)
    assert caught.value.retry_after is not None and 100 < caught.value.retry_after <= 120
    assert caught.value.message == "HTTP 503 Service Unavailable"


# -- rate-limit signals -------------------------------------------------------------------------------

NEAR = {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "12", "X-RateLimit-NearLimit": "true"}


def test_near_limit_on_a_success_is_reported_once(rsps: responses.RequestsMock) -> None:
    rsps.put(f"{CLOUD}{API}issue/NC-24", status=204, headers=NEAR)
    gateway = cloud_gateway()
    gateway.update_issue("NC-24", {"summary": "s"})
    assert gateway.take_pressure() == Pressure(status=204, near_limit=True, retry_after=None, remaining=12,
                                               reason=None)
    assert gateway.take_pressure() is None  # taken
    check_request(rsps.calls[0], "PUT", f"{API}issue/NC-24", body={"fields": {"summary": "s"}})


@pytest.mark.parametrize("headers", [
    {},
    {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "20"},  # 20% left: not near yet
    {**NEAR, "X-RateLimit-NearLimit": "false"},
])
def test_an_answer_without_pressure_reports_none(rsps: responses.RequestsMock, headers: dict[str, str]) -> None:
    rsps.get(f"{CLOUD}{API}issue/NC-24", json=fixture("issue_nc_24_status_transitions"), headers=headers)
    gateway = cloud_gateway()
    gateway.get_issue("NC-24")
    assert gateway.take_pressure() is None


@pytest.mark.parametrize(("status", "headers", "expected"), [
    (429, {"Retry-After": "5", "X-RateLimit-Remaining": "0", "X-RateLimit-NearLimit": "true",
           "RateLimit-Reason": "jira-burst-based"},
     Pressure(status=429, near_limit=True, retry_after=5.0, remaining=0, reason="jira-burst-based")),
    (429, {}, Pressure(status=429, near_limit=False)),  # rate limited without saying for how long
    (503, {"Retry-After": "7"}, Pressure(status=503, near_limit=False, retry_after=7.0)),
    (503, {}, None),  # plain unavailability is no rate-limit signal
])
def test_a_refusal_reports_its_pressure_and_still_raises(rsps: responses.RequestsMock, status: int,
                                                         headers: dict[str, str], expected: Pressure | None) -> None:
    rsps.post(f"{CLOUD}{API}issue/NC-24/comment", json=fixture("error_429"), status=status, headers=headers)
    gateway = cloud_gateway()
    with pytest.raises(JiraError) as caught:
        gateway.add_comment("NC-24", "hello")
    assert caught.value.status == status
    assert gateway.take_pressure() == expected
    assert len(rsps.calls) == 1


def test_the_strongest_signal_since_the_last_take_is_kept(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{CLOUD}{API}issue/NC-24/comment", json=fixture("error_429"), status=429,
              headers={"Retry-After": "9"})
    rsps.put(f"{CLOUD}{API}issue/NC-24", status=204, headers=NEAR)
    gateway = cloud_gateway()
    with pytest.raises(JiraError):
        gateway.add_comment("NC-24", "hello")
    gateway.update_issue("NC-24", {"summary": "s"})  # a milder signal after the 429
    pressure = gateway.take_pressure()
    assert pressure is not None and (pressure.status, pressure.retry_after) == (429, 9.0)


def test_pressure_belongs_to_the_thread_that_met_it(rsps: responses.RequestsMock) -> None:
    rsps.put(f"{CLOUD}{API}issue/NC-24", status=204, headers=NEAR)
    gateway = cloud_gateway()
    seen: list[Pressure | None] = []
    worker = threading.Thread(target=lambda: (gateway.update_issue("NC-24", {"summary": "s"}),
                                              seen.append(gateway.take_pressure())))
    worker.start()
    worker.join(10)
    assert seen and seen[0] is not None and seen[0].near_limit
    assert gateway.take_pressure() is None


def test_create_issue_read_timeout_is_an_unknown_outcome(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{CLOUD}{API}issue", body=requests.exceptions.ReadTimeout("Read timed out. (read timeout=10)"))
    before = jira_calls("create_issue", "timeout")
    with pytest.raises(JiraError) as caught:
        cloud_gateway().create_issue(CREATE_FIELDS)
    assert len(rsps.calls) == 1
    error = caught.value
    assert (error.status, error.retryable, error.outcome_unknown, error.retry_after) == (None, True, True, None)
    assert jira_calls("create_issue", "timeout") == before + 1


@pytest.mark.parametrize(("exc", "unknown"), [
    (requests.exceptions.ConnectTimeout("connect timed out"), False),
    (requests.exceptions.ConnectionError(MaxRetryError(None, "/rest/api/2/issue",  # type: ignore[arg-type]
                                                       NewConnectionError(None, "refused"))),  # type: ignore[arg-type]
     False),
    (requests.exceptions.ConnectionError(ProtocolError("Connection aborted.", RemoteDisconnected("closed"))), True),
    (requests.exceptions.ChunkedEncodingError("Connection broken"), True),
])
def test_connection_errors_say_whether_the_create_may_have_happened(
        rsps: responses.RequestsMock, exc: Exception, unknown: bool) -> None:
    rsps.post(f"{CLOUD}{API}issue", body=exc)
    with pytest.raises(JiraError) as caught:
        cloud_gateway().create_issue(CREATE_FIELDS)
    assert len(rsps.calls) == 1
    assert (caught.value.status, caught.value.retryable, caught.value.outcome_unknown) == (None, True, unknown)


def test_400_carries_jiras_message_and_is_final(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{CLOUD}{API}issue", json=fixture("error_400_fields"), status=400)
    with pytest.raises(JiraError) as caught:
        cloud_gateway().create_issue({**CREATE_FIELDS, "priority": {"name": "Urgentt"}})
    error = caught.value
    assert error.message == "priority: Priority name 'Urgentt' is not valid"
    assert (error.status, error.retryable, error.outcome_unknown, error.retry_after) == (400, False, False, None)
    assert str(error) == "Jira HTTP 400: priority: Priority name 'Urgentt' is not valid"


def test_error_messages_and_errors_are_joined(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{CLOUD}{API}issue", json=fixture("error_400_mixed"), status=400)
    with pytest.raises(JiraError) as caught:
        cloud_gateway().create_issue(CREATE_FIELDS)
    assert caught.value.message == (
        "Field 'customfield_10042' cannot be set. It is not on the appropriate screen, or unknown.; "
        "labels: Field 'labels' cannot be set. It is not on the appropriate screen, or unknown.; "
        "summary: You must specify a summary of the issue.")


@pytest.mark.parametrize(("status", "retryable", "unknown"), [
    (401, False, False), (403, False, False), (404, False, False), (408, True, False), (409, True, False),
    (413, False, False), (500, True, True), (502, True, True), (504, True, True),
])
def test_status_classification(rsps: responses.RequestsMock, status: int, retryable: bool, unknown: bool) -> None:
    rsps.post(f"{CLOUD}{API}issue", body="<html>gateway</html>", status=status, content_type="text/html")
    with pytest.raises(JiraError) as caught:
        cloud_gateway().create_issue(CREATE_FIELDS)
    assert len(rsps.calls) == 1
    assert (caught.value.retryable, caught.value.outcome_unknown) == (retryable, unknown)
    assert "<html>" not in caught.value.message


def test_create_answer_without_key_is_an_unknown_outcome(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{CLOUD}{API}issue", body="", status=201)
    with pytest.raises(JiraError) as caught:
        cloud_gateway().create_issue(CREATE_FIELDS)
    assert (caught.value.retryable, caught.value.outcome_unknown) == (True, True)


def test_redirects_are_reported_not_followed(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{CLOUD}{API}issue", status=301, headers={"Location": "https://jira.example.org/rest/api/2/issue"})
    with pytest.raises(JiraError) as caught:
        cloud_gateway().create_issue(CREATE_FIELDS)
    assert len(rsps.calls) == 1
    assert (caught.value.status, caught.value.retryable) == (301, False)
    assert "NC_CONNECTOR_JIRA_URL" in caught.value.message


def test_credentials_never_appear_in_errors(rsps: responses.RequestsMock) -> None:
    # Contrived echoes of the credentials: in Jira's body, and in a transport error's text.
    rsps.post(f"{CLOUD}{API}issue", status=401,
              json={"errorMessages": [f"Basic auth {BASIC} with token {TOKEN} was refused"]})
    rsps.put(f"{CLOUD}{API}issue/NC-24", body=requests.exceptions.ConnectionError(f"boom {TOKEN}"))
    gateway = cloud_gateway()
    errors = []
    for attempt in (lambda: gateway.create_issue(CREATE_FIELDS), lambda: gateway.update_issue("NC-24", {})):
        with pytest.raises(JiraError) as caught:
            attempt()
        errors.append(caught.value)
    for error in errors:
        shown = " ".join([error.message, str(error), repr(error), *map(str, error.args)])
        assert TOKEN not in shown and BASIC.split()[1] not in shown
        assert "<secret>" in shown
        # The library's JIRAError (its str() dumps headers and cookies) is not chained into tracebacks.
        assert error.__cause__ is None and error.__suppress_context__


# -- the other calls -------------------------------------------------------------------------------


def test_update_issue_puts_fields(rsps: responses.RequestsMock) -> None:
    rsps.put(f"{CLOUD}{API}issue/NC-24", status=204)
    fields = {"summary": "NCR-12: new title", "description": "plain text", "labels": ["qualio-nc", LABEL]}
    cloud_gateway().update_issue("NC-24", fields)
    (call,) = rsps.calls
    check_request(call, "PUT", f"{API}issue/NC-24", body={"fields": fields})


def test_get_issue_reads_status_and_transitions_in_one_request(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{CLOUD}{API}issue/NC-24", json=fixture("issue_nc_24_status_transitions"))
    state = cloud_gateway().get_issue("NC-24")
    assert state == IssueState(key="NC-24", status="In Progress", transitions=[
        Transition("21", "Start work", "In Progress"), Transition("31", "Done", "Done")])
    (call,) = rsps.calls
    check_request(call, "GET", f"{API}issue/NC-24", query={"fields": ["status"], "expand": ["transitions"]})


def test_get_issue_reports_the_current_key_of_a_moved_issue(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{CLOUD}{API}issue/NC-24", json={**fixture("issue_nc_24_status_transitions"), "key": "QA-7"})
    assert cloud_gateway().get_issue("NC-24").key == "QA-7"


def test_get_issue_404(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{CLOUD}{API}issue/NC-99", json=fixture("error_404_issue"), status=404)
    with pytest.raises(JiraError) as caught:
        cloud_gateway().get_issue("NC-99")
    assert (caught.value.status, caught.value.retryable) == (404, False)
    assert caught.value.message == "Issue does not exist or you do not have permission to see it."


def test_transition_issue_sends_the_id_as_a_string(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{CLOUD}{API}issue/NC-24/transitions", status=204)
    cloud_gateway().transition_issue("NC-24", "31")
    check_request(rsps.calls[0], "POST", f"{API}issue/NC-24/transitions", body={"transition": {"id": "31"}})


def test_add_comment_returns_its_id(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{CLOUD}{API}issue/NC-24/comment", json=fixture("comment_201"), status=201)
    assert cloud_gateway().add_comment("NC-24", "Qualio: status changed to closed.") == "10010"
    check_request(rsps.calls[0], "POST", f"{API}issue/NC-24/comment",
                  body={"body": "Qualio: status changed to closed."})


def test_add_comment_answer_without_id_is_an_unknown_outcome(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{CLOUD}{API}issue/NC-24/comment", body="", status=201)
    with pytest.raises(JiraError) as caught:
        cloud_gateway().add_comment("NC-24", "text")
    assert (caught.value.retryable, caught.value.outcome_unknown) == (True, True)


def test_comments_lists_id_and_body_oldest_first(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{CLOUD}{API}issue/NC-24/comment", json=fixture("comments_nc_24"))
    assert cloud_gateway().comments("NC-24") == [
        ("10010", "Qualio: status changed to open.\n[qualio-comment:NCR-12:1]"),
        ("10011", "Looked at the cleaning log, agreed."),
    ]
    check_request(rsps.calls[0], "GET", f"{API}issue/NC-24/comment",
                  query={"startAt": ["0"], "maxResults": ["100"], "orderBy": ["created"]})


def test_comments_pages_by_start_at(rsps: responses.RequestsMock) -> None:
    page = fixture("comments_nc_24")
    rsps.get(f"{CLOUD}{API}issue/NC-24/comment", json={**page, "maxResults": 1, "comments": page["comments"][:1]})
    rsps.get(f"{CLOUD}{API}issue/NC-24/comment",
             json={**page, "startAt": 1, "maxResults": 1, "comments": page["comments"][1:]})
    assert [c for c, _ in cloud_gateway().comments("NC-24")] == ["10010", "10011"]
    starts = [parse_qs(urlsplit(str(c.request.url)).query)["startAt"] for c in rsps.calls]
    assert starts == [["0"], ["1"]]


REMOTE_LINK: dict[str, Any] = {
    "globalId": "qualio-event=NCR-12",
    "application": {"type": "com.qualio", "name": "Qualio"},
    "relationship": "non-conformance",
    "object": {"url": "https://app.qualio.com/quality-events/events/123456", "title": "NCR-12",
               "summary": "Non Compliance: procedure was not followed",
               "icon": {"url16x16": "https://app.qualio.com/favicon-16.png", "title": "Qualio"},
               "status": {"resolved": False}},
}


def test_upsert_remote_link_posts_with_global_id(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{CLOUD}{API}issue/NC-24/remotelink", json=fixture("remotelink_201"), status=201)
    rsps.post(f"{CLOUD}{API}issue/NC-24/remotelink", json=fixture("remotelink_201"), status=200)
    gateway = cloud_gateway()
    gateway.upsert_remote_link("NC-24", REMOTE_LINK)
    gateway.upsert_remote_link("NC-24", REMOTE_LINK)  # the same globalId again: Jira updates the link
    for call in rsps.calls:
        check_request(call, "POST", f"{API}issue/NC-24/remotelink", body=REMOTE_LINK)


@pytest.mark.parametrize("link", [
    {"object": {"url": "https://q/1", "title": "NCR-1"}},
    {"globalId": "qualio-event=NCR-1", "object": {"url": "https://q/1"}},
])
def test_upsert_remote_link_refuses_links_it_could_not_update(rsps: responses.RequestsMock,
                                                             link: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"globalId|title"):
        cloud_gateway().upsert_remote_link("NC-24", link)
    assert len(rsps.calls) == 0


def test_fields(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{CLOUD}{API}field", json=fixture("fields"))
    assert cloud_gateway().fields() == [
        FieldInfo("summary", "Summary", "string", None),
        FieldInfo("labels", "Labels", "array", "string"),
        FieldInfo("customfield_10042", "Severity", "option", None),
        FieldInfo("thumbnail", "Images", "", None),
    ]
    check_request(rsps.calls[0], "GET", f"{API}field")


def test_account_id_on_cloud_searches_by_query(rsps: responses.RequestsMock) -> None:
    mock_server_info(rsps)
    rsps.get(f"{CLOUD}{API}user/search", json=fixture("user_search_cloud"))
    assert cloud_gateway().account_id("dana@example.com") == "5b10ac8d82e05b22cc7d4ef5"
    check_request(rsps.calls[1], "GET", f"{API}user/search", query={"query": ["dana@example.com"]})


def test_account_id_on_server_is_the_user_name(rsps: responses.RequestsMock) -> None:
    mock_server_info(rsps, SERVER, "server")
    rsps.get(f"{SERVER}{API}user/search", json=fixture("user_search_server"))
    assert server_gateway().account_id("Dana@Example.com") == "dscully"
    check_request(rsps.calls[1], "GET", f"{API}user/search", query={"username": ["Dana@Example.com"]}, auth=BEARER)


@pytest.mark.parametrize("users", [
    [],
    [{"accountId": "a1", "active": False}],
    [{"accountId": "a1", "active": True}, {"accountId": "a2", "active": True}],
])
def test_account_id_is_none_without_one_active_match(rsps: responses.RequestsMock,
                                                     users: list[dict[str, Any]]) -> None:
    mock_server_info(rsps)
    rsps.get(f"{CLOUD}{API}user/search", json=users)
    assert cloud_gateway().account_id("nobody@example.com") is None


# -- check_project ---------------------------------------------------------------------------------


def mock_project_checks(rsps: responses.RequestsMock, *, permissions: dict[str, Any] | None = None,
                        createmeta: dict[str, Any] | None = None) -> None:
    rsps.get(f"{CLOUD}{API}project/NC", json=fixture("project_nc"))
    rsps.get(f"{CLOUD}{API}mypermissions", json=permissions or fixture("mypermissions_all"))
    if createmeta is not None:
        rsps.get(f"{CLOUD}{API}issue/createmeta/NC/issuetypes/10001", json=createmeta)


def test_check_project_passes(rsps: responses.RequestsMock) -> None:
    mock_project_checks(rsps, createmeta=fixture("createmeta_bug"))
    assert cloud_gateway().check_project("NC", "Bug") == []
    project, permissions, createmeta = rsps.calls
    check_request(project, "GET", f"{API}project/NC")
    check_request(permissions, "GET", f"{API}mypermissions", query={
        "projectKey": ["NC"],
        "permissions": ["BROWSE_PROJECTS,CREATE_ISSUES,EDIT_ISSUES,TRANSITION_ISSUES,ADD_COMMENTS,LINK_ISSUES"]})
    check_request(createmeta, "GET", f"{API}issue/createmeta/NC/issuetypes/10001", query={"maxResults": ["200"]})


def test_check_project_reports_problems(rsps: responses.RequestsMock) -> None:
    permissions = fixture("mypermissions_all")
    permissions["permissions"]["LINK_ISSUES"]["havePermission"] = False
    meta = fixture("createmeta_bug")
    meta["fields"] = [f for f in meta["fields"] if f["fieldId"] != "labels"]
    mock_project_checks(rsps, permissions=permissions, createmeta=meta)
    assert cloud_gateway().check_project("NC", "bug") == [
        "the Jira user lacks the LINK_ISSUES permission in project 'NC'",
        "the labels field is not on the create screen of NC/bug: the connector finds its issues again by label",
    ]


def test_check_project_unknown_issue_type(rsps: responses.RequestsMock) -> None:
    mock_project_checks(rsps)
    assert cloud_gateway().check_project("NC", "Non-conformance") == [
        "issue type 'Non-conformance' is not available in project 'NC' (available: Bug, Task)"]


def test_check_project_missing_project(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{CLOUD}{API}project/XX", status=404,
             json={"errorMessages": ["No project could be found with key 'XX'."], "errors": {}})
    assert cloud_gateway().check_project("XX", "Bug") == [
        "project 'XX' does not exist or the Jira user cannot browse it"]


def test_check_project_reports_bad_credentials(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{CLOUD}{API}project/NC", status=401, body="", headers={"X-Seraph-LoginReason": "AUTHENTICATED_FAILED"})
    (problem,) = cloud_gateway().check_project("NC", "Bug")
    assert problem == "cannot read project 'NC': Jira HTTP 401: HTTP 401 Unauthorized"


# -- settings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("env", "named"), [
    ({}, "NC_CONNECTOR_JIRA_URL"),
    ({"NC_CONNECTOR_JIRA_URL": CLOUD}, "NC_CONNECTOR_JIRA_PAT"),
    ({"NC_CONNECTOR_JIRA_URL": CLOUD, "NC_CONNECTOR_JIRA_API_TOKEN": TOKEN}, "NC_CONNECTOR_JIRA_EMAIL"),
    ({"NC_CONNECTOR_JIRA_URL": CLOUD, "NC_CONNECTOR_JIRA_EMAIL": EMAIL, "NC_CONNECTOR_JIRA_API_TOKEN": TOKEN,
      "NC_CONNECTOR_JIRA_PAT": PAT}, "not both"),
])
def test_gateway_from_settings_names_the_missing_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named) as caught:
        gateway_from_settings(load_settings(env))
    assert TOKEN not in str(caught.value) and PAT not in str(caught.value)


def test_gateway_from_settings_with_a_pat(rsps: responses.RequestsMock) -> None:
    settings = load_settings({"NC_CONNECTOR_JIRA_URL": SERVER + "/", "NC_CONNECTOR_JIRA_PAT": PAT,
                              "NC_CONNECTOR_JIRA_TIMEOUT": "3"})
    gateway = gateway_from_settings(settings)
    assert gateway._client._session.timeout == 3.0
    rsps.get(f"{SERVER}{API}field", json=[])
    assert gateway.fields() == []
    check_request(rsps.calls[0], "GET", f"{API}field", auth=BEARER)


# -- the real transport: one attempt, explicit timeout ---------------------------------------------


class TinyServer:
    """A local TCP server that reads each request's head, then replies, hangs or hangs up."""

    def __init__(self, behaviour: str, reply: bytes = b"") -> None:
        self.behaviour, self.reply = behaviour, reply
        self.connections = 0
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.connections += 1
            with conn:
                self._handle(conn)

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(2)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            if self.behaviour == "reply":
                conn.sendall(self.reply)
            elif self.behaviour == "hang":
                self._stop.wait(2)
        except OSError:
            return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(3)
        self._sock.close()


@pytest.fixture
def tiny_server(request: pytest.FixtureRequest) -> Iterator[TinyServer]:
    server = TinyServer(*request.param)
    yield server
    server.close()


@pytest.mark.parametrize("tiny_server", [("hang",)], indirect=True)
def test_real_read_timeout_is_one_attempt_with_unknown_outcome(tiny_server: TinyServer) -> None:
    gateway = JiraClientGateway(tiny_server.url, email=EMAIL, api_token=TOKEN, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(JiraError) as caught:
        gateway.create_issue(CREATE_FIELDS)
    assert time.monotonic() - started < 1.5
    assert (caught.value.status, caught.value.retryable, caught.value.outcome_unknown) == (None, True, True)
    assert tiny_server.connections == 1


@pytest.mark.parametrize("tiny_server", [("close",)], indirect=True)
def test_real_dropped_connection_is_one_attempt_with_unknown_outcome(tiny_server: TinyServer) -> None:
    gateway = JiraClientGateway(tiny_server.url, email=EMAIL, api_token=TOKEN, timeout=1)
    with pytest.raises(JiraError) as caught:
        gateway.create_issue(CREATE_FIELDS)
    assert (caught.value.retryable, caught.value.outcome_unknown) == (True, True)
    assert tiny_server.connections == 1


@pytest.mark.parametrize("tiny_server", [(
    "reply", b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\n"
             b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")], indirect=True)
def test_real_503_is_not_retried_by_the_client(tiny_server: TinyServer) -> None:
    gateway = JiraClientGateway(tiny_server.url, email=EMAIL, api_token=TOKEN, timeout=1)
    started = time.monotonic()
    with pytest.raises(JiraError) as caught:
        gateway.create_issue(CREATE_FIELDS)
    # ResilientSession, if it retried, would first sleep 1-2 s (2 x Retry-After, jittered).
    assert time.monotonic() - started < 0.9
    assert (caught.value.status, caught.value.retry_after, caught.value.retryable) == (503, 1.0, True)
    assert tiny_server.connections == 1


def test_real_refused_connection_was_not_sent() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    gateway = JiraClientGateway(f"http://127.0.0.1:{port}", email=EMAIL, api_token=TOKEN, timeout=1)
    with pytest.raises(JiraError) as caught:
        gateway.create_issue(CREATE_FIELDS)
    assert (caught.value.status, caught.value.retryable, caught.value.outcome_unknown) == (None, True, False)
