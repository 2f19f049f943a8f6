"""The assembled Jira gateway: the request checker and fixtures against the spec, construction, settings.

The calls themselves are tested by concern: test_client (transport and errors), test_pressure
(rate-limit signals), test_issues, test_search and test_project.
"""

from __future__ import annotations

from typing import Any

import pytest
import responses
from jira.resilientsession import ResilientSession

from connector.jira.gateway import JiraClientGateway, gateway_from_settings
from connector.settings import load_settings
from tests.jira.jira_http import (
    API,
    BEARER,
    CLOUD,
    EMAIL,
    PAT,
    SERVER,
    TOKEN,
    check_request,
    cloud_gateway,
    fixture,
    spec,
    spec_problems,
)

# -- the published spec (tests/openapi.py checks values against it) ----------------------------------


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
    ("issue_nc_24_labels", "IssueBean"),
    ("server_info_cloud", "ServerInformation"),
    ("mypermissions_all", "Permissions"),
    ("createmeta_bug", "PageOfCreateMetaIssueTypeWithField"),
    ("project_nc", "Project"),
    ("comments_nc_24", "PageOfComments"),
    ("issue_classic_open_transitions_fields", "IssueBean"),
    ("issue_classic_open_status_only", "IssueBean"),
    ("issue_classic_closed_no_transitions", "IssueBean"),
    ("transitions_classic_open", "Transitions"),
    ("error_400_fields", "ErrorCollection"),
    ("error_400_transition_resolution", "ErrorCollection"),
])
def test_response_fixtures_match_the_spec(name: str, schema: str) -> None:
    problems = spec().problems(fixture(name), spec().component(schema))
    assert problems == []


@pytest.mark.parametrize("name", ["user_search_cloud", "user_search_cloud_inactive", "user_search_server_dana"])
def test_user_search_fixtures_match_the_spec(name: str) -> None:
    users = fixture(name)
    assert isinstance(users, list) and users
    for user in users:
        assert spec().problems(user, spec().component("User")) == []


def test_the_transition_fixtures_carry_what_the_gateway_reads() -> None:
    """The spec's FieldMetadata asks for key, name, operations, required and schema; the screens here have
    them, and each status names its category."""
    meta = fixture("transitions_classic_open")["transitions"][1]["fields"]["resolution"]
    assert spec().problems(meta, spec().component("FieldMetadata")) == []
    assert spec().problems({"name": "Resolution"}, spec().component("FieldMetadata")) != []  # the check bites
    for transition in fixture("issue_classic_open_transitions_fields")["transitions"]:
        assert transition["to"]["statusCategory"]["key"] in {"new", "indeterminate", "done"}


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
