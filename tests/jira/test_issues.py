"""The gateway's issue operations against mocked HTTP, each request checked against the spec.

Reading the workflow state and running transitions: test_transitions.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from connector.jira.gateway import JiraError
from tests.jira.jira_http import API, CLOUD, CREATE_FIELDS, LABEL, check_request, cloud_gateway, fixture, jira_calls

# -- create ----------------------------------------------------------------------------------------


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


def test_create_answer_without_key_is_an_unknown_outcome(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{CLOUD}{API}issue", body="", status=201)
    with pytest.raises(JiraError) as caught:
        cloud_gateway().create_issue(CREATE_FIELDS)
    assert (caught.value.retryable, caught.value.outcome_unknown) == (True, True)


# -- the other calls -------------------------------------------------------------------------------


def test_update_issue_puts_fields(rsps: responses.RequestsMock) -> None:
    rsps.put(f"{CLOUD}{API}issue/NC-24", status=204)
    fields = {"summary": "NCR-12: new title", "description": "plain text", "labels": ["qualio-nc", LABEL]}
    cloud_gateway().update_issue("NC-24", fields)
    (call,) = rsps.calls
    check_request(call, "PUT", f"{API}issue/NC-24", body={"fields": fields})


def test_issue_labels_reads_one_issue_by_key_and_says_none_for_a_404(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{CLOUD}{API}issue/NC-24", json=fixture("issue_nc_24_labels"))
    rsps.get(f"{CLOUD}{API}issue/NC-25", json=fixture("error_404_issue"), status=404)
    gateway = cloud_gateway()
    assert gateway.issue_labels("NC-24") == ["qualio", LABEL]
    assert gateway.issue_labels("NC-25") is None
    first, second = rsps.calls
    check_request(first, "GET", f"{API}issue/NC-24", query={"fields": ["labels"]})
    check_request(second, "GET", f"{API}issue/NC-25", query={"fields": ["labels"]})


def test_add_comment_returns_its_id(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{CLOUD}{API}issue/NC-24/comment", json=fixture("comment_201"), status=201)
    assert cloud_gateway().add_comment("NC-24", "Qualio: status changed to closed.") == "10010"
    check_request(rsps.calls[0], "POST", f"{API}issue/NC-24/comment",
                  body={"body": "Qualio: status changed to closed."})


def test_add_comment_carries_its_key_as_a_comment_property(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{CLOUD}{API}issue/NC-24/comment", json=fixture("comment_201"), status=201)
    assert cloud_gateway().add_comment("NC-24", "Root cause found.", "c-1001") == "10010"
    check_request(rsps.calls[0], "POST", f"{API}issue/NC-24/comment", body={
        "body": "Root cause found.", "properties": [{"key": "nc-connector", "value": {"commentKey": "c-1001"}}]})


def test_add_comment_answer_without_id_is_an_unknown_outcome(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{CLOUD}{API}issue/NC-24/comment", body="", status=201)
    with pytest.raises(JiraError) as caught:
        cloud_gateway().add_comment("NC-24", "text")
    assert (caught.value.retryable, caught.value.outcome_unknown) == (True, True)


def test_comments_lists_id_and_body_oldest_first(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{CLOUD}{API}issue/NC-24/comment", json=fixture("comments_nc_24"))
    assert cloud_gateway().comments("NC-24") == [
        ("10010", "Qualio: status changed to open.\n[qualio-comment:NCR-12:1]", "NCR-12:1"),  # from its property
        ("10011", "Looked at the cleaning log, agreed.", ""),  # no property: not ours, or properties dropped
    ]
    check_request(rsps.calls[0], "GET", f"{API}issue/NC-24/comment",
                  query={"startAt": ["0"], "maxResults": ["100"], "orderBy": ["created"], "expand": ["properties"]})


def test_comments_pages_by_start_at(rsps: responses.RequestsMock) -> None:
    page = fixture("comments_nc_24")
    rsps.get(f"{CLOUD}{API}issue/NC-24/comment", json={**page, "maxResults": 1, "comments": page["comments"][:1]})
    rsps.get(f"{CLOUD}{API}issue/NC-24/comment",
             json={**page, "startAt": 1, "maxResults": 1, "comments": page["comments"][1:]})
    assert [c.id for c in cloud_gateway().comments("NC-24")] == ["10010", "10011"]
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
