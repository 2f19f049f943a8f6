"""The sandbox's issues: create, read (fields, expand), edit and delete, Jira's field errors, 404s, and
unique keys under concurrent writes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from connector.sandbox import SandboxState, create_sandbox_app
from tests.sandbox.conftest import (
    AUTH,
    EMAIL,
    NOT_FOUND,
    V2,
    V3,
    FakeClock,
    Json,
    assert_error,
    assert_issue,
    assert_response,
    call,
    create,
    new_issue,
)


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
