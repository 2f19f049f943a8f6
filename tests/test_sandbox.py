"""The Jira sandbox: every endpoint against Atlassian's published schemas, its faults, and the real `jira` client.

Success responses and error bodies are checked against the OpenAPI description's schema for the twin
v3 path (v2 takes plain strings where v3 takes ADF; the schemas allow both). Most tests use Flask's
test client with a fake clock and a recording sleep; the last few go over real loopback HTTP.
"""

from __future__ import annotations

import argparse
import base64
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient
from jira import JIRA

import connector.sandbox.__main__ as sandbox_main
from connector.sandbox import add_arguments, create_sandbox_app, options_from_args, start_in_thread
from connector.sandbox.state import SandboxConfig, SandboxState
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


# -- server, identity and reference data -----------------------------------------------------------------


@pytest.mark.parametrize("deployment", ["Server", "Cloud"])
def test_server_info_is_anonymous_and_matches_the_schema(make_state: Callable[..., SandboxState],
                                                        deployment: str) -> None:
    client = create_sandbox_app(make_state(deployment_type=deployment)).test_client()
    body = assert_response(client.get(f"{V2}/serverInfo"), f"{V3}/serverInfo", 200)
    assert body["deploymentType"] == deployment
    assert body["versionNumbers"] == ([1001, 0, 0] if deployment == "Cloud" else [9, 12, 15])
    assert body["baseUrl"] == "http://localhost"


def test_rest_requires_basic_or_bearer_credentials(client: FlaskClient) -> None:
    missing = assert_error(client.get(f"{V2}/myself"), 401)
    assert missing["errorMessages"] == ["You are not authenticated. Authentication required to perform this operation."]
    wrong = client.get(f"{V2}/myself", auth=(EMAIL, "not-the-token"))
    assert_error(wrong, 401)
    assert wrong.headers["X-Seraph-LoginReason"] == "AUTHENTICATED_FAILED"
    assert_error(client.get(f"{V2}/issue/QA-1", headers={"Authorization": "Bearer wrong"}), 401)
    assert client.get(f"{V2}/myself", auth=(EMAIL, TOKEN)).status_code == 200
    assert client.get(f"{V2}/myself", auth=("sandbox", TOKEN)).status_code == 200
    assert client.get(f"{V2}/myself", headers={"Authorization": f"Bearer {PAT}"}).status_code == 200


def test_credentials_are_configurable(make_state: Callable[..., SandboxState]) -> None:
    client = create_sandbox_app(make_state(email="bot@corp.example", token="t0k", pat="p4t")).test_client()
    assert client.get(f"{V2}/myself", auth=("bot@corp.example", "t0k")).get_json()["emailAddress"] == "bot@corp.example"
    assert client.get(f"{V2}/myself", headers={"Authorization": "Bearer p4t"}).status_code == 200
    assert client.get(f"{V2}/myself", auth=(EMAIL, TOKEN)).status_code == 401


REFERENCE_ENDPOINTS = [
    ("myself", "myself"),
    ("field", "field"),
    ("project", "project"),
    ("project/QA", "project/{projectIdOrKey}"),
    ("project/10000", "project/{projectIdOrKey}"),
    ("priority", "priority"),
    ("issuetype", "issuetype"),
    ("resolution", "resolution"),
    ("status", "status"),
    ("user/search?query=dana", "user/search"),
    ("user/search?username=dana", "user/search"),
    ("mypermissions?projectKey=QA&permissions=CREATE_ISSUES,EDIT_ISSUES", "mypermissions"),
    ("issue/createmeta/QA/issuetypes/10002", "issue/createmeta/{projectIdOrKey}/issuetypes/{issueTypeId}"),
]


@pytest.mark.parametrize("deployment", ["Server", "Cloud"])
@pytest.mark.parametrize(("v2_path", "v3_path"), REFERENCE_ENDPOINTS)
def test_reference_endpoints_match_the_schemas(make_state: Callable[..., SandboxState], deployment: str,
                                               v2_path: str, v3_path: str) -> None:
    client = create_sandbox_app(make_state(deployment_type=deployment)).test_client()
    assert_response(call(client, "GET", f"{V2}/{v2_path}"), f"{V3}/{v3_path}", 200)


def test_create_screen_and_permissions_for_live_mapping_checks(client: FlaskClient) -> None:
    meta = call(client, "GET", f"{V2}/issue/createmeta/QA/issuetypes/10002").get_json()
    ids = {f["fieldId"]: f for f in meta["values"]}  # Data Center's name for the list
    assert "labels" in ids and ids["summary"]["required"] and not ids["labels"]["required"]
    held = call(client, "GET", f"{V2}/mypermissions?projectKey=QA&permissions=CREATE_ISSUES,ADMINISTER_PROJECTS")
    assert {k: v["havePermission"] for k, v in held.get_json()["permissions"].items()} == {
        "CREATE_ISSUES": True, "ADMINISTER_PROJECTS": False}
    assert_error(call(client, "GET", f"{V2}/issue/createmeta/NOPE/issuetypes/10002"), 404)
    assert_error(call(client, "GET", f"{V2}/issue/createmeta/QA/issuetypes/999"), 404)


def test_field_list_describes_system_and_custom_fields(client: FlaskClient) -> None:
    fields = {f["id"]: f for f in call(client, "GET", f"{V2}/field").get_json()}
    assert {"summary", "description", "labels", "priority", "status", "assignee", "duedate", "components",
            "issuetype", "project"} <= set(fields)
    assert fields["labels"]["schema"] == {"type": "array", "items": "string", "system": "labels"}
    severity = fields["customfield_10010"]
    assert (severity["name"], severity["custom"], severity["schema"]["type"]) == ("Severity", True, "option")
    assert severity["clauseNames"] == ["cf[10010]", "Severity"]
    assert fields["customfield_10011"]["name"] == "NC Link"
    assert fields["customfield_10012"]["schema"]["custom"].endswith(":textarea")


