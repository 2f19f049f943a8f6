"""The gateway's workflow calls: reading status and transitions (with their screens), running a transition."""

from __future__ import annotations

import pytest
import responses

from connector.jira.gateway import IssueState, JiraError, ScreenField, StatusRef, Transition
from tests.jira.jira_http import API, BEARER, CLOUD, SERVER, check_request, cloud_gateway, fixture, server_gateway

EXPAND = {"fields": ["status"], "expand": ["transitions.fields"]}

# Jira Data Center's classic workflow, as the fixtures capture it.
OPEN = StatusRef("1", "Open", "new")
IN_PROGRESS = StatusRef("3", "In Progress", "indeterminate")
RESOLVED, CLOSED = StatusRef("5", "Resolved", "done"), StatusRef("6", "Closed", "done")
RESOLUTION = ScreenField("resolution", "Resolution", required=True, has_default=False,
                         allowed=("Fixed", "Won't Fix", "Duplicate", "Incomplete", "Cannot Reproduce", "Done"))
ROOT_CAUSE = ScreenField("customfield_10010", "Root cause category", required=True, has_default=True,
                         allowed=("Process", "Equipment"))
ASSIGNEE = ScreenField("assignee", "Assignee", required=False, has_default=False, allowed=())
CLASSIC_OPEN = [
    Transition("4", "Start Progress", IN_PROGRESS),
    Transition("5", "Resolve Issue", RESOLVED, (RESOLUTION, ROOT_CAUSE, ASSIGNEE)),
    Transition("2", "Close Issue", CLOSED, (RESOLUTION,)),
]


# -- get_issue ---------------------------------------------------------------------------------------


def test_get_issue_reads_status_and_transitions_in_one_request(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{CLOUD}{API}issue/NC-24", json=fixture("issue_nc_24_status_transitions"))
    state = cloud_gateway().get_issue("NC-24")
    assert state == IssueState(key="NC-24", status=StatusRef("3", "In Progress", "indeterminate"), transitions=[
        Transition("21", "Start work", StatusRef("3", "In Progress", "indeterminate")),
        Transition("31", "Done", StatusRef("10002", "Done", "done"))])
    (call,) = rsps.calls
    check_request(call, "GET", f"{API}issue/NC-24", query=EXPAND)


def test_get_issue_parses_the_transition_screens(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{SERVER}{API}issue/NC-7", json=fixture("issue_classic_open_transitions_fields"))
    state = server_gateway().get_issue("NC-7")
    assert state == IssueState(key="NC-7", status=OPEN, transitions=CLASSIC_OPEN)
    (call,) = rsps.calls
    check_request(call, "GET", f"{API}issue/NC-7", query=EXPAND, auth=BEARER)


def test_get_issue_asks_again_when_the_server_ignored_the_expansion(rsps: responses.RequestsMock) -> None:
    """Jira DC 8.20 (the jira820 fake) answers without a `transitions` key: that is not "no transitions"."""
    rsps.get(f"{SERVER}{API}issue/NC-7", json=fixture("issue_classic_open_status_only"))
    rsps.get(f"{SERVER}{API}issue/NC-7/transitions", json=fixture("transitions_classic_open"))
    state = server_gateway().get_issue("NC-7")
    assert state == IssueState(key="NC-7", status=OPEN, transitions=CLASSIC_OPEN)
    issue, transitions = rsps.calls
    check_request(issue, "GET", f"{API}issue/NC-7", query=EXPAND, auth=BEARER)
    check_request(transitions, "GET", f"{API}issue/NC-7/transitions", query={"expand": ["transitions.fields"]},
                  auth=BEARER)


def test_get_issue_takes_an_empty_list_for_no_transitions(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{SERVER}{API}issue/NC-7", json=fixture("issue_classic_closed_no_transitions"))
    state = server_gateway().get_issue("NC-7")
    assert state == IssueState(key="NC-7", status=CLOSED, transitions=[])
    assert len(rsps.calls) == 1  # no second request: Jira said there are none


def test_get_issue_fallback_without_transitions_is_a_retryable_error(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{SERVER}{API}issue/NC-7", json=fixture("issue_classic_open_status_only"))
    rsps.get(f"{SERVER}{API}issue/NC-7/transitions", json={"expand": "transitions"})
    with pytest.raises(JiraError) as caught:
        server_gateway().get_issue("NC-7")
    assert (caught.value.retryable, caught.value.outcome_unknown) == (True, False)
    assert "no transitions" in caught.value.message


def test_get_issue_tolerates_a_sparse_answer(rsps: responses.RequestsMock) -> None:
    """Missing ids and categories read as "", allowed values by name, else value, else id."""
    screen = {"security": {"required": False, "name": "Security Level",
                           "allowedValues": [{"id": "10300"}, {"value": "v"}, {"self": "x"}, "raw"]}}
    transition = {"id": "7", "name": "Secure", "to": {"name": "Secured"}, "fields": screen}
    rsps.get(f"{CLOUD}{API}issue/NC-24",
             json={"key": "NC-24", "fields": {"status": {"name": "Triage"}}, "transitions": [transition]})
    state = cloud_gateway().get_issue("NC-24")
    assert state == IssueState(key="NC-24", status=StatusRef("", "Triage", ""), transitions=[
        Transition("7", "Secure", StatusRef("", "Secured", ""),
                   (ScreenField("security", "Security Level", False, False, ("10300", "v", "raw")),))])


def test_get_issue_reports_the_current_key_of_a_moved_issue(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{CLOUD}{API}issue/NC-24", json={**fixture("issue_nc_24_status_transitions"), "key": "QA-7"})
    assert cloud_gateway().get_issue("NC-24").key == "QA-7"


def test_get_issue_404(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{CLOUD}{API}issue/NC-99", json=fixture("error_404_issue"), status=404)
    with pytest.raises(JiraError) as caught:
        cloud_gateway().get_issue("NC-99")
    assert (caught.value.status, caught.value.retryable, caught.value.field_errors) == (404, False, {})
    assert caught.value.message == "Issue does not exist or you do not have permission to see it."
    assert len(rsps.calls) == 1


def test_transition_names_its_target_status() -> None:
    assert CLASSIC_OPEN[1].to_status == "Resolved"


# -- transition_issue --------------------------------------------------------------------------------


def test_transition_issue_sends_the_id_as_a_string(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{CLOUD}{API}issue/NC-24/transitions", status=204)
    cloud_gateway().transition_issue("NC-24", "31")
    (call,) = rsps.calls
    check_request(call, "POST", f"{API}issue/NC-24/transitions", body={"transition": {"id": "31"}})


def test_transition_issue_fills_the_screen(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{SERVER}{API}issue/NC-7/transitions", status=204)
    server_gateway().transition_issue("NC-7", "5", {"resolution": {"name": "Fixed"}})
    (call,) = rsps.calls
    check_request(call, "POST", f"{API}issue/NC-7/transitions", auth=BEARER,
                  body={"transition": {"id": "5"}, "fields": {"resolution": {"name": "Fixed"}}})


def test_a_refused_screen_names_the_field(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{SERVER}{API}issue/NC-7/transitions", json=fixture("error_400_transition_resolution"), status=400)
    with pytest.raises(JiraError) as caught:
        server_gateway().transition_issue("NC-7", "5")
    error = caught.value
    assert (error.status, error.retryable, error.outcome_unknown) == (400, False, False)
    assert error.field_errors == {"resolution": "Resolution is required."}
    assert error.message == "resolution: Resolution is required."
