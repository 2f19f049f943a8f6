"""Fields, users and the project checks, against mocked HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
import responses

from connector.jira.gateway import FieldInfo, JiraClientGateway
from tests.jira.jira_http import (
    API,
    BEARER,
    CLOUD,
    SERVER,
    check_request,
    cloud_gateway,
    fixture,
    mock_server_info,
    server_gateway,
)


def test_fields(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{CLOUD}{API}field", json=fixture("fields"))
    assert cloud_gateway().fields() == [
        FieldInfo("summary", "Summary", "string", None),
        FieldInfo("labels", "Labels", "array", "string"),
        FieldInfo("customfield_10042", "Severity", "option", None),
        FieldInfo("thumbnail", "Images", "", None),
    ]
    check_request(rsps.calls[0], "GET", f"{API}field")


# -- user_ref --------------------------------------------------------------------------------------


def test_user_ref_on_cloud_looks_an_email_up_by_query(rsps: responses.RequestsMock) -> None:
    mock_server_info(rsps)
    rsps.get(f"{CLOUD}{API}user/search", json=fixture("user_search_cloud"))  # Cloud hides the e-mail here
    assert cloud_gateway().user_ref("dana@example.com") == {"accountId": "5b10ac8d82e05b22cc7d4ef5"}
    info, search = rsps.calls
    check_request(info, "GET", f"{API}serverInfo")
    check_request(search, "GET", f"{API}user/search", query={"query": ["dana@example.com"]})


def test_user_ref_on_server_is_the_user_name(rsps: responses.RequestsMock) -> None:
    mock_server_info(rsps, SERVER, "server")
    rsps.get(f"{SERVER}{API}user/search", json=fixture("user_search_server"))
    assert server_gateway().user_ref("Dana@Example.com") == {"name": "dscully"}
    check_request(rsps.calls[1], "GET", f"{API}user/search", query={"username": ["Dana@Example.com"]}, auth=BEARER)


def test_user_ref_on_server_skips_a_deactivated_account_and_other_emails(rsps: responses.RequestsMock) -> None:
    """The old, deactivated account of the same person and a prefix match on another e-mail are not her."""
    mock_server_info(rsps, SERVER, "server")
    rsps.get(f"{SERVER}{API}user/search", json=fixture("user_search_server_dana"))
    assert server_gateway().user_ref("dana@example.com") == {"name": "dscully"}
    check_request(rsps.calls[1], "GET", f"{API}user/search", query={"username": ["dana@example.com"]}, auth=BEARER)


@pytest.mark.parametrize(("gateway", "base", "kind", "expected"), [
    (cloud_gateway, CLOUD, "cloud", {"accountId": "5b10ac8d82e05b22cc7d4ef5"}),
    (server_gateway, SERVER, "server", {"name": "5b10ac8d82e05b22cc7d4ef5"}),
])
def test_user_ref_takes_anything_else_as_an_id_without_a_lookup(
        rsps: responses.RequestsMock, gateway: Callable[[], JiraClientGateway], base: str, kind: str,
        expected: dict[str, str]) -> None:
    mock_server_info(rsps, base, kind)
    jira = gateway()
    assert jira.user_ref(" 5b10ac8d82e05b22cc7d4ef5 ") == expected
    assert jira.user_ref("5b10ac8d82e05b22cc7d4ef5") == expected
    assert [urlsplit(str(c.request.url)).path for c in rsps.calls] == [f"{API}serverInfo"]  # once, no user/search


def test_user_ref_of_an_inactive_account_is_none(rsps: responses.RequestsMock) -> None:
    mock_server_info(rsps)
    rsps.get(f"{CLOUD}{API}user/search", json=fixture("user_search_cloud_inactive"))
    assert cloud_gateway().user_ref("former@example.com") is None


def test_user_ref_of_an_unknown_email_is_none(rsps: responses.RequestsMock) -> None:
    mock_server_info(rsps, SERVER, "server")
    rsps.get(f"{SERVER}{API}user/search", json=[])
    assert server_gateway().user_ref("nobody@example.com") is None
    check_request(rsps.calls[1], "GET", f"{API}user/search", query={"username": ["nobody@example.com"]}, auth=BEARER)


@pytest.mark.parametrize("users", [
    [{"accountId": "a1", "active": True}, {"accountId": "a2", "active": True}],  # which one?
    [{"accountId": "a1", "active": True, "emailAddress": "nobody.else@example.com"}],  # someone else
    [{"accountId": "a1", "active": True, "emailAddress": "nobody@example.com"},
     {"accountId": "a2", "active": True, "emailAddress": "NOBODY@example.com"}],  # two exact matches
])
def test_user_ref_is_none_without_one_match(rsps: responses.RequestsMock, users: list[dict[str, Any]]) -> None:
    mock_server_info(rsps)
    rsps.get(f"{CLOUD}{API}user/search", json=users)
    assert cloud_gateway().user_ref("nobody@example.com") is None


def test_user_ref_of_nothing_asks_nothing(rsps: responses.RequestsMock) -> None:
    assert cloud_gateway().user_ref("  ") is None
    assert len(rsps.calls) == 0


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