def test_users_are_addressed_by_account_id_on_cloud_and_by_name_on_server(
        make_state: Callable[..., SandboxState]) -> None:
    cloud = create_sandbox_app(make_state(deployment_type="Cloud")).test_client()
    server = create_sandbox_app(make_state()).test_client()
    [dana] = call(cloud, "GET", f"{V2}/user/search?query=dana@example.com").get_json()
    assert dana["accountId"].startswith("712020:") and "name" not in dana
    assert call(server, "GET", f"{V2}/user/search?username=dana").get_json()[0]["name"] == "dana"
    assert_error(call(cloud, "GET", f"{V2}/user/search"), 400)
    assert_error(call(cloud, "GET", f"{V2}/project/NOPE"), 404)


# -- issues ------------------------------------------------------------------------------------------------


def test_create_and_read_an_issue(client: FlaskClient) -> None:
    fields = {"description": "Found during the weekly check.\nSecond line.", "labels": ["qualio-nc-NC-7"],
              "priority": {"name": "High"}, "duedate": "2025-07-01", "components": [{"name": "Manufacturing"}],
              "assignee": {"name": "dana"}, "customfield_10010": {"value": "Major"},
              "customfield_10011": "https://acme.qualio.com/events/NC-7", "customfield_10012": "Seal wear"}
    created = assert_response(call(client, "POST", f"{V2}/issue", new_issue(**fields)), f"{V3}/issue", 201)
    assert created == {"id": "10001", "key": "QA-1", "self": "http://localhost/rest/api/2/issue/10001"}

    issue = call(client, "GET", f"{V2}/issue/QA-1").get_json()
    assert_issue(issue)
    assert call(client, "GET", f"{V2}/issue/10001").get_json() == issue
    assert call(client, "GET", f"{V2}/issue/qa-1").get_json()["key"] == "QA-1"
    got = issue["fields"]
    assert got["status"]["name"] == "To Do" and got["status"]["statusCategory"]["key"] == "new"
    assert got["description"] == fields["description"]
    assert (got["priority"]["name"], got["issuetype"]["name"]) == ("High", "Non-conformance")
    assert got["project"]["key"] == "QA"
    assert (got["assignee"]["name"], got["reporter"]["emailAddress"]) == ("dana", EMAIL)
    assert got["customfield_10010"]["value"] == "Major"
    assert got["components"][0]["name"] == "Manufacturing"
    assert got["created"] == got["updated"] == "2025-06-15T15:06:40.000+0000"
    assert got["resolution"] is None and got["comment"]["total"] == 0


def test_get_issue_honours_fields_and_expand(client: FlaskClient) -> None:
    key = create(client, labels=["a"])
    issue = call(client, "GET", f"{V2}/issue/{key}", query_string={"fields": "summary,labels",
                                                                   "expand": "names,schema"}).get_json()
    assert_issue(issue)
    assert set(issue["fields"]) == {"summary", "labels"}
    assert issue["names"] == {"summary": "Summary", "labels": "Labels"}
    navigable = call(client, "GET", f"{V2}/issue/{key}", query_string={"fields": "*navigable,-labels"}).get_json()
    assert "comment" not in navigable["fields"] and "labels" not in navigable["fields"]


def test_get_issue_expands_the_transitions_available_from_its_status(client: FlaskClient) -> None:
    key = create(client)
    issue = call(client, "GET", f"{V2}/issue/{key}", query_string={"fields": "status",
                                                                   "expand": "transitions"}).get_json()
    assert_issue(issue)
    assert set(issue["fields"]) == {"status"}
    listed = call(client, "GET", f"{V2}/issue/{key}/transitions").get_json()["transitions"]
    assert issue["transitions"] == listed and listed
    plain = call(client, "GET", f"{V2}/issue/{key}", query_string={"fields": "status"}).get_json()
    assert "transitions" not in plain


def test_defaults_when_optional_fields_are_left_out(client: FlaskClient) -> None:
    fields = call(client, "GET", f"{V2}/issue/{create(client)}").get_json()["fields"]
    assert fields["priority"]["name"] == "Medium"
    assert (fields["labels"], fields["components"], fields["assignee"], fields["description"]) == ([], [], None, None)


BAD_FIELDS = [
    ({"customfield_99999": "x"}, "customfield_99999",
     "Field 'customfield_99999' cannot be set. It is not on the appropriate screen, or unknown."),
    ({"Severity": {"value": "Major"}}, "Severity", "cannot be set"),
    ({"summary": None}, "summary", "You must specify a summary of the issue."),
    ({"summary": "two\nlines"}, "summary", "newline"),
    ({"summary": "x" * 256}, "summary", "less than 255 characters"),
    ({"project": {"key": "NOPE"}}, "project", "Specify a valid project ID or key"),
    ({"issuetype": {"name": "Epic"}}, "issuetype", "The issue type selected is invalid."),
    ({"status": {"name": "Done"}}, "status", "cannot be set"),
    ({"resolution": {"name": "Done"}}, "resolution", "cannot be set"),
    ({"description": {"type": "doc", "version": 1, "content": []}}, "description", "must be a string"),
    ({"description": "x" * 32768}, "description", "32,767 characters"),
    ({"labels": ["two words"]}, "labels", "contains spaces"),
    ({"labels": "not-a-list"}, "labels", "array"),
    ({"priority": {"name": "P1"}}, "priority", "Priority name 'P1' is not valid"),
    ({"priority": {}}, "priority", "Could not find valid 'id' or 'name' in priority object."),
    ({"customfield_10010": {"value": "Catastrophic"}}, "customfield_10010", "Option value 'Catastrophic' is not valid"),
    ({"customfield_10011": "not a url"}, "customfield_10011", "Not a valid URL"),
    ({"duedate": "01/07/2025"}, "duedate", "Error parsing date string"),
    ({"components": [{"name": "Nope"}]}, "components", "Component name 'Nope' is not valid"),
    ({"assignee": {"name": "nobody"}}, "assignee", "User 'nobody' does not exist."),
]


