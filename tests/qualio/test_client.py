"""The Qualio enrichment client (mocked HTTP) and the eventDetailed -> NC record mapping."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses

from connector.qualio.client import QualioClient, QualioError, RateLimiter, nc_record_from_event
from tests.conftest import FIXTURES as TEST_FIXTURES
from tests.openapi import QUALIO_SPEC, OpenAPI, load

FIXTURES = TEST_FIXTURES / "qualio"
BASE = "https://api.qualio.com"
KEY = "qk_live_5f0c1d2e3b4a59687766554433221100"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def spec() -> OpenAPI:
    return load(QUALIO_SPEC)


class FakeClock:
    """A monotonic clock that only moves when ``sleep`` is called."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def client(clock: FakeClock, max_per_minute: int = 200) -> QualioClient:
    return QualioClient(BASE + "/", KEY, timeout=5, max_per_minute=max_per_minute, clock=clock, sleep=clock.sleep)


def event_url(code: str) -> str:
    return f"{BASE}/v1/events/events/{code}"


# -- fixtures follow the spec ----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "schema_name"), [
    ("event_ncr_12", "eventDetailed"),
    ("event_ncr_31_closed", "eventDetailed"),
    ("error_429", "throttledResponse"),
    ("error_403", "genericForbiddenResponse"),
    ("error_400", "genericBadRequest400PathResponse"),
])
def test_fixtures_match_the_spec(name: str, schema_name: str) -> None:
    assert spec().problems(fixture(name), spec().component(schema_name)) == []


def test_spec_example_is_the_fixture() -> None:
    assert fixture("event_ncr_12") == spec().spec["components"]["schemas"]["eventDetailed"]["example"]


# -- fetch -----------------------------------------------------------------------------------------


