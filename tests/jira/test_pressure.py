"""Jira's rate-limit signals as the gateway reports them (take_pressure)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import requests
import responses

from connector.jira.gateway import JiraError, Pressure
from connector.jira.pressure import jira_retry_after
from tests.jira.jira_http import API, CLOUD, check_request, cloud_gateway, fixture

# -- rate-limit signals -------------------------------------------------------------------------------

NEAR = {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "12", "X-RateLimit-NearLimit": "true"}


def test_near_limit_on_a_success_is_reported_once(rsps: responses.RequestsMock) -> None:
    rsps.put(f"{CLOUD}{API}issue/NC-24", status=204, headers=NEAR)
    gateway = cloud_gateway()
    gateway.update_issue("NC-24", {"summary": "s"})
    assert gateway.take_pressure() == Pressure(status=204, near_limit=True, retry_after=None, remaining=12,
                                               reason=None)
    assert gateway.take_pressure() is None  # taken
    check_request(rsps.calls[0], "PUT", f"{API}issue/NC-24", body={"fields": {"summary": "s"}})


@pytest.mark.parametrize("headers", [
    {},
    {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "20"},  # 20% left: not near yet
    {**NEAR, "X-RateLimit-NearLimit": "false"},
])
def test_an_answer_without_pressure_reports_none(rsps: responses.RequestsMock, headers: dict[str, str]) -> None:
    rsps.get(f"{CLOUD}{API}issue/NC-24", json=fixture("issue_nc_24_status_transitions"), headers=headers)
    gateway = cloud_gateway()
    gateway.get_issue("NC-24")
    assert gateway.take_pressure() is None


@pytest.mark.parametrize(("status", "headers", "expected"), [
    (429, {"Retry-After": "5", "X-RateLimit-Remaining": "0", "X-RateLimit-NearLimit": "true",
           "RateLimit-Reason": "jira-burst-based"},
     Pressure(status=429, near_limit=True, retry_after=5.0, remaining=0, reason="jira-burst-based")),
    (429, {}, Pressure(status=429, near_limit=False)),  # rate limited without saying for how long
    (503, {"Retry-After": "7"}, Pressure(status=503, near_limit=False, retry_after=7.0)),
    (503, {}, None),  # plain unavailability is no rate-limit signal
])
def test_a_refusal_reports_its_pressure_and_still_raises(rsps: responses.RequestsMock, status: int,
                                                         headers: dict[str, str], expected: Pressure | None) -> None:
    rsps.post(f"{CLOUD}{API}issue/NC-24/comment", json=fixture("error_429"), status=status, headers=headers)
    gateway = cloud_gateway()
    with pytest.raises(JiraError) as caught:
        gateway.add_comment("NC-24", "hello")
    assert caught.value.status == status
    assert gateway.take_pressure() == expected
    assert len(rsps.calls) == 1


def test_the_strongest_signal_since_the_last_take_is_kept(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{CLOUD}{API}issue/NC-24/comment", json=fixture("error_429"), status=429,
              headers={"Retry-After": "9"})
    rsps.put(f"{CLOUD}{API}issue/NC-24", status=204, headers=NEAR)
    gateway = cloud_gateway()
    with pytest.raises(JiraError):
        gateway.add_comment("NC-24", "hello")
    gateway.update_issue("NC-24", {"summary": "s"})  # a milder signal after the 429
    pressure = gateway.take_pressure()
    assert pressure is not None and (pressure.status, pressure.retry_after) == (429, 9.0)


def test_pressure_belongs_to_the_thread_that_met_it(rsps: responses.RequestsMock) -> None:
    rsps.put(f"{CLOUD}{API}issue/NC-24", status=204, headers=NEAR)
    gateway = cloud_gateway()
    seen: list[Pressure | None] = []

    def update_and_take() -> None:
        gateway.update_issue("NC-24", {"summary": "s"})
        seen.append(gateway.take_pressure())

    worker = threading.Thread(target=update_and_take)
    worker.start()
    worker.join(10)
    assert seen and seen[0] is not None and seen[0].near_limit
    assert gateway.take_pressure() is None


NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("headers", "expected"), [
    ({"Retry-After": "5"}, 5.0),
    ({"Retry-After": "Wed, 01 Jan 2025 12:02:00 GMT"}, 120.0),
    ({"X-RateLimit-Reset": "2025-01-01T12:01:00Z"}, 60.0),  # Cloud's reset time, when Retry-After is absent
    ({"X-RateLimit-Reset": "2025-01-01T11:00:00+00:00"}, 0.0),
    ({"X-RateLimit-Reset": "soon"}, None),
    ({"X-RateLimit-Reset": "2025-01-01T12:01:00"}, 60.0),  # no zone: read as UTC, not a TypeError
    ({"Retry-After": "9", "X-RateLimit-Reset": "2025-01-01T12:01:00Z"}, 9.0),  # Retry-After wins
    ({"Retry-After": "soon", "X-RateLimit-Reset": "2025-01-01T12:01:00Z"}, None),  # and is not second-guessed
    ({}, None),
])
def test_jira_retry_after_falls_back_to_the_rate_limit_reset(headers: dict[str, str], expected: float | None) -> None:
    response = requests.Response()
    response.status_code = 429
    response.headers.update(headers)
    assert jira_retry_after(response, now=NOW) == expected