@pytest.mark.parametrize(("fields", "field_id", "message"), BAD_FIELDS)
def test_create_rejects_bad_fields_like_jira(client: FlaskClient, fields: Json, field_id: str, message: str) -> None:
    body = assert_error(call(client, "POST", f"{V2}/issue", new_issue(**fields)), 400)
    assert body["errorMessages"] == []
    assert message in body["errors"][field_id]
    assert call(client, "GET", "/_sandbox/stats").get_json()["creates"] == 0


def test_create_reports_every_missing_required_field(client: FlaskClient) -> None:
    body = assert_error(call(client, "POST", f"{V2}/issue", {"fields": {}}), 400)
    assert set(body["errors"]) == {"project", "issuetype", "summary"}
    assert_error(call(client, "POST", f"{V2}/issue", ["not", "an", "object"]), 400)
    as_json, as_text = {**AUTH, "Content-Type": "application/json"}, {**AUTH, "Content-Type": "text/plain"}
    assert_error(call(client, "POST", f"{V2}/issue", data="{nope", headers=as_json), 400)
    assert_error(call(client, "POST", f"{V2}/issue", data="x=1", headers=as_text), 415)


def test_cloud_assigns_by_account_id_only(make_state: Callable[..., SandboxState]) -> None:
    client = create_sandbox_app(make_state(deployment_type="Cloud")).test_client()
    body = assert_error(call(client, "POST", f"{V2}/issue", new_issue(assignee={"name": "dana"})), 400)
    assert "GDPR" in body["errors"]["assignee"]
    dana = call(client, "GET", f"{V2}/user/search?query=dana").get_json()[0]["accountId"]
    key = create(client, assignee={"accountId": dana})
    assert call(client, "GET", f"{V2}/issue/{key}").get_json()["fields"]["assignee"]["accountId"] == dana


UNKNOWN_ISSUE_CALLS = [
    ("GET", "issue/QA-99", None), ("PUT", "issue/QA-99", {"fields": {"summary": "x"}}), ("DELETE", "issue/QA-99", None),
    ("GET", "issue/QA-99/transitions", None), ("POST", "issue/QA-99/transitions", {"transition": {"id": "11"}}),
    ("GET", "issue/QA-99/comment", None), ("POST", "issue/QA-99/comment", {"body": "x"}),
    ("GET", "issue/QA-99/remotelink", None), ("POST", "issue/QA-99/remotelink", {"object": {"url": "u", "title": "t"}}),
]


@pytest.mark.parametrize(("method", "path", "body"), UNKNOWN_ISSUE_CALLS)
def test_unknown_issue_is_404(client: FlaskClient, method: str, path: str, body: Any) -> None:
    assert assert_error(call(client, method, f"{V2}/{path}", body), 404)["errorMessages"] == [NOT_FOUND]


def test_unknown_rest_path_is_a_jira_style_404(client: FlaskClient) -> None:
    body = assert_error(call(client, "GET", f"{V2}/nothing-here"), 404)
    assert body["errorMessages"] == ["null for uri: http://localhost/rest/api/2/nothing-here"]


def test_edit_issue(client: FlaskClient, clock: FakeClock) -> None:
    key = create(client, labels=["qualio", "old"])
    clock.advance(60)
    update = {"fields": {"summary": "Pump P-7 recalibrated", "priority": {"id": "1"}, "description": None},
              "update": {"labels": [{"add": "new"}, {"remove": "old"}], "comment": [{"add": {"body": "via edit"}}]}}
    response = call(client, "PUT", f"{V2}/issue/{key}", update)
    assert (response.status_code, response.get_data()) == (204, b"")
    fields = call(client, "GET", f"{V2}/issue/{key}").get_json()["fields"]
    assert (fields["summary"], fields["priority"]["name"], fields["labels"]) == ("Pump P-7 recalibrated", "Highest",
                                                                                  ["qualio", "new"])
    assert fields["updated"] != fields["created"] and fields["comment"]["comments"][0]["body"] == "via edit"

    returned = call(client, "PUT", f"{V2}/issue/{key}?returnIssue=true", {"fields": {"labels": ["set"]}})
    assert_issue(returned.get_json())
    assert returned.get_json()["fields"]["labels"] == ["set"]


@pytest.mark.parametrize(("body", "field_id"), [
    ({"fields": {"customfield_4242": "x"}}, "customfield_4242"),
    ({"fields": {"project": {"key": "QA"}}}, "project"),
    ({"fields": {"status": {"name": "Done"}}}, "status"),
    ({"update": {"labels": [{"add": "has space"}]}}, "labels"),
    ({"update": {"summary": [{"add": "x"}]}}, "summary"),
    ({"update": {"nope": [{"set": "x"}]}}, "nope"),
])
def test_edit_rejects_bad_fields(client: FlaskClient, body: Json, field_id: str) -> None:
    key = create(client)
    assert field_id in assert_error(call(client, "PUT", f"{V2}/issue/{key}", body), 400)["errors"]
    assert call(client, "GET", "/_sandbox/stats").get_json()["updates"] == 0


