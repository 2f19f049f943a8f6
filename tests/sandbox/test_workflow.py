"""The sandbox's workflow: the transitions open from each status, invalid transitions, transition screens."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.sandbox.conftest import V2, V3, Json, assert_error, assert_response, assert_schema, call, create, spec


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
