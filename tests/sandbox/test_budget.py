"""The sandbox's rate-limit budget: 429 with Retry-After once spent, X-RateLimit-* on every counted answer,
per-issue budgets."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from connector.sandbox import SandboxState
from tests.sandbox.conftest import V2, FakeClock, assert_error, call, create, new_issue


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