def test_delete_issue(client: FlaskClient) -> None:
    key = create(client)
    assert call(client, "DELETE", f"{V2}/issue/{key}").status_code == 204
    assert_error(call(client, "GET", f"{V2}/issue/{key}"), 404)


# -- workflow, comments, remote links ------------------------------------------------------------------------


def transition_names(client: FlaskClient, key: str) -> list[str]:
    body = assert_response(call(client, "GET", f"{V2}/issue/{key}/transitions"),
                           f"{V3}/issue/{{issueIdOrKey}}/transitions", 200)
    for transition in body["transitions"]:
        assert_schema(transition["to"], spec().component("StatusDetails"))
    return [t["name"] for t in body["transitions"]]


def transition(client: FlaskClient, key: str, transition_id: str, **extra: Any) -> Any:
    return call(client, "POST", f"{V2}/issue/{key}/transitions", {"transition": {"id": transition_id}, **extra})


def status_of(client: FlaskClient, key: str) -> Json:
    fields: Json = call(client, "GET", f"{V2}/issue/{key}").get_json()["fields"]
    return fields


def test_transitions_follow_the_workflow(client: FlaskClient) -> None:
    key = create(client)
    assert transition_names(client, key) == ["Start Progress", "Done"]
    assert transition(client, key, "11").status_code == 204
    assert status_of(client, key)["status"]["name"] == "In Progress"
    assert transition_names(client, key) == ["Submit for Review", "Stop Progress", "Done"]
    assert transition(client, key, "21").status_code == 204
    assert transition_names(client, key) == ["Request Changes", "Approve"]
    assert transition(client, key, "41").status_code == 204
    done = status_of(client, key)
    assert (done["status"]["name"], done["status"]["statusCategory"]["key"]) == ("Done", "done")
    assert done["resolution"]["name"] == "Done" and done["resolutiondate"] is not None
    assert transition_names(client, key) == ["Reopen"]
    assert transition(client, key, "71").status_code == 204
    reopened = status_of(client, key)
    assert (reopened["status"]["name"], reopened["resolution"]) == ("To Do", None)
    only = call(client, "GET", f"{V2}/issue/{key}/transitions?transitionId=61").get_json()["transitions"]
    assert [t["to"]["name"] for t in only] == ["Done"]


def test_invalid_transitions_are_400(client: FlaskClient) -> None:
    key = create(client)
    body = assert_error(transition(client, key, "41"), 400)
    assert body["errorMessages"] == ["Transition id '41' is not valid for this issue."]
    assert assert_error(call(client, "POST", f"{V2}/issue/{key}/transitions", {}), 400)["errorMessages"] == [
        "Missing 'transition' identifier"]
    assert "summary" in assert_error(transition(client, key, "11", fields={"summary": "x"}), 400)["errors"]
    assert status_of(client, key)["status"]["name"] == "To Do"


def test_transition_screen_sets_resolution_and_adds_comments(client: FlaskClient) -> None:
    key = create(client)
    response = transition(client, key, "61", fields={"resolution": {"name": "Won't Do"}},
                          update={"comment": [{"add": {"body": "Closed: duplicate of NC-6"}}]})
    assert response.status_code == 204
    fields = status_of(client, key)
    assert fields["resolution"]["name"] == "Won't Do"
    assert fields["comment"]["comments"][0]["body"] == "Closed: duplicate of NC-6"


def test_comments(client: FlaskClient) -> None:
    key = create(client)
    path = f"{V2}/issue/{key}/comment"
    first = assert_response(call(client, "POST", path, {"body": "Plain *wiki* text"}),
                            f"{V3}/issue/{{issueIdOrKey}}/comment", 201)
    assert (first["body"], first["author"]["emailAddress"]) == ("Plain *wiki* text", EMAIL)
    assert first["self"] == f"http://localhost/rest/api/2/issue/10001/comment/{first['id']}"
    restricted = {"body": "internal", "visibility": {"type": "role", "value": "Administrators"}}
    assert call(client, "POST", path, restricted).get_json()["visibility"]["value"] == "Administrators"
    page = assert_response(call(client, "GET", path), f"{V3}/issue/{{issueIdOrKey}}/comment", 200)
    assert (page["total"], [c["body"] for c in page["comments"]]) == (2, ["Plain *wiki* text", "internal"])
    assert call(client, "GET", path, query_string={"startAt": 1, "maxResults": 1}).get_json()["comments"][0][
        "body"] == "internal"
    adf = {"body": {"type": "doc", "version": 1, "content": []}}
    assert "comment" in assert_error(call(client, "POST", path, adf), 400)["errors"]
    assert assert_error(call(client, "POST", path, {"body": "  "}), 400)["errors"] == {
        "comment": "Comment body can not be empty!"}


