"""The selectable workflows (review, cloud, classic, gated): statuses, the transitions open from each status,
transition screens (expand=transitions.fields) against the spec, required resolutions, and expansions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.sandbox.conftest import (
    V2,
    V3,
    Json,
    assert_error,
    assert_response,
    assert_schema,
    call,
    create,
    search_keys,
    spec,
)

MakeClient = Callable[..., FlaskClient]

# workflow -> the statuses (id, name, category) in order, and the resolution names.
STATUSES = {
    "review": [("10000", "To Do", "new"), ("3", "In Progress", "indeterminate"),
               ("10001", "In Review", "indeterminate"), ("10002", "Done", "done")],
    "cloud": [("10000", "To Do", "new"), ("3", "In Progress", "indeterminate"), ("10001", "Done", "done")],
    "classic": [("1", "Open", "new"), ("3", "In Progress", "indeterminate"), ("4", "Reopened", "new"),
                ("5", "Resolved", "done"), ("6", "Closed", "done")],
    "gated": [("10100", "Backlog", "new"), ("10101", "Selected", "new"), ("3", "In Progress", "indeterminate"),
              ("10102", "Review", "indeterminate"), ("10103", "Done", "done")],
}
RESOLUTIONS = {
    "review": ["Done", "Won't Do", "Duplicate"],
    "cloud": ["Done", "Won't Do", "Duplicate", "Cannot Reproduce"],
    "classic": ["Fixed", "Won't Fix", "Duplicate", "Incomplete", "Cannot Reproduce", "Done"],
    "gated": ["Done", "Won't Do", "Duplicate"],
}
# workflow -> status name -> (transition ids from the initial status that reach it, the transitions open
# there as (id, name, target status, screen: {field: required})).
TRANSITIONS: dict[str, dict[str, tuple[list[str], list[tuple[str, str, str, dict[str, bool]]]]]] = {
    "review": {
        "To Do": ([], [("11", "Start Progress", "In Progress", {}), ("61", "Done", "Done", {"resolution": False})]),
        "In Progress": (["11"], [("21", "Submit for Review", "In Review", {}),
                                 ("51", "Stop Progress", "To Do", {}),
                                 ("61", "Done", "Done", {"resolution": False})]),
        "In Review": (["11", "21"], [("31", "Request Changes", "In Progress", {}),
                                     ("41", "Approve", "Done", {"resolution": False})]),
        "Done": (["61"], [("71", "Reopen", "To Do", {})]),
    },
    "cloud": {
        "To Do": ([], [("21", "In Progress", "In Progress", {}), ("31", "Done", "Done", {})]),
        "In Progress": (["21"], [("11", "To Do", "To Do", {}), ("31", "Done", "Done", {})]),
        "Done": (["31"], [("11", "To Do", "To Do", {}), ("21", "In Progress", "In Progress", {})]),
    },
    "classic": {
        "Open": ([], [("4", "Start Progress", "In Progress", {}),
                      ("5", "Resolve Issue", "Resolved", {"resolution": True}),
                      ("2", "Close Issue", "Closed", {"resolution": True})]),
        "In Progress": (["4"], [("301", "Stop Progress", "Open", {}),
                                ("5", "Resolve Issue", "Resolved", {"resolution": True}),
                                ("2", "Close Issue", "Closed", {"resolution": True})]),
        "Reopened": (["5", "3"], [("4", "Start Progress", "In Progress", {}),
                                  ("5", "Resolve Issue", "Resolved", {"resolution": True}),
                                  ("2", "Close Issue", "Closed", {"resolution": True})]),
        "Resolved": (["5"], [("2", "Close Issue", "Closed", {"resolution": True}),
                             ("3", "Reopen Issue", "Reopened", {})]),
        "Closed": (["2"], [("3", "Reopen Issue", "Reopened", {})]),
    },
    "gated": {
        "Backlog": ([], [("11", "Select for Development", "Selected", {})]),
        "Selected": (["11"], [("21", "Start Progress", "In Progress", {})]),
        "In Progress": (["11", "21"], [("31", "Submit for Review", "Review", {})]),
        "Review": (["11", "21", "31"], [("41", "Approve", "Done", {"resolution": False}),
                                        ("51", "Request changes", "In Progress", {})]),
        "Done": (["11", "21", "31", "41"], [("61", "Reopen", "Backlog", {})]),
    },
}
FIRST_RESOLUTION = {"resolution": {"name": "Duplicate"}}  # a resolution every built-in workflow has


def transition(client: FlaskClient, key: str, transition_id: str, **extra: Any) -> Any:
    return call(client, "POST", f"{V2}/issue/{key}/transitions", {"transition": {"id": transition_id}, **extra})


def fields_of(client: FlaskClient, key: str) -> Json:
    fields: Json = call(client, "GET", f"{V2}/issue/{key}").get_json()["fields"]
    return fields


def reach(client: FlaskClient, path: list[str]) -> str:
    """A new issue moved along `path` (screens with a resolution get one)."""
    key = create(client)
    for transition_id in path:
        response = transition(client, key, transition_id, fields=FIRST_RESOLUTION)
        if response.status_code == 400:  # no resolution on this screen
            response = transition(client, key, transition_id)
        assert response.status_code == 204, response.get_data(as_text=True)
    return key


def listed_transitions(client: FlaskClient, key: str, expand: str = "transitions.fields") -> list[Json]:
    body = assert_response(call(client, "GET", f"{V2}/issue/{key}/transitions", query_string={"expand": expand}),
                           f"{V3}/issue/{{issueIdOrKey}}/transitions", 200)
    transitions: list[Json] = body["transitions"]
    for listed in transitions:
        assert_schema(listed, spec().component("IssueTransition"))
        assert_schema(listed["to"], spec().component("StatusDetails"))
        for meta in listed.get("fields", {}).values():
            assert_schema(meta, spec().component("FieldMetadata"))
            for value in meta.get("allowedValues", []):
                assert_schema(value, spec().component("Resolution"))
    return transitions


@pytest.mark.parametrize("workflow", list(STATUSES))
def test_each_workflow_lists_its_statuses_and_resolutions(make_client: MakeClient, workflow: str) -> None:
    client = make_client(workflow=workflow)
    statuses = assert_response(call(client, "GET", f"{V2}/status"), f"{V3}/status", 200)
    assert [(s["id"], s["name"], s["statusCategory"]["key"]) for s in statuses] == STATUSES[workflow]
    resolutions = assert_response(call(client, "GET", f"{V2}/resolution"), f"{V3}/resolution", 200)
    assert [r["name"] for r in resolutions] == RESOLUTIONS[workflow]
    by_type = assert_response(call(client, "GET", f"{V2}/project/QA/statuses"),
                              f"{V3}/project/{{projectIdOrKey}}/statuses", 200)
    assert {t["name"] for t in by_type} == {"Bug", "Task", "Non-conformance"}
    assert all([s["name"] for s in t["statuses"]] == [s[1] for s in STATUSES[workflow]] for t in by_type)
    key = create(client)
    assert fields_of(client, key)["status"]["name"] == STATUSES[workflow][0][1]
    assert search_keys(client, f'status = "{STATUSES[workflow][0][1]}"') == [key]


@pytest.mark.parametrize(("workflow", "status"), [(w, s) for w, table in TRANSITIONS.items() for s in table])
def test_the_transitions_from_each_status_and_their_screens(make_client: MakeClient, workflow: str,
                                                            status: str) -> None:
    client = make_client(workflow=workflow)
    path, expected = TRANSITIONS[workflow][status]
    key = reach(client, path)
    assert fields_of(client, key)["status"]["name"] == status
    listed = listed_transitions(client, key)
    assert [(t["id"], t["name"], t["to"]["name"], {f: m["required"] for f, m in t["fields"].items()})
            for t in listed] == expected
    for listed_one, (_, _, _, screen) in zip(listed, expected, strict=True):
        assert listed_one["hasScreen"] is bool(screen)
        assert listed_one["isGlobal"] is (workflow == "cloud")
        if "resolution" in screen:
            meta = listed_one["fields"]["resolution"]
            assert (meta["key"], meta["name"], meta["operations"], meta["schema"]["type"]) == (
                "resolution", "Resolution", ["set"], "resolution")
            assert [v["name"] for v in meta["allowedValues"]] == RESOLUTIONS[workflow]
            assert meta["hasDefaultValue"] is False
    plain = listed_transitions(client, key, expand="")
    assert all("fields" not in t for t in plain) and [t["id"] for t in plain] == [e[0] for e in expected]


def test_classic_resolve_requires_a_resolution_then_reopen(make_client: MakeClient) -> None:
    client = make_client(workflow="classic")
    key = create(client)
    refused = assert_error(transition(client, key, "5"), 400)
    assert refused == {"errorMessages": [], "errors": {"resolution": "Resolution is required."}}
    assert fields_of(client, key)["status"]["name"] == "Open"
    wrong = assert_error(transition(client, key, "5", fields={"resolution": {"name": "Won't Do"}}), 400)
    assert wrong["errors"]["resolution"] == "Resolution name 'Won't Do' is not valid"  # Cloud's, not DC's
    assert transition(client, key, "5", fields={"resolution": {"name": "Fixed"}}).status_code == 204
    resolved = fields_of(client, key)
    assert (resolved["status"]["name"], resolved["status"]["id"], resolved["resolution"]["name"]) == (
        "Resolved", "5", "Fixed")
    assert resolved["resolution"]["id"] == "1" and resolved["resolutiondate"] is not None
    assert search_keys(client, "status = Resolved AND resolution = Fixed") == [key]
    assert transition(client, key, "3").status_code == 204
    reopened = fields_of(client, key)
    assert (reopened["status"]["name"], reopened["resolution"], reopened["resolutiondate"]) == (
        "Reopened", None, None)
    assert assert_error(transition(client, key, "5"), 400)["errors"] == {"resolution": "Resolution is required."}


def test_classic_close_needs_a_resolution_unless_the_issue_has_one(make_client: MakeClient) -> None:
    client = make_client(workflow="classic")
    open_key, resolved_key = create(client), reach(client, ["5"])
    assert assert_error(transition(client, open_key, "2"), 400)["errors"] == {
        "resolution": "Resolution is required."}
    assert transition(client, resolved_key, "2").status_code == 204
    closed = fields_of(client, resolved_key)
    assert (closed["status"]["name"], closed["resolution"]["name"]) == ("Closed", "Duplicate")
    assert transition(client, open_key, "2", fields={"resolution": {"id": "2"}}).status_code == 204
    assert fields_of(client, open_key)["resolution"]["name"] == "Won't Fix"


def test_fields_not_on_the_screen_are_refused(make_client: MakeClient) -> None:
    client = make_client(workflow="classic")
    key = create(client)
    body = assert_error(transition(client, key, "4", fields={"resolution": {"name": "Fixed"}}), 400)
    assert body["errors"] == {
        "resolution": "Field 'resolution' cannot be set. It is not on the appropriate screen, or unknown."}
    body = assert_error(transition(client, key, "5", fields={"resolution": {"name": "Fixed"}, "summary": "x"}), 400)
    assert body["errors"] == {
        "summary": "Field 'summary' cannot be set. It is not on the appropriate screen, or unknown."}
    assert fields_of(client, key)["status"]["name"] == "Open"


@pytest.mark.parametrize(("workflow", "path"), [("review", ["61"]), ("cloud", ["31"]),
                                                ("gated", ["11", "21", "31", "41"])])
def test_an_optional_resolution_defaults_on_entering_done(make_client: MakeClient, workflow: str,
                                                          path: list[str]) -> None:
    client = make_client(workflow=workflow)
    key = create(client)
    for transition_id in path:
        assert transition(client, key, transition_id).status_code == 204
    done = fields_of(client, key)
    assert (done["status"]["statusCategory"]["key"], done["resolution"]["name"]) == ("done", "Done")


def test_gated_has_no_direct_path_to_done(make_client: MakeClient) -> None:
    client = make_client(workflow="gated")
    key = create(client)
    assert [t["to"]["name"] for t in listed_transitions(client, key)] == ["Selected"]
    body = assert_error(transition(client, key, "41"), 400)
    assert body["errorMessages"] == ["Transition id '41' is not valid for this issue."]
    into_done = {(status, t[0]) for status, (_, listed) in TRANSITIONS["gated"].items() for t in listed
                 if t[2] == "Done"}
    assert into_done == {("Review", "41")}
    key = reach(client, ["11", "21", "31"])
    assert transition(client, key, "51").status_code == 204  # Request changes
    assert fields_of(client, key)["status"]["name"] == "In Progress"


def test_cloud_goes_from_any_status_to_any_other(make_client: MakeClient) -> None:
    client = make_client(workflow="cloud")
    names = [s[1] for s in STATUSES["cloud"]]
    key = create(client)
    for target in ["Done", "To Do", "In Progress", "Done", "In Progress", "To Do"]:
        current = fields_of(client, key)["status"]["name"]
        listed = listed_transitions(client, key)
        assert sorted(t["to"]["name"] for t in listed) == sorted(n for n in names if n != current)
        assert all(t["name"] == t["to"]["name"] and t["isGlobal"] and not t["hasScreen"] for t in listed)
        chosen = next(t["id"] for t in listed if t["to"]["name"] == target)
        assert transition(client, key, chosen).status_code == 204
        fields = fields_of(client, key)
        assert fields["status"]["name"] == target
        assert (fields["resolution"] is None) is (target != "Done")


# -- expansions ----------------------------------------------------------------------------------------


def get_issue(client: FlaskClient, key: str, **params: str) -> Json:
    issue: Json = assert_response(call(client, "GET", f"{V2}/issue/{key}", query_string=params),
                                  f"{V3}/issue/{{issueIdOrKey}}", 200)
    return issue


def test_transitions_are_expanded_only_when_asked(make_client: MakeClient) -> None:
    client = make_client(workflow="classic")
    key = create(client)
    assert "transitions" not in get_issue(client, key)
    assert "transitions" not in get_issue(client, key, expand="names")
    plain = get_issue(client, key, expand="transitions")["transitions"]
    assert [t["id"] for t in plain] == ["4", "5", "2"] and all("fields" not in t for t in plain)
    assert [t["hasScreen"] for t in plain] == [False, True, True]
    detailed = get_issue(client, key, expand="transitions.fields", fields="status")["transitions"]
    assert detailed == listed_transitions(client, key)
    assert detailed[1]["fields"]["resolution"]["required"] is True and detailed[0]["fields"] == {}


def test_ignore_issue_expand_leaves_transitions_to_their_own_resource(make_client: MakeClient) -> None:
    client = make_client(workflow="classic", ignore_issue_expand=True)
    key = create(client)
    for expand in ("transitions", "transitions.fields", "names,transitions.fields"):
        assert "transitions" not in get_issue(client, key, expand=expand)
    assert "names" in get_issue(client, key, expand="names,transitions")  # other expansions still apply
    assert [t["id"] for t in listed_transitions(client, key)] == ["4", "5", "2"]
