"""The Jira client plumbing: deployment detection, error translation, no retries, redaction, the real transport."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.client import RemoteDisconnected

import pytest
import requests
import responses
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from connector.jira.gateway import JiraClientGateway, JiraError
from tests.jira.jira_http import (
    API,
    BASIC,
    CLOUD,
    CREATE_FIELDS,
    EMAIL,
    LABEL,
    SERVER,
    TOKEN,
    calls_of,
    cloud_gateway,
    fixture,
    jira_calls,
    mock_server_info,
)

# -- deployment ----------------------------------------------------------------------------------


def test_server_info_is_read_once(rsps: responses.RequestsMock) -> None:
    mock_server_info(rsps)
    rsps.get(f"{CLOUD}{API}search/jql", json=fixture("search_jql_page2"))
    gateway = cloud_gateway()
    gateway.find_issues_by_label(LABEL, "NC")
    gateway.find_issues_by_label(LABEL, "NC")
    assert len(calls_of(rsps, "/serverInfo")) == 1


def test_empty_server_info_is_one_retryable_error(rsps: responses.RequestsMock) -> None:
    """The jira client would ask three more times (JRA-59676); the gateway asks once."""
    rsps.get(f"{CLOUD}{API}serverInfo", body="")
    with pytest.raises(JiraError) as caught:
        cloud_gateway().find_issues_by_label(LABEL, "NC")
    assert (caught.value.status, caught.value.retryable, caught.value.outcome_unknown) == (200, True, False)
    assert len(rsps.calls) == 1


def test_deployment_falls_back_to_version_when_server_info_has_no_type(rsps: responses.RequestsMock) -> None:
    info = fixture("server_info_cloud")
    del info["deploymentType"]
    rsps.get(f"{SERVER}{API}serverInfo", json=info)
    rsps.get(f"{SERVER}{API}search/jql", json={"issues": [], "isLast": True})
    JiraClientGateway(SERVER, email=EMAIL, api_token=TOKEN).find_issues_by_label(LABEL, "NC")


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "retry_after"), [(503, "7"), (429, "30")])
def test_create_issue_is_not_retried_on_503_or_429(rsps: responses.RequestsMock, status: int,
                                                   retry_after: str) -> None:
    rsps.post(f"{CLOUD}{API}issue", json=fixture("error_429"), status=status, headers={"Retry-After": retry_after})
    before = jira_calls("create_issue", str(status))

    with pytest.raises(JiraError) as caught:
        cloud_gateway().create_issue(CREATE_FIELDS)

    assert len(rsps.calls) == 1
    error = caught.value
    assert (error.status, error.retryable, error.retry_after, error.outcome_unknown) == (
        status, True, float(retry_after), False)
    assert error.message == "Rate limit exceeded."
    assert jira_calls("create_issue", str(status)) == before + 1


def test_retry_after_may_be_an_http_date(rsps: responses.RequestsMock) -> None:
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 120))
    rsps.post(f"{CLOUD}{API}issue", status=503, headers={"Retry-After": when})
    with pytest.raises(JiraError) as caught:
        cloud_gateway().create_issue(CREATE_FIELDS)
    assert caught.value.retry_after is not None and 100 < caught.value.retry_after <= 120
    assert caught.value.message == "HTTP 503 Service Unavailable"


def test_create_issue_read_timeout_is_an_unknown_outcome(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{CLOUD}{API}issue", body=requests.exceptions.ReadTimeout("Read timed out. (read timeout=10)"))
    before = jira_calls("create_issue", "timeout")
    with pytest.raises(JiraError) as caught:
        cloud_gateway().create_issue(CREATE_FIELDS)
    assert len(rsps.calls) == 1
    error = caught.value
    assert (error.status, error.retryable, error.outcome_unknown, error.retry_after) == (None, True, True, None)
    assert jira_calls("create_issue", "timeout") == before + 1


@pytest.mark.parametrize(("exc", "unknown"), [
    (requests.exceptions.ConnectTimeout("connect timed out"), False),
    (requests.exceptions.ConnectionError(MaxRetryError(None, "/rest/api/2/issue",  # type: ignore[arg-type]
                                                       NewConnectionError(None, "refused"))),  # type: ignore[arg-type]
     False),
    (requests.exceptions.ConnectionError(ProtocolError("Connection aborted.", RemoteDisconnected("closed"))), True),
    (requests.exceptions.ChunkedEncodingError("Connection broken"), True),
])
def test_connection_errors_say_whether_the_create_may_have_happened(
        rsps: responses.RequestsMock, exc: Exception, unknown: bool) -> None:
    rsps.post(f"{CLOUD}{API}issue", body=exc)
    with pytest.raises(JiraError) as caught:
        cloud_gateway().create_issue(CREATE_FIELDS)
    assert len(rsps.calls) == 1
    assert (caught.value.status, caught.value.retryable, caught.value.outcome_unknown) == (None, True, unknown)


def test_400_carries_jiras_message_and_is_final(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{CLOUD}{API}issue", json=fixture("error_400_fields"), status=400)
    with pytest.raises(JiraError) as caught:
        cloud_gateway().create_issue({**CREATE_FIELDS, "priority": {"name": "Urgentt"}})
    error = caught.value
    assert error.message == "priority: Priority name 'Urgentt' is not valid"
    assert (error.status, error.retryable, error.outcome_unknown, error.retry_after) == (400, False, False, None)
    assert str(error) == "Jira HTTP 400: priority: Priority name 'Urgentt' is not valid"
    assert error.field_errors == {"priority": "Priority name 'Urgentt' is not valid"}


def test_error_messages_and_errors_are_joined(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{CLOUD}{API}issue", json=fixture("error_400_mixed"), status=400)
    with pytest.raises(JiraError) as caught:
        cloud_gateway().create_issue(CREATE_FIELDS)
    assert caught.value.message == (
        "Field 'customfield_10042' cannot be set. It is not on the appropriate screen, or unknown.; "
        "labels: Field 'labels' cannot be set. It is not on the appropriate screen, or unknown.; "
        "summary: You must specify a summary of the issue.")
    assert caught.value.field_errors == {
        "labels": "Field 'labels' cannot be set. It is not on the appropriate screen, or unknown.",
        "summary": "You must specify a summary of the issue."}


@pytest.mark.parametrize("status", [403, 409, 500])
def test_field_errors_are_only_read_from_a_400(rsps: responses.RequestsMock, status: int) -> None:
    rsps.post(f"{CLOUD}{API}issue", json=fixture("error_400_fields"), status=status)
    with pytest.raises(JiraError) as caught:
        cloud_gateway().create_issue(CREATE_FIELDS)
    assert caught.value.status == status
    assert caught.value.field_errors == {}
    assert "Priority name 'Urgentt'" in caught.value.message  # the words are still reported


def test_field_errors_of_a_400_without_errors_are_empty(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{CLOUD}{API}issue", json={"errorMessages": ["Bad request"]}, status=400)
    with pytest.raises(JiraError) as caught:
        cloud_gateway().create_issue(CREATE_FIELDS)
    assert (caught.value.message, caught.value.field_errors) == ("Bad request", {})


@pytest.mark.parametrize(("status", "retryable", "unknown"), [
    (401, False, False), (403, False, False), (404, False, False), (408, True, False), (409, True, False),
    (413, False, False), (500, True, True), (502, True, True), (504, True, True),
])
def test_status_classification(rsps: responses.RequestsMock, status: int, retryable: bool, unknown: bool) -> None:
    rsps.post(f"{CLOUD}{API}issue", body="<html>gateway</html>", status=status, content_type="text/html")
    with pytest.raises(JiraError) as caught:
        cloud_gateway().create_issue(CREATE_FIELDS)
    assert len(rsps.calls) == 1
    assert (caught.value.retryable, caught.value.outcome_unknown) == (retryable, unknown)
    assert "<html>" not in caught.value.message


def test_redirects_are_reported_not_followed(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{CLOUD}{API}issue", status=301, headers={"Location": "https://jira.example.org/rest/api/2/issue"})
    with pytest.raises(JiraError) as caught:
        cloud_gateway().create_issue(CREATE_FIELDS)
    assert len(rsps.calls) == 1
    assert (caught.value.status, caught.value.retryable) == (301, False)
    assert "NC_CONNECTOR_JIRA_URL" in caught.value.message


def test_credentials_never_appear_in_errors(rsps: responses.RequestsMock) -> None:
    # Contrived echoes of the credentials: in Jira's body, and in a transport error's text.
    rsps.post(f"{CLOUD}{API}issue", status=401,
              json={"errorMessages": [f"Basic auth {BASIC} with token {TOKEN} was refused"]})
    rsps.put(f"{CLOUD}{API}issue/NC-24", body=requests.exceptions.ConnectionError(f"boom {TOKEN}"))
    gateway = cloud_gateway()
    errors = []
    for attempt in (lambda: gateway.create_issue(CREATE_FIELDS), lambda: gateway.update_issue("NC-24", {})):
        with pytest.raises(JiraError) as caught:
            attempt()
        errors.append(caught.value)
    for error in errors:
        shown = " ".join([error.message, str(error), repr(error), *map(str, error.args)])
        assert TOKEN not in shown and BASIC.split()[1] not in shown
        assert "<secret>" in shown
        # The library's JIRAError (its str() dumps headers and cookies) is not chained into tracebacks.
        assert error.__cause__ is None and error.__suppress_context__


def test_credentials_never_appear_in_field_errors(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{CLOUD}{API}issue", status=400, json={"errorMessages": [], "errors": {"summary": f"echo {TOKEN}"}})
    with pytest.raises(JiraError) as caught:
        cloud_gateway().create_issue(CREATE_FIELDS)
    assert caught.value.field_errors == {"summary": "echo <secret>"}
    assert TOKEN not in repr(caught.value)


# -- the real transport: one attempt, explicit timeout ---------------------------------------------


class TinyServer:
    """A local TCP server that reads each request's head, then replies, hangs or hangs up."""

    def __init__(self, behaviour: str, reply: bytes = b"") -> None:
        self.behaviour, self.reply = behaviour, reply
        self.connections = 0
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.connections += 1
            with conn:
                self._handle(conn)

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(2)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            if self.behaviour == "reply":
                conn.sendall(self.reply)
            elif self.behaviour == "hang":
                self._stop.wait(2)
        except OSError:
            return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(3)
        self._sock.close()