def test_remote_links_upsert_by_global_id(client: FlaskClient) -> None:
    key = create(client)
    path = f"{V2}/issue/{key}/remotelink"
    v3 = f"{V3}/issue/{{issueIdOrKey}}/remotelink"
    link = {"globalId": "qualio:NC-7", "application": {"type": "com.qualio", "name": "Qualio"},
            "relationship": "tracks", "object": {"url": "https://acme.qualio.com/nc/7", "title": "NC-7"}}
    first = assert_response(call(client, "POST", path, link), v3, 201)
    assert first == {"id": 10001, "self": "http://localhost/rest/api/2/issue/QA-1/remotelink/10001"}
    renamed = {**link, "object": {"url": "https://acme.qualio.com/nc/7", "title": "NC-7: seal wear"}}
    assert assert_response(call(client, "POST", path, renamed), v3, 200) == first
    other = assert_response(call(client, "POST", path, {"object": {"url": "https://x.example", "title": "x"}}), v3, 201)
    assert other["id"] != first["id"]

    links = call(client, "GET", path).get_json()
    for item in links:  # the spec documents one RemoteIssueLink; Jira answers a list of them
        assert_schema(item, spec().component("RemoteIssueLink"))
    assert [(lk["id"], lk["object"]["title"]) for lk in links] == [(10001, "NC-7: seal wear"), (other["id"], "x")]
    assert [lk["id"] for lk in call(client, "GET", f"{path}?globalId=qualio:NC-7").get_json()] == [10001]
    single = call(client, "GET", f"{path}/10001")
    assert_response(single, f"{V3}/issue/{{issueIdOrKey}}/remotelink/{{linkId}}", 200)
    assert call(client, "DELETE", f"{path}/{other['id']}").status_code == 204
    assert_error(call(client, "GET", f"{path}/{other['id']}"), 404)
    stats = call(client, "GET", "/_sandbox/stats").get_json()
    assert (stats["remoteLinksCreated"], stats["remoteLinksUpdated"], stats["remoteLinksDeleted"]) == (2, 1, 1)


def test_remote_link_needs_url_and_title(client: FlaskClient) -> None:
    key = create(client)
    errors = assert_error(call(client, "POST", f"{V2}/issue/{key}/remotelink", {"object": {"title": "t"}}), 400)
    assert set(errors["errors"]) == {"url"}
    assert set(assert_error(call(client, "POST", f"{V2}/issue/{key}/remotelink", {}), 400)["errors"]) == {"object"}


# -- search ------------------------------------------------------------------------------------------------


@pytest.fixture
def labelled(client: FlaskClient, clock: FakeClock) -> FlaskClient:
    """QA-1 [qualio-nc-1, qualio], QA-2 [qualio-nc-2, qualio], QA-3 [other], created a second apart."""
    for labels in (["qualio-nc-1", "qualio"], ["qualio-nc-2", "qualio"], ["other"]):
        create(client, labels=labels, summary=f"Pump issue {labels[0]}")
        clock.advance(1)
    return client


@pytest.mark.parametrize(("jql", "keys"), [
    ('labels = "qualio-nc-1"', ["QA-1"]),
    ("labels = qualio-nc-1", ["QA-1"]),
    ("labels = QUALIO-NC-1", ["QA-1"]),
    ("labels in (qualio-nc-1, 'qualio-nc-2')", ["QA-2", "QA-1"]),
    ('project = QA AND labels = "qualio" ORDER BY created ASC', ["QA-1", "QA-2"]),
    ('project = "QA" AND labels in ("qualio-nc-2", other) ORDER BY created DESC', ["QA-3", "QA-2"]),
    ("labels != qualio ORDER BY key", ["QA-3"]),
    ("labels not in (qualio) ORDER BY key", ["QA-3"]),
    ("labels = qualio AND NOT labels = qualio-nc-1", ["QA-2"]),
    ("labels = qualio && labels != qualio-nc-1 || labels = other ORDER BY key", ["QA-2", "QA-3"]),
    ("(labels = other OR labels = qualio-nc-1) and project = QA order by key asc", ["QA-1", "QA-3"]),
    ("labels is EMPTY", []),
    ("key = QA-2", ["QA-2"]),
    ('project = "Quality Assurance" AND issuekey in (QA-3, 10001) ORDER BY key DESC', ["QA-3", "QA-1"]),
    ('summary ~ "pump other"', ["QA-3"]),
    ("status = 'To Do' AND issuetype = Non-conformance AND priority = Medium ORDER BY id", ["QA-1", "QA-2", "QA-3"]),
    ("created >= '2025-06-15 15:06' ORDER BY created", ["QA-1", "QA-2", "QA-3"]),
    ("created > -1d AND assignee is EMPTY AND reporter = currentUser() ORDER BY key", ["QA-1", "QA-2", "QA-3"]),
])
@pytest.mark.parametrize("path", ["search", "search/jql"])
def test_search_by_jql(labelled: FlaskClient, path: str, jql: str, keys: list[str]) -> None:
    assert search_keys(labelled, jql, path) == keys


def test_search_matches_the_schema_and_pages(labelled: FlaskClient) -> None:
    jql = "labels in (qualio, other) ORDER BY key"
    page = assert_response(call(labelled, "GET", f"{V2}/search", query_string={"jql": jql, "maxResults": 2}),
                           f"{V3}/search", 200)
    assert (page["startAt"], page["maxResults"], page["total"], len(page["issues"])) == (0, 2, 3, 2)
    for issue in page["issues"]:
        assert_issue(issue)
        assert "comment" not in issue["fields"]  # *navigable by default
    posted = call(labelled, "POST", f"{V2}/search", {"jql": jql, "startAt": 2, "fields": ["labels"]})
    body = assert_response(posted, f"{V3}/search", 200)
    assert [(i["key"], list(i["fields"])) for i in body["issues"]] == [("QA-3", ["labels"])]


def test_enhanced_search_matches_the_schema_and_pages_by_token(labelled: FlaskClient) -> None:
    jql = "project = QA ORDER BY key"
    first = assert_response(call(labelled, "GET", f"{V2}/search/jql", query_string={"jql": jql, "maxResults": 2}),
                            f"{V3}/search/jql", 200)
    assert ([i["key"] for i in first["issues"]], first["isLast"]) == (["QA-1", "QA-2"], False)
    assert first["issues"][0]["fields"] == {}  # only `id` unless fields are asked for
    second = call(labelled, "POST", f"{V2}/search/jql", {"jql": jql, "maxResults": 2, "fields": ["*all"],
                                                          "nextPageToken": first["nextPageToken"]})
    body = assert_response(second, f"{V3}/search/jql", 200)
    assert ([i["key"] for i in body["issues"]], body["isLast"], "nextPageToken" in body) == (["QA-3"], True, False)
    assert_issue(body["issues"][0])
    assert_error(call(labelled, "GET", f"{V2}/search/jql", query_string={"jql": jql, "nextPageToken": "junk"}), 400)