def test_fetch_event_sends_the_key_header(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    rsps.get(event_url("NCR-12"), json=fixture("event_ncr_12"))
    assert client(clock).fetch_event("NCR-12") == fixture("event_ncr_12")
    (call,) = rsps.calls
    assert call.request.method == "GET"
    assert call.request.url == event_url("NCR-12")
    assert call.request.headers["X-Api-Key"] == KEY
    assert call.request.headers["Accept"] == "application/json"
    assert "Authorization" not in call.request.headers


def test_fetch_event_quotes_the_code(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    rsps.get(f"{BASE}/v1/events/events/NCR-12%2F..%2Fx", json=fixture("event_ncr_12"))
    client(clock).fetch_event("NCR-12/../x")


def test_429_gives_retry_after_without_sleeping(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    rsps.get(event_url("NCR-12"), json=fixture("error_429"), status=429, headers={"Retry-After": "30"})
    qualio = client(clock)
    with pytest.raises(QualioError) as caught:
        qualio.fetch_event("NCR-12")
    error = caught.value
    assert (error.status, error.retry_after, error.retryable) == (429, 30.0, True)
    assert error.message == "You have exceeded what is allowed in the fair use policy for this API"
    assert clock.slept == []

    # Until Retry-After has passed, further fetches are refused without a request.
    clock.now += 10
    with pytest.raises(QualioError) as again:
        qualio.fetch_event("NCR-13")
    assert (again.value.status, again.value.retry_after, again.value.retryable) == (429, 20.0, True)
    assert len(rsps.calls) == 1

    clock.now += 20
    rsps.get(event_url("NCR-13"), json=fixture("event_ncr_12"))
    assert qualio.fetch_event("NCR-13")["code"] == "NCR-12"


@pytest.mark.parametrize(("status", "body", "retryable", "message"), [
    (404, {}, False, "event NCR-99 not found"),
    (403, fixture("error_403"), False, "User is not authorized to access this resource with an explicit deny"),
    (401, {"message": "Unauthorized"}, False, "Unauthorized"),
    (400, fixture("error_400"), False, "code is not a valid event code"),
    (500, None, True, "HTTP 500 Internal Server Error"),
    (502, None, True, "HTTP 502 Bad Gateway"),
    (503, None, True, "HTTP 503 Service Unavailable"),
])
def test_status_classification(rsps: responses.RequestsMock, clock: FakeClock, status: int, body: Any,
                               retryable: bool, message: str) -> None:
    if body is None:
        rsps.get(event_url("NCR-99"), body="<html>oops</html>", status=status, content_type="text/html")
    else:
        rsps.get(event_url("NCR-99"), json=body, status=status)
    with pytest.raises(QualioError) as caught:
        client(clock).fetch_event("NCR-99")
    assert (caught.value.status, caught.value.retryable, caught.value.message) == (status, retryable, message)
    assert len(rsps.calls) == 1  # nothing is retried here


@pytest.mark.parametrize("exc", [requests.exceptions.ReadTimeout("read timed out"),
                                 requests.exceptions.ConnectionError("refused")])
def test_transport_errors_are_retryable(rsps: responses.RequestsMock, clock: FakeClock, exc: Exception) -> None:
    rsps.get(event_url("NCR-12"), body=exc)
    with pytest.raises(QualioError) as caught:
        client(clock).fetch_event("NCR-12")
    assert (caught.value.status, caught.value.retryable) == (None, True)
    assert len(rsps.calls) == 1


def test_redirect_is_not_followed(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    rsps.get(event_url("NCR-12"), status=302, headers={"Location": "https://elsewhere.example/v1/events/NCR-12"})
    with pytest.raises(QualioError) as caught:
        client(clock).fetch_event("NCR-12")
    assert (caught.value.status, caught.value.retryable) == (302, False)
    assert len(rsps.calls) == 1  # the key header did not travel to elsewhere.example


def test_non_json_200_is_retryable(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    rsps.get(event_url("NCR-12"), body="<html>maintenance</html>", content_type="text/html")
    with pytest.raises(QualioError) as caught:
        client(clock).fetch_event("NCR-12")
    assert (caught.value.status, caught.value.retryable) == (200, True)


def test_the_key_never_appears_in_errors(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    rsps.get(event_url("NCR-1"), status=403, json={"message": f"API key {KEY} is not allowed"})
    rsps.get(event_url("NCR-2"), body=requests.exceptions.ConnectionError(f"failed with X-Api-Key: {KEY}"))
    qualio = client(clock)
    for code in ("NCR-1", "NCR-2"):
        with pytest.raises(QualioError) as caught:
            qualio.fetch_event(code)
        shown = " ".join([caught.value.message, str(caught.value), repr(caught.value), *map(str, caught.value.args)])
        assert KEY not in shown and "<secret>" in shown
        error = caught.value
        assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    assert KEY not in repr(qualio)


def test_client_needs_a_key_and_url() -> None:
    with pytest.raises(ValueError, match="API key"):
        QualioClient(BASE, "")
    with pytest.raises(ValueError, match="URL"):
        QualioClient("", KEY)


# -- rate limit ------------------------------------------------------------------------------------


def most_in_any_window(times: list[float], window: float = 60.0) -> int:
    """The largest number of requests whose times lie within `window` of each other (t - first < window)."""
    ordered = sorted(times)
    return max((sum(1 for u in ordered if t <= u < t + window) for t in ordered), default=0)


def test_fetches_are_rate_limited(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    rsps.get(event_url("NCR-12"), json=fixture("event_ncr_12"))
    sent_at: list[float] = []
    qualio = client(clock, max_per_minute=5)
    for _ in range(12):
        qualio.fetch_event("NCR-12")
        sent_at.append(clock.now)
    assert len(rsps.calls) == 12
    assert most_in_any_window(sent_at) == 5
    assert sent_at[:5] == [1000.0] * 5  # a burst up to the limit goes at once
    assert sent_at[5] == 1060.0  # then each waits for the oldest to leave the window
    assert clock.slept == [60.0, 60.0]


@pytest.mark.parametrize("limit", [1, 3, 200])
def test_limiter_never_exceeds_its_limit_in_any_window(clock: FakeClock, limit: int) -> None:
    limiter = RateLimiter(limit, clock=clock, sleep=clock.sleep)
    times = []
    for i in range(limit * 4 + 3):
        clock.now += 0.0 if i % 10 else 0.7  # bursts with pauses: more demand than the limit allows
        limiter.acquire()
        times.append(clock.now)
    assert most_in_any_window(times) == limit


def test_limiter_is_thread_safe() -> None:
    """50 threads at once, a clock that does not move: exactly `limit` of them get a slot."""
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    start = threading.Barrier(50)
    granted: list[bool] = []

    def worker() -> None:
        start.wait()
        granted.append(limiter._try_acquire() == 0.0)  # 0.0: a slot was taken, else the wait

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert granted.count(True) == 10


def test_limiter_rejects_a_zero_limit() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)


# -- mapping ---------------------------------------------------------------------------------------


def test_nc_record_from_the_spec_example() -> None:
    assert nc_record_from_event(fixture("event_ncr_12")) == {
        "ncId": "NCR-12",
        "title": "Non Compliance: procedure was not followed",
        "description": "An incidence of a non compliance with a work instuction, procedure or policy",
        "qualioStatus": "open",
        "url": "https://app.qualio.com/quality-events/events/123456",
        "ownerUserId": 1,
        "createdAt": "2020-01-01T00:00:00Z",
        "dueAt": "2020-01-02T00:00:00Z",
        "modifiedAt": "2020-01-01T00:00:00Z",
        "closedAt": None,
        "risk": "1+ Acceptable",
        "tagIds": [21, 92],
        "escalatedFrom": ["COM-1"],
        "escalatedTo": ["NCR-21"],
        "fields": {
            "Description": "Procedure was not followed",
            "Severity": "Minor",
            "Related Incidents": ["NCR-12"],
        },
        "sections": {
            "Overview": "This Non-Compliance Report (NCR) template is used to document and track non-conformances "
                        "in your quality management system. Please complete all required fields and follow the "
                        "workflow steps.",
        },
    }


def test_nc_record_orders_steps_and_keeps_repeated_labels() -> None:
    record = nc_record_from_event(fixture("event_ncr_31_closed"))
    assert record["fields"] == {
        "Description": "Lot 24-118 without CoA",  # the Details step comes first (order 1)
        "Severity": "Major",
        "Affected documents": ["SOP-12 Incoming inspection"],  # linked records other than events: name
        "Escalated event": "CAPA-4",  # single event field: its code
        "Target date": None,  # empty single field
        "Departments": [],  # empty multi field
        "Investigation / Description": "<p>Root cause: supplier portal outage.</p>",
    }
    assert list(record["fields"]) == ["Description", "Severity", "Affected documents", "Escalated event",
                                      "Target date", "Departments", "Investigation / Description"]
    assert record["sections"] == {"Overview": "<p>Lot quarantined on arrival.</p>"}
    assert (record["qualioStatus"], record["closedAt"], record["risk"]) == ("closed", "2025-03-20T12:30:00Z", None)
    assert record["ownerUserId"] == 7 and isinstance(record["ownerUserId"], int)
    assert record["tagIds"] == [3, 14] and all(isinstance(t, int) for t in record["tagIds"])
    assert (record["escalatedFrom"], record["escalatedTo"]) == ([], ["CAPA-4"])


def test_nc_record_from_a_partial_event() -> None:
    record = nc_record_from_event({"code": "NCR-5", "title": "t"})
    assert record["ncId"] == "NCR-5"
    assert record["fields"] == {} and record["sections"] == {}
    assert record["tagIds"] == [] and record["ownerUserId"] is None and record["dueAt"] is None


def test_nc_record_does_not_alias_the_event() -> None:
    event = fixture("event_ncr_12")
    record = nc_record_from_event(event)
    record["tagIds"].append(1)
    record["escalatedTo"].append("X-1")
    assert event["tag_ids"] == [21, 92] and event["escalated_to"] == ["NCR-21"]
