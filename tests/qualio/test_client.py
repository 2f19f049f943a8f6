"""The Qualio enrichment client (mocked HTTP) and the eventDetailed -> NC record mapping."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import requests
import responses

from connector.qualio.client import (
    BACKOFF_CAP,
    QualioAuthError,
    QualioClient,
    QualioError,
    RateLimiter,
    equal_jitter,
    nc_record_from_event,
)
from tests.qualio.support import BASE, EVENT_PATH, KEY, FakeClock, answer, assert_requests, event_url, fixture, spec
from tests.qualio.support import make_client as client

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
    assert isinstance(caught.value, QualioAuthError) == (status in (401, 403))  # the key, not this event
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


# -- 429: the pause every caller of the client keeps ----------------------------------------------------


def throttled(qualio: QualioClient, code: str) -> QualioError:
    with pytest.raises(QualioError) as caught:
        qualio.fetch_event(code)
    assert (caught.value.status, caught.value.retryable) == (429, True)
    return caught.value


def test_the_spec_documents_no_retry_after_on_429() -> None:
    headers = spec().operation(EVENT_PATH, "get")["responses"]["429"]["headers"]
    assert "Retry-After" not in headers  # so we must be ready to back off on our own


def test_429_without_retry_after_backs_off_exponentially(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    for _ in range(7):
        answer(rsps, "NCR-12", 429, fixture("error_429"))
    answer(rsps, "NCR-12", 200, fixture("event_ncr_12"))  # Qualio lets us through again
    answer(rsps, "NCR-12", 429, fixture("error_429"))
    qualio = client(clock)
    waits = []
    for _ in range(7):
        error = throttled(qualio, "NCR-12")
        assert error.message == "You have exceeded what is allowed in the fair use policy for this API"
        waits.append(error.retry_after)
        clock.now += error.retry_after  # the worker comes back when the pause is over
    assert waits == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert qualio.fetch_event("NCR-12")["code"] == "NCR-12"
    assert throttled(qualio, "NCR-12").retry_after == 2.0  # any other answer starts the backoff afresh
    assert clock.slept == []  # refused, never slept
    assert_requests(rsps, ["NCR-12"] * 9)


def test_the_pause_after_a_429_stops_every_caller_of_the_client(rsps: responses.RequestsMock,
                                                                clock: FakeClock) -> None:
    answer(rsps, "NCR-1", 429, fixture("error_429"))
    qualio = client(clock)
    assert throttled(qualio, "NCR-1").retry_after == 2.0
    clock.now += 1.5
    refused: list[tuple[str, int | None, float | None]] = []
    start = threading.Barrier(5)

    def other_worker_thread(code: str) -> None:
        start.wait()
        try:
            qualio.fetch_event(code)
        except QualioError as exc:
            refused.append((code, exc.status, exc.retry_after))

    threads = [threading.Thread(target=other_worker_thread, args=(f"NCR-{n}",)) for n in range(2, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(refused) == [(f"NCR-{n}", 429, 0.5) for n in range(2, 7)]
    assert_requests(rsps, ["NCR-1"])  # none of them was sent

    clock.now += 0.5
    answer(rsps, "NCR-2", 200, fixture("event_ncr_12"))
    assert qualio.fetch_event("NCR-2")["code"] == "NCR-12"
    assert_requests(rsps, ["NCR-1", "NCR-2"])


def test_a_caller_waiting_for_a_slot_does_not_go_through_a_pause(clock: FakeClock) -> None:
    def sleep(seconds: float) -> None:  # while this caller waits, another one's request gets a 429
        limiter.pause(120.0)
        clock.sleep(seconds)

    limiter = RateLimiter(1, clock=clock, sleep=sleep)
    assert limiter.acquire() == 0.0
    assert limiter.acquire() == 60.0  # woke at 1060 into a pause lasting until 1120: no slot taken
    assert clock.slept == [60.0] and limiter.paused_for() == 60.0
    clock.now += 60.0
    assert limiter.acquire() == 0.0


def test_429s_of_one_burst_do_not_double_the_backoff_again(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    qualio = client(clock)
    inner: list[float | None] = []

    def limit_hit_while_in_flight(request: Any) -> tuple[int, dict[str, str], str]:
        inner.append(throttled(qualio, "NCR-2").retry_after)  # another caller's 429 arrives first
        return 429, {}, json.dumps(fixture("error_429"))

    rsps.add_callback(responses.GET, event_url("NCR-1"), callback=limit_hit_while_in_flight)
    answer(rsps, "NCR-2", 429, fixture("error_429"))
    assert throttled(qualio, "NCR-1").retry_after == 2.0  # the same burst: the pause is not doubled to 4
    assert inner == [2.0]
    clock.now += 2.0
    assert throttled(qualio, "NCR-2").retry_after == 4.0  # the next 429 in a row doubles it
    assert sorted(call.request.url for call in rsps.calls) == [event_url("NCR-1"), event_url("NCR-2"),
                                                              event_url("NCR-2")]


def test_429_with_retry_after_honours_it(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    answer(rsps, "NCR-12", 429, fixture("error_429"), headers={"Retry-After": "30"})
    answer(rsps, "NCR-12", 429, fixture("error_429"))
    qualio = client(clock)
    assert throttled(qualio, "NCR-12").retry_after == 30.0  # not our 2 s
    clock.now += 29.0
    assert throttled(qualio, "NCR-13").retry_after == 1.0  # every caller waits it out, nothing sent
    clock.now += 1.0
    assert throttled(qualio, "NCR-12").retry_after == 2.0  # Qualio's own wait was not a step of our backoff
    assert_requests(rsps, ["NCR-12", "NCR-12"])


def test_429_with_an_http_date_retry_after_honours_it(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=45), usegmt=True)
    answer(rsps, "NCR-12", 429, fixture("error_429"), headers={"Retry-After": when})
    wait = throttled(client(clock), "NCR-12").retry_after
    assert wait is not None and 40.0 <= wait <= 45.0


@pytest.mark.parametrize("header", ["soon", "0", "-5", "", "inf"])
def test_429_with_an_unusable_retry_after_backs_off(rsps: responses.RequestsMock, clock: FakeClock,
                                                   header: str) -> None:
    answer(rsps, "NCR-12", 429, fixture("error_429"), headers={"Retry-After": header})
    assert throttled(client(clock), "NCR-12").retry_after == 2.0  # 0 after a 429 would only hammer Qualio


def test_the_backoff_is_jittered_by_default(rsps: responses.RequestsMock, clock: FakeClock) -> None:
    answer(rsps, "NCR-12", 429, fixture("error_429"))
    wait = throttled(QualioClient(BASE, KEY, clock=clock, sleep=clock.sleep), "NCR-12").retry_after
    assert wait is not None and 1.0 <= wait <= 2.0
    samples = [equal_jitter(BACKOFF_CAP) for _ in range(200)]
    assert all(BACKOFF_CAP / 2 <= w <= BACKOFF_CAP for w in samples) and len(set(samples)) > 1


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