@pytest.mark.parametrize(("jql", "message"), [
    ('summary = "Pump"', "The operator '=' is not supported by the 'summary' field."),
    ("foo = 1", "Field 'foo' does not exist or you do not have permission to view it."),
    ("project = NOPE", "The value 'NOPE' does not exist for the field 'project'."),
    ("key = QA-999", "An issue with key 'QA-999' does not exist for field 'key'."),
    ("labels = ", "Error in the JQL Query"),
    ("labels = a labels = b", "Error in the JQL Query"),
    ("labels in (a, b", "Error in the JQL Query"),
    ("labels = x ORDER BY labels", "Field 'labels' does not support sorting."),
    ("created > 'yesterday'", "Date value 'yesterday' for field 'created' is invalid."),
    ("labels = a ; b", "The character ';' is a reserved JQL character."),
])
def test_bad_jql_is_400(labelled: FlaskClient, jql: str, message: str) -> None:
    body = assert_error(call(labelled, "GET", f"{V2}/search", query_string={"jql": jql}), 400)
    assert message in body["errorMessages"][0]


def test_search_lenient_validation_and_unbounded_queries(labelled: FlaskClient) -> None:
    lenient = call(labelled, "GET", f"{V2}/search", query_string={"jql": "key = QA-999", "validateQuery": "false"})
    assert lenient.get_json()["total"] == 0
    assert call(labelled, "GET", f"{V2}/search").get_json()["total"] == 3  # /search accepts an empty JQL
    body = assert_error(call(labelled, "GET", f"{V2}/search/jql", query_string={"jql": "order by key"}), 400)
    assert "Unbounded JQL queries are not allowed here" in body["errorMessages"][0]


def test_legacy_search_can_be_removed(make_state: Callable[..., SandboxState]) -> None:
    client = create_sandbox_app(make_state(deployment_type="Cloud", legacy_search=False)).test_client()
    assert "search/jql" in assert_error(call(client, "GET", f"{V2}/search?jql=labels=x"), 410)["errorMessages"][0]
    assert call(client, "GET", f"{V2}/search/jql?jql=labels=x").status_code == 200


def test_search_lag_hides_recent_writes(make_state: Callable[..., SandboxState], clock: FakeClock) -> None:
    state = make_state(search_lag=5)
    client = create_sandbox_app(state).test_client()
    key = create(client, labels=["qualio-nc-1"])
    assert search_keys(client, "labels = qualio-nc-1") == []
    clock.advance(4.9)
    assert search_keys(client, "labels = qualio-nc-1", "search/jql") == []
    clock.advance(0.1)
    assert search_keys(client, "labels = qualio-nc-1") == [key]

    call(client, "PUT", f"{V2}/issue/{key}", {"fields": {"labels": ["qualio-nc-1-renamed"]}})
    assert search_keys(client, "labels = qualio-nc-1") == [key]  # the index still has the old labels
    assert search_keys(client, "labels = qualio-nc-1-renamed") == []
    fresh = call(client, "GET", f"{V2}/search/jql", query_string={"jql": "labels = qualio-nc-1-renamed",
                                                                  "reconcileIssues": "10001"})
    assert [i["key"] for i in fresh.get_json()["issues"]] == [key]  # reconcileIssues reads fresh
    clock.advance(5)
    assert search_keys(client, "labels = qualio-nc-1-renamed") == [key]
    assert search_keys(client, "labels = qualio-nc-1") == []
    assert call(client, "GET", f"{V2}/issue/{key}").status_code == 200  # reads are never lagged


def test_search_lag_is_switchable_at_runtime(client: FlaskClient, state: SandboxState, clock: FakeClock) -> None:
    call(client, "POST", "/_sandbox/faults", {"searchLag": 2})
    key = create(client, labels=["x"])
    assert search_keys(client, "labels = x") == []
    clock.advance(2)
    assert search_keys(client, "labels = x") == [key]
    assert state.search_lag == 2


# -- faults ------------------------------------------------------------------------------------------------


def test_injected_429_then_503(client: FlaskClient) -> None:
    faults = {"faults": [{"kind": "rate_limit", "count": 2, "retryAfter": 3, "method": "POST",
                          "path": f"{V2}/issue"},
                         {"kind": "503", "count": 1, "retryAfter": None, "path": f"{V2}/issue/*"}]}
    settings = call(client, "POST", "/_sandbox/faults", faults).get_json()
    assert [f["kind"] for f in settings["faults"]] == ["rate_limit", "unavailable"]

    for _ in range(2):
        limited = call(client, "POST", f"{V2}/issue", new_issue())
        assert assert_error(limited, 429)["errorMessages"] == ["Rate limit exceeded."]
        assert limited.headers["Retry-After"] == "3"
        assert (limited.headers["X-RateLimit-Remaining"], limited.headers["RateLimit-Reason"]) == (
            "0", "jira-quota-tenant-based")
        assert "X-RateLimit-Limit" in limited.headers and "X-RateLimit-Reset" in limited.headers
    assert call(client, "GET", f"{V2}/myself").status_code == 200  # other requests pass
    key = create(client)
    unavailable = call(client, "GET", f"{V2}/issue/{key}")
    assert_error(unavailable, 503)
    assert "Retry-After" not in unavailable.headers
    assert call(client, "GET", f"{V2}/issue/{key}").status_code == 200
    stats = call(client, "GET", "/_sandbox/stats").get_json()
    assert (stats["faultsServed"]["rate_limit"], stats["faultsServed"]["unavailable"], stats["creates"]) == (2, 1, 1)
    assert call(client, "GET", "/_sandbox/faults").get_json()["faults"] == []


