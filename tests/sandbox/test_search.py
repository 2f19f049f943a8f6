"""The sandbox's search endpoints: schemas and paging (startAt on /search, tokens on /search/jql), lenient
validation, unbounded queries, the removed legacy search, and the search index's lag."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient

from connector.sandbox import SandboxState, create_sandbox_app
from tests.sandbox.conftest import (
    V2,
    V3,
    FakeClock,
    assert_error,
    assert_issue,
    assert_response,
    call,
    create,
    search_keys,
)


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
