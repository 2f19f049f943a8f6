"""The fault middleware: WSGI in front of Flask that logs /rest/ requests, applies latency, and answers
injected faults (429 or 503 with Jira Cloud's rate-limit headers, dropped connections, slow answers)."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Callable, Iterable
from contextlib import suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

from flask import Response

from connector.sandbox.faults import Fault
from connector.sandbox.injector import Decision
from connector.sandbox.state import SandboxState

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

Headers = list[tuple[str, str]]
Write = Callable[[bytes], object]

MAX_LOGGED_BODY = 256 * 1024

class FaultMiddleware:
    """WSGI middleware in front of Flask: logs /rest/ requests, applies latency and injected faults."""

    def __init__(self, app: WSGIApplication, state: SandboxState) -> None:
        self.app = app
        self.state = state

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/rest/"):
            return self.app(environ, start_response)
        decision = self.state.begin_request(environ["REQUEST_METHOD"], path, environ.get("QUERY_STRING", ""),
                                            logged_body(environ))
        if decision.latency > 0:
            self.state.sleep(decision.latency)
        fault = decision.fault
        if fault is not None and fault.kind == "slow":
            self.state.sleep(fault.seconds)
        if fault is None or fault.kind == "slow":
            return self._forward(environ, start_response, decision)
        if fault.kind in ("drop", "drop_after"):
            self._drop(environ, decision, process=fault.kind == "drop_after")
        response = refusal(fault, self.state.clock())
        self.state.end_request(decision, response.status_code, retry_after=fault.retry_after)
        return response(environ, start_response)

    def _forward(self, environ: WSGIEnvironment, start_response: StartResponse,
                 decision: Decision) -> Iterable[bytes]:
        statuses: list[int] = []
        extra = decision.quota.headers() if decision.quota is not None else []  # X-RateLimit-* of a budget

        def capture(status_line: str, headers: Headers, exc_info: Any = None) -> Write:
            statuses.append(int(status_line.split()[0]))
            return start_response(status_line, [*headers, *extra], exc_info)

        result = self.app(environ, capture)
        self.state.end_request(decision, statuses[-1] if statuses else None)
        return result

    def _drop(self, environ: WSGIEnvironment, decision: Decision, *, process: bool) -> NoReturn:
        """Close the connection without an answer; with `process`, after the request took effect."""
        statuses: list[int] = []

        def capture(status_line: str, headers: Headers, exc_info: Any = None) -> Write:
            statuses.append(int(status_line.split()[0]))
            return lambda data: None

        if process:
            result = self.app(environ, capture)
            for _ in result:
                pass
            close = getattr(result, "close", None)
            if close is not None:
                close()
        self.state.end_request(decision, statuses[-1] if statuses else None, delivered=False)
        connection = environ.get("werkzeug.socket")
        if isinstance(connection, socket.socket):
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        raise ConnectionAbortedError("jira sandbox: connection dropped by an injected fault")


def logged_body(environ: WSGIEnvironment) -> Any:
    """The request body for the log (parsed JSON when possible); the stream is put back for Flask."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length <= 0 or length > MAX_LOGGED_BODY:
        return None
    raw = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(raw)
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def refusal(fault: Fault, now: float) -> Response:
    """The 429, 503 or 401 answer for `fault`, with Retry-After (not on a 401) and (for 429) Jira Cloud's
    X-RateLimit headers. A 401 is what Jira answers once the connector's token has expired."""
    status_code = fault.status or 503
    message = {429: "Rate limit exceeded.", 401: "Client must be authenticated to access this resource."}.get(
        status_code, "Service Unavailable")
    response = Response(json.dumps({"errorMessages": [message], "errors": {}}), status=status_code,
                        mimetype="application/json")
    if fault.retry_after is not None and status_code != 401:
        response.headers["Retry-After"] = str(fault.retry_after)
    if status_code == 429:
        limit, window = fault.limit or 100, int(fault.window or 60)
        response.headers.update({"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": "0",
                                 "X-RateLimit-FillRate": str(limit), "X-RateLimit-Interval-Seconds": str(window),
                                 "X-RateLimit-NearLimit": "true", "RateLimit-Reason": fault.reason})
        if fault.retry_after is not None:
            reset_at = datetime.fromtimestamp(now + fault.retry_after, UTC)
            response.headers["X-RateLimit-Reset"] = reset_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return response