def test_fault_without_count_repeats_until_cleared(client: FlaskClient, state: SandboxState) -> None:
    state.add_fault("unavailable", None, retry_after=2, method="GET")
    assert [call(client, "GET", f"{V2}/myself").status_code for _ in range(3)] == [503, 503, 503]
    assert call(client, "POST", f"{V2}/issue", new_issue()).status_code == 201
    state.clear_faults()
    assert call(client, "GET", f"{V2}/myself").status_code == 200


def test_rate_limit_budget(client: FlaskClient, state: SandboxState, clock: FakeClock) -> None:
    call(client, "POST", "/_sandbox/faults", {"budget": {"limit": 2, "window": 10}})
    first, second = create(client), create(client)
    limited = call(client, "POST", f"{V2}/issue/{first}/comment", {"body": "third write"})
    assert_error(limited, 429)
    assert (limited.headers["Retry-After"], limited.headers["X-RateLimit-Limit"]) == ("10", "2")
    assert limited.headers["RateLimit-Reason"] == "jira-burst-based"
    assert call(client, "GET", f"{V2}/issue/{second}").status_code == 200  # reads are not budgeted
    assert call(client, "POST", f"{V2}/search/jql", {"jql": "project = QA"}).status_code == 200  # nor searches
    clock.advance(4)
    assert call(client, "PUT", f"{V2}/issue/{first}", {"fields": {"summary": "x"}}).headers["Retry-After"] == "6"
    clock.advance(6)
    assert call(client, "POST", f"{V2}/issue/{first}/comment", {"body": "now"}).status_code == 201
    assert state.stats()["faultsServed"]["budget"] == 2


