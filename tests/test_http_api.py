"""The HTTP plumbing the Jira and the Qualio clients share: Retry-After, transport failures, no retries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from http.client import RemoteDisconnected
from typing import Any, ClassVar

import pytest
import requests
import responses
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError, ProtocolError

from connector.http_api import (
    APIError,
    RequestFailure,
    json_or_none,
    request_failure,
    retry_after,
    session_without_retries,
    status_line,
)

URL = "https://api.example.com/thing"
NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
SECRET = "s3cr3t-value-for-tests"  # a test value, not a credential


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def answer(rsps: responses.RequestsMock, status: int = 429, **kwargs: Any) -> requests.Response:
    rsps.get(URL, status=status, **kwargs)
    return requests.get(URL)


# -- Retry-After -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [
    ("30", 30.0),
    ("1.5", 1.5),
    (" 7 ", 7.0),
    ("0", 0.0),
    ("-5", 0.0),  # never negative
    ("Wed, 01 Jan 2025 12:02:00 GMT", 120.0),
    ("Wed, 01 Jan 2025 11:00:00 GMT", 0.0),  # a date in the past: go now
    ("Wed, 01 Jan 2025 13:02:00 +0100", 120.0),
    ("Wed, 01 Jan 2025 12:02:00", None),  # no time zone: unreadable
    ("soon", None),
    ("2025-01-01T12:02:00Z", None),  # ISO is not an HTTP date
    ("inf", None),  # float() would take these: a pause for ever, or none
    ("nan", None),
    ("1_000", None),
    ("\u00b2", None),
    ("86400", 3600.0),  # capped: a broken header must not stop every worker for a day
    ("Wed, 08 Jan 2025 12:00:00 GMT", 3600.0),
])
def test_retry_after_is_seconds_or_an_http_date(rsps: responses.RequestsMock, raw: str,
                                                expected: float | None) -> None:
    assert retry_after(answer(rsps, headers={"Retry-After": raw}), now=NOW) == expected


def test_retry_after_absent_or_empty_is_none(rsps: responses.RequestsMock) -> None:
    assert retry_after(answer(rsps), now=NOW) is None
    assert retry_after(answer(rsps, headers={"Retry-After": ""}), now=NOW) is None


def test_retry_after_reads_only_retry_after(rsps: responses.RequestsMock) -> None:
    # Jira Cloud's X-RateLimit-Reset is the Jira client's business (connector.jira.pressure).
    assert retry_after(answer(rsps, headers={"X-RateLimit-Reset": "2025-01-01T12:01:00Z"}), now=NOW) is None


def test_retry_after_http_date_defaults_to_the_current_time(rsps: responses.RequestsMock) -> None:
    wait = retry_after(answer(rsps, headers={"Retry-After": "Mon, 01 Jan 2001 00:00:00 GMT"}))
    assert wait == 0.0


# -- transport failures --------------------------------------------------------------------------------


TIMED_OUT, FAILED, INVALID = "timed out: ", "connection failed: ", "invalid request: "


@pytest.mark.parametrize(("exc", "prefix", "retryable", "maybe_sent"), [
    (requests.exceptions.ConnectTimeout("connect timed out"), TIMED_OUT, True, False),
    (requests.exceptions.ReadTimeout("read timed out"), TIMED_OUT, True, True),
    (requests.exceptions.ConnectionError(MaxRetryError(None, "/", NewConnectionError(None, "refused"))),  # type: ignore[arg-type]
     FAILED, True, False),
    (requests.exceptions.ConnectionError(MaxRetryError(None, "/", ConnectTimeoutError())),  # type: ignore[arg-type]
     FAILED, True, False),
    (requests.exceptions.ConnectionError(ProtocolError("Connection aborted.", RemoteDisconnected("closed"))),
     FAILED, True, True),
    (requests.exceptions.ProxyError("proxy said no"), FAILED, True, False),
    (requests.exceptions.SSLError("bad record"), FAILED, True, True),  # TLS may fail after the send
    (requests.exceptions.ChunkedEncodingError("broken"), FAILED, True, True),
    (requests.exceptions.InvalidURL("no host"), INVALID, False, False),
    (requests.exceptions.MissingSchema("no scheme"), INVALID, False, False),
    (requests.exceptions.InvalidSchema("no adapter"), INVALID, False, False),
    (requests.exceptions.InvalidHeader("bad header"), INVALID, False, False),
])
def test_request_failure_says_what_retrying_can_do(exc: requests.RequestException, prefix: str, retryable: bool,
                                                   maybe_sent: bool) -> None:
    assert request_failure(exc, []) == RequestFailure(prefix + str(exc), retryable, maybe_sent)


def test_request_failure_from_a_mocked_call(rsps: responses.RequestsMock) -> None:
    rsps.get(URL, body=requests.exceptions.ConnectionError(f"failed with key {SECRET}"))
    with pytest.raises(requests.RequestException) as caught:
        requests.get(URL)
    failure = request_failure(caught.value, [SECRET, ""])
    assert failure == RequestFailure("connection failed: failed with key <secret>", True, True)


def test_request_failure_redacts_every_secret() -> None:
    failure = request_failure(requests.exceptions.InvalidURL(f"https://u:{SECRET}@x/ and {SECRET}-2"),
                              [SECRET, SECRET + "-2"])
    assert failure.message == "invalid request: https://u:<secret>@x/ and <secret>"


# -- the session -----------------------------------------------------------------------------------------


def test_session_without_retries_mounts_an_adapter_that_never_retries() -> None:
    for session in (session_without_retries(), session_without_retries(requests.Session())):
        for scheme in ("https://", "http://"):
            retries = session.get_adapter(scheme + "example.com").max_retries  # type: ignore[attr-defined]
            assert (retries.total, retries.read, retries.redirect) == (0, False, False)


def test_session_without_retries_returns_the_session_it_was_given() -> None:
    session = requests.Session()
    assert session_without_retries(session) is session


# -- answers ---------------------------------------------------------------------------------------------


def test_json_or_none(rsps: responses.RequestsMock) -> None:
    assert json_or_none(answer(rsps, 200, json={"a": 1}), dict) == {"a": 1}
    assert json_or_none(answer(rsps, 200, json=[1]), dict) is None
    assert json_or_none(answer(rsps, 200, json=[1])) == [1]
    assert json_or_none(answer(rsps, 200, body="<html>"), dict) is None
    assert json_or_none(answer(rsps, 200, body=""), list) is None


def test_status_line(rsps: responses.RequestsMock) -> None:
    assert status_line(answer(rsps, 503, body="<html>down</html>")) == "HTTP 503 Service Unavailable"
    response = requests.Response()
    response.status_code = 599
    assert status_line(response) == "HTTP 599"


# -- the error base --------------------------------------------------------------------------------------


class DemoError(APIError):
    service: ClassVar[str] = "Demo"


def test_api_error_prints_its_service_status_and_message() -> None:
    error = DemoError("slow down", status=429, retry_after=3.0, retryable=True)
    assert str(error) == "Demo HTTP 429: slow down"
    assert repr(error) == "DemoError(status=429, message='slow down', retry_after=3.0, retryable=True)"
    assert error.args == ("slow down",)
    assert str(DemoError("connection failed: x")) == "Demo: connection failed: x"