@pytest.fixture
def tiny_server(request: pytest.FixtureRequest) -> Iterator[TinyServer]:
    server = TinyServer(*request.param)
    yield server
    server.close()


@pytest.mark.parametrize("tiny_server", [("hang",)], indirect=True)
def test_real_read_timeout_is_one_attempt_with_unknown_outcome(tiny_server: TinyServer) -> None:
    gateway = JiraClientGateway(tiny_server.url, email=EMAIL, api_token=TOKEN, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(JiraError) as caught:
        gateway.create_issue(CREATE_FIELDS)
    assert time.monotonic() - started < 1.5
    assert (caught.value.status, caught.value.retryable, caught.value.outcome_unknown) == (None, True, True)
    assert tiny_server.connections == 1


@pytest.mark.parametrize("tiny_server", [("close",)], indirect=True)
def test_real_dropped_connection_is_one_attempt_with_unknown_outcome(tiny_server: TinyServer) -> None:
    gateway = JiraClientGateway(tiny_server.url, email=EMAIL, api_token=TOKEN, timeout=1)
    with pytest.raises(JiraError) as caught:
        gateway.create_issue(CREATE_FIELDS)
    assert (caught.value.retryable, caught.value.outcome_unknown) == (True, True)
    assert tiny_server.connections == 1


@pytest.mark.parametrize("tiny_server", [(
    "reply", b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\n"
             b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")], indirect=True)
def test_real_503_is_not_retried_by_the_client(tiny_server: TinyServer) -> None:
    gateway = JiraClientGateway(tiny_server.url, email=EMAIL, api_token=TOKEN, timeout=1)
    started = time.monotonic()
    with pytest.raises(JiraError) as caught:
        gateway.create_issue(CREATE_FIELDS)
    # ResilientSession, if it retried, would first sleep 1-2 s (2 x Retry-After, jittered).
    assert time.monotonic() - started < 0.9
    assert (caught.value.status, caught.value.retry_after, caught.value.retryable) == (503, 1.0, True)
    assert tiny_server.connections == 1


def test_real_refused_connection_was_not_sent() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    gateway = JiraClientGateway(f"http://127.0.0.1:{port}", email=EMAIL, api_token=TOKEN, timeout=1)
    with pytest.raises(JiraError) as caught:
        gateway.create_issue(CREATE_FIELDS)
    assert (caught.value.status, caught.value.retryable, caught.value.outcome_unknown) == (None, True, False)