def rate_limit_headers(response: Any) -> tuple[str | None, ...]:
    return tuple(response.headers.get(name) for name in
                 ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-NearLimit"))


def test_budgeted_answers_say_what_is_left_and_when_it_is_near_the_limit(client: FlaskClient, state: SandboxState,
                                                                          clock: FakeClock) -> None:
    """Like Jira Cloud: X-RateLimit-Limit/-Remaining on every counted answer, NearLimit under 20% left."""
    state.set_budget(10, 10)
    created = call(client, "POST", f"{V2}/issue", new_issue())
    key = created.get_json()["key"]
    answers = [call(client, "PUT", f"{V2}/issue/{key}", {"fields": {"summary": f"edit {n}"}}) for n in range(9)]
    refused = call(client, "POST", f"{V2}/issue/{key}/comment", {"body": "one too many"})
    assert [a.status_code for a in answers] == [204] * 9 and refused.status_code == 429
    assert [rate_limit_headers(a) for a in [created, *answers]] == [
        *[("10", str(left), None) for left in range(9, 1, -1)],  # 9 .. 2 of 10 left: 20% or more
        ("10", "1", "true"), ("10", "0", "true"),  # under 20% left
    ]
    assert rate_limit_headers(refused) == ("10", "0", "true") and refused.headers["Retry-After"] == "10"
    assert rate_limit_headers(call(client, "GET", f"{V2}/issue/{key}")) == (None, None, None)  # reads: not counted
    clock.advance(10)  # the window has moved past every earlier write
    invalid = call(client, "PUT", f"{V2}/issue/{key}", {"fields": {"bogus": 1}})
    assert invalid.status_code == 400 and rate_limit_headers(invalid) == ("10", "9", None)  # counted though refused
    state.clear_faults()
    assert rate_limit_headers(call(client, "PUT", f"{V2}/issue/{key}", {"fields": {"summary": "free"}})) == (
        None, None, None)


def test_per_issue_write_budget(client: FlaskClient, state: SandboxState) -> None:
    first, second = create(client), create(client)
    state.set_budget(1, 30, per_issue=True)
    assert call(client, "PUT", f"{V2}/issue/{first}", {"fields": {"summary": "a"}}).status_code == 204
    limited = call(client, "PUT", f"{V2}/issue/{first}", {"fields": {"summary": "b"}})
    assert (limited.status_code, limited.headers["RateLimit-Reason"]) == (429, "jira-per-issue-on-write")
    assert call(client, "PUT", f"{V2}/issue/{second}", {"fields": {"summary": "c"}}).status_code == 204
    assert create(client) == "QA-3"  # creates name no issue, so the per-issue budget does not apply


def test_request_log_records_arrivals_and_retry_after_violations(client: FlaskClient, state: SandboxState,
                                                                 clock: FakeClock) -> None:
    state.add_fault("rate_limit", retry_after=5, method="POST")
    assert call(client, "POST", f"{V2}/issue", new_issue()).status_code == 429
    clock.advance(2)
    create(client)  # too early: Retry-After said 5 seconds
    clock.advance(4)
    create(client)
    log = call(client, "GET", "/_sandbox/requests", query_string={"method": "POST"}).get_json()
    assert [(r["status"], r["fault"], r["retryAfter"], r["time"] - START) for r in log["requests"]] == [
        (429, "rate_limit", 5, 0), (201, None, None, 2), (201, None, None, 6)]
    first = log["requests"][0]
    assert (first["method"], first["path"], first["delivered"]) == ("POST", f"{V2}/issue", True)
    assert first["body"]["fields"]["summary"] == "Pump P-7 calibration overdue"
    assert [(v["limited"], v["request"], v["early"]) for v in log["retryAfterViolations"]] == [(1, 2, 3.0)]
    assert state.stats()["retryAfterViolations"] == 1
    assert call(client, "GET", "/_sandbox/requests", query_string={"since": 2}).get_json()["requests"][0]["seq"] == 3
    paths = {r["path"] for r in call(client, "GET", "/_sandbox/requests").get_json()["requests"]}
    assert not any(p.startswith("/_sandbox") for p in paths)  # the control API is never logged


def test_latency_rules_and_slow_answers(make_state: Callable[..., SandboxState], sleeps: list[float]) -> None:
    state = make_state(latency=0.05)
    client = create_sandbox_app(state).test_client()
    call(client, "GET", f"{V2}/myself")
    assert sleeps == [0.05]
    call(client, "POST", "/_sandbox/faults", {"latency": {"seconds": 0.25, "method": "POST", "path": f"{V2}/issue"}})
    call(client, "GET", f"{V2}/myself")
    create(client)
    assert sleeps == [0.05, 0.25]
    state.add_fault("slow", seconds=12, path=f"{V2}/issue")
    create(client)  # answered late, but the issue is created
    assert sleeps == [0.05, 0.25, 0.25, 12]
    assert state.stats()["creates"] == 2


def test_dropped_connections(client: FlaskClient, state: SandboxState) -> None:
    state.add_fault("drop", method="POST", path=f"{V2}/issue")
    with pytest.raises(ConnectionAbortedError):
        call(client, "POST", f"{V2}/issue", new_issue())
    assert state.stats()["creates"] == 0
    state.add_fault("drop_after", method="POST", path=f"{V2}/issue")
    with pytest.raises(ConnectionAbortedError):
        call(client, "POST", f"{V2}/issue", new_issue())
    assert [i.key for i in state.issues()] == ["QA-1"]  # applied, but the answer was lost
    log = state.requests()
    assert [(r.fault, r.status, r.delivered) for r in log] == [("drop", None, False), ("drop_after", 201, False)]


def test_control_api(client: FlaskClient) -> None:
    assert client.get("/_sandbox/health").get_json() == {"status": "ok", "deploymentType": "Server"}
    key = create(client, labels=["x"])
    call(client, "POST", f"{V2}/issue/{key}/comment", {"body": "hello"})
    call(client, "POST", f"{V2}/issue/{key}/remotelink", {"object": {"url": "https://q.example/1", "title": "NC"}})
    [issue] = client.get("/_sandbox/issues").get_json()["issues"]
    assert_issue({k: v for k, v in issue.items() if k != "remoteLinks"})
    assert (issue["fields"]["comment"]["comments"][0]["body"], issue["remoteLinks"][0]["object"]["title"]) == (
        "hello", "NC")
    for bad in ({"faults": [{"kind": "teapot"}]}, {"faults": [{"kind": "429", "retryAfter": 1.5}]},
                {"faults": [{"kind": "429", "count": 0}]}, {"bogus": 1}, {"budget": {"limit": 0}},
                {"latency": -1}, {"searchLag": "soon"}, ["not", "an", "object"]):
        assert "error" in assert_status(client.post("/_sandbox/faults", json=bad), 400)
    call(client, "POST", "/_sandbox/faults", {"faults": [{"kind": "drop"}], "budget": {"limit": 5, "window": 1},
                                              "latency": 0.01})
    stats = client.get("/_sandbox/stats").get_json()
    assert (stats["creates"], stats["comments"], stats["remoteLinksCreated"], stats["issues"]) == (1, 1, 1, 1)
    assert stats["requests"] == 3
    assert client.post("/_sandbox/reset").get_json() == {"status": "reset"}
    assert client.get("/_sandbox/issues").get_json() == {"issues": []}
    assert client.get("/_sandbox/faults").get_json() == {"faults": [], "latency": [], "budget": None, "searchLag": 0.0}
    assert client.get("/_sandbox/stats").get_json()["requests"] == 0
    assert create(client) == "QA-1"


def assert_status(response: Any, status: int) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def test_concurrent_writes_get_unique_keys(state: SandboxState) -> None:
    actor = state.catalog.me.account_id

    def worker() -> None:
        for _ in range(10):
            state.create_issue(new_issue()["fields"], actor)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    keys = [issue.key for issue in state.issues()]
    assert len(keys) == len(set(keys)) == 80


def test_command_line_options(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--port", "8123", "--deployment-type", "Cloud", "--search-lag", "1.5",
                              "--no-legacy-search", "--quiet"])
    options = options_from_args(args)
    assert (args.host, args.port) == ("127.0.0.1", 8123)
    assert options["deployment_type"] == "Cloud" and options["legacy_search"] is False and options["quiet"] is True
    SandboxConfig(**{k: v for k, v in options.items() if k != "quiet"})  # every option is a config field
    seen: list[tuple[str, int, dict[str, Any]]] = []
    monkeypatch.setattr(sandbox_main, "run", lambda host, port, **kw: seen.append((host, port, kw)))
    assert sandbox_main.main(["--host", "0.0.0.0", "--port", "9000", "--project-key", "NC"]) == 0
    assert seen[0][:2] == ("0.0.0.0", 9000) and seen[0][2]["project_key"] == "NC"


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="deployment_type"):
        SandboxConfig(deployment_type="DataCenter")
    with pytest.raises(ValueError, match="project_key"):
        SandboxConfig(project_key="qa")


# -- over real loopback HTTP -------------------------------------------------------------------------------


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
