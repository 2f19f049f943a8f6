"""Moving issues as a person might (POST /_sandbox/issues/{key}/move, SandboxState.move_issue): the new key,
the old key still finding the issue, search across projects, other projects, and deleting."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from connector.sandbox import SandboxState, create_sandbox_app
from tests.sandbox.conftest import (
    NOT_FOUND,
    V2,
    V3,
    assert_error,
    assert_issue,
    assert_response,
    assert_status,
    call,
    create,
    search_keys,
)


def move(client: FlaskClient, ref: str, /, **body: str) -> dict[str, object]:
    moved: dict[str, object] = assert_status(client.post(f"/_sandbox/issues/{ref}/move", json=body), 200)
    return moved


def test_a_moved_issue_is_found_by_its_old_key_under_its_new_one(client: FlaskClient) -> None:
    first, second = create(client, labels=["qualio-nc-NC-7"]), create(client, labels=["other"])
    issue_id = call(client, "GET", f"{V2}/issue/{first}").get_json()["id"]
    moved = move(client, first, key="OPS-7")
    assert_issue(moved)
    assert (moved["key"], moved["id"]) == ("OPS-7", issue_id)
    for ref in (first, first.lower(), "OPS-7", issue_id):
        got = call(client, "GET", f"{V2}/issue/{ref}").get_json()
        assert (got["key"], got["fields"]["project"]["key"]) == ("OPS-7", "OPS"), ref
    assert search_keys(client, 'labels = "qualio-nc-NC-7"') == ["OPS-7"]
    assert search_keys(client, 'labels = "qualio-nc-NC-7"', "search/jql") == ["OPS-7"]
    assert search_keys(client, "project = OPS") == ["OPS-7"]
    assert search_keys(client, "project = QA") == [second]
    assert search_keys(client, f"key = {first}") == ["OPS-7"]
    assert call(client, "POST", f"{V2}/issue/{first}/comment", {"body": "still reachable"}).status_code == 201
    assert call(client, "PUT", f"{V2}/issue/{first}", {"fields": {"summary": "moved"}}).status_code == 204
    assert call(client, "GET", f"{V2}/issue/OPS-7").get_json()["fields"]["summary"] == "moved"


def test_the_new_project_is_a_project_of_the_sandbox(client: FlaskClient) -> None:
    move(client, create(client), key="OPS-7")
    projects = assert_response(call(client, "GET", f"{V2}/project"), f"{V3}/project", 200)
    assert [p["key"] for p in projects] == ["QA", "OPS"]
    ops = assert_response(call(client, "GET", f"{V2}/project/ops"), f"{V3}/project/{{projectIdOrKey}}", 200)
    assert (ops["id"], ops["key"]) == ("10001", "OPS")
    assert_error(call(client, "GET", f"{V2}/project/SUP"), 404)
    assert create(client) == "QA-2"  # creating still happens in the configured project


def test_delete_after_a_move_is_404_by_either_key(client: FlaskClient) -> None:
    key = create(client)
    move(client, key, key="OPS-7")
    assert call(client, "DELETE", f"{V2}/issue/{key}").status_code == 204
    for ref in (key, "OPS-7"):
        assert assert_error(call(client, "GET", f"{V2}/issue/{ref}"), 404)["errorMessages"] == [NOT_FOUND]
    assert search_keys(client, "project = OPS") == []
    assert create(client) == "QA-2"  # keys are not reused
    move(client, "QA-2", key="OPS-7")  # the freed key, taken by another issue: the deleted one's old key is gone
    assert call(client, "GET", f"{V2}/issue/OPS-7").get_json()["key"] == "OPS-7"
    assert_error(call(client, "GET", f"{V2}/issue/{key}"), 404)


def test_moving_by_project_takes_the_next_key_and_keys_never_collide(client: FlaskClient) -> None:
    one, two, three = create(client), create(client), create(client)
    assert move(client, one, project="OPS")["key"] == "OPS-1"
    assert move(client, two, project="OPS")["key"] == "OPS-2"
    assert move(client, three, key="QA-4")["key"] == "QA-4"  # into the next key create would have taken
    assert create(client) == "QA-5"
    assert move(client, "OPS-2", key="OPS-9", project="OPS")["key"] == "OPS-9"
    assert call(client, "GET", f"{V2}/issue/{two}").get_json()["key"] == "OPS-9"  # chains of moves
    assert move(client, "OPS-9", key=two)["key"] == two  # back to an old key of its own
    assert call(client, "GET", f"{V2}/issue/OPS-9").get_json()["key"] == two


@pytest.mark.parametrize(("body", "problem"), [
    ({"key": "ops-7"}, "issue key like 'OPS-7'"),
    ({"key": "OPS"}, "issue key like 'OPS-7'"),
    ({"key": "QA-2"}, "already in use"),
    ({"key": "QA-1"}, "already in use"),
    ({"key": "OPS-7", "project": "SUP"}, "not in project 'SUP'"),
    ({"project": "ops"}, "project key like 'OPS'"),
    ({}, "give the new 'key'"),
    ({"key": "OPS-7", "summary": "x"}, "expected a JSON object"),
])
def test_bad_moves_are_refused(client: FlaskClient, body: dict[str, str], problem: str) -> None:
    create(client)
    create(client)
    answer = assert_status(client.post("/_sandbox/issues/QA-1/move", json=body), 400)
    assert problem in answer["error"]
    assert call(client, "GET", f"{V2}/issue/QA-1").get_json()["key"] == "QA-1"


def test_moving_an_unknown_issue_is_jiras_404(client: FlaskClient) -> None:
    assert assert_error(client.post("/_sandbox/issues/QA-9/move", json={"key": "OPS-1"}), 404)["errorMessages"] == [
        NOT_FOUND]


def test_move_issue_on_the_state(state: SandboxState) -> None:
    actor = state.catalog.me.account_id
    created = state.create_issue({"project": {"key": "QA"}, "issuetype": {"name": "Task"}, "summary": "x",
                                  "labels": ["moved"]}, actor)
    moved = state.move_issue(created.key, "OPS-7")
    assert (moved.key, moved.id, state.issue(created.key).key) == ("OPS-7", created.id, "OPS-7")
    assert [i.key for i in state.search('labels = "moved"', actor)] == ["OPS-7"]
    assert state.projects() == [("10000", "QA", "Quality Assurance"), ("10001", "OPS", "OPS")]
    with pytest.raises(ValueError, match="already in use"):
        state.move_issue("OPS-7", "OPS-7")
    state.reset()
    assert state.projects() == [("10000", "QA", "Quality Assurance")]
    client = create_sandbox_app(state).test_client()
    assert_error(call(client, "GET", f"{V2}/issue/OPS-7"), 404)
