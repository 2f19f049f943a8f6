"""What the Jira and the Qualio clients share about calling an HTTP API once, without retries.

Owns: the base of their error classes (``APIError``: status, message, retry_after, retryable and how
they print), the one Retry-After parser (seconds or HTTP date), the one translation of a ``requests``
exception into a message, whether retrying can help and whether the request may have been sent
(``request_failure``), the session adapter that turns urllib3's own retries off
(``session_without_retries``), and two small readers of an answer (``json_or_none``, ``status_line``).
Each client keeps its own status classification; neither retries (the worker does, with backoff).
Messages built here from exception text are redacted with ``connector.secrets.redact``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, NamedTuple

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError
from urllib3.util.retry import Retry

from connector.secrets import redact

__all__ = ["APIError", "RequestFailure", "json_or_none", "request_failure", "retry_after",
           "session_without_retries", "status_line"]

# Raised before anything is sent: the request itself is malformed, so trying again cannot help.
_INVALID_REQUEST = (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                    requests.exceptions.InvalidSchema, requests.exceptions.InvalidHeader)


_SECONDS = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")  # ASCII only: not "inf", "1_000" or "²"
MAX_RETRY_AFTER = 3600.0


class APIError(Exception):
    """A failed call to ``service``, classified for the caller's retry decision.

    ``str()`` is ``"<service> HTTP <status>: <message>"`` (``"<service>: <message>"`` without a
    status); ``repr()`` names the class and each of ``_repr_fields``.
    """

    service: ClassVar[str] = "HTTP API"
    _repr_fields: ClassVar[tuple[str, ...]] = ("status", "message", "retry_after", "retryable")

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None,
                 retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after
        self.retryable = retryable

    def __str__(self) -> str:
        if self.status:
            return f"{self.service} HTTP {self.status}: {self.message}"
        return f"{self.service}: {self.message}"

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._repr_fields)
        return f"{type(self).__name__}({shown})"


class RequestFailure(NamedTuple):
    """A ``requests`` exception, read: what to say, whether to retry, whether it may have been sent."""

    message: str
    retryable: bool
    maybe_sent: bool


def retry_after(response: requests.Response, now: datetime | None = None) -> float | None:
    """The answer's Retry-After in seconds (never negative), or None when absent or unreadable.

    Retry-After is either a number of seconds (ASCII digits, a fraction tolerated) or an HTTP date (a date in
    the past gives 0.0; one without a time zone is unreadable). A wait over an hour is taken as an hour: a
    broken or hostile header must not pause every worker for days.
    """
    raw = (response.headers.get("Retry-After") or "").strip()
    if not raw:
        return None
    if _SECONDS.fullmatch(raw):
        return min(max(0.0, float(raw)), MAX_RETRY_AFTER)
    try:
        wait = (parsedate_to_datetime(raw) - (now or datetime.now(UTC))).total_seconds()
    except (TypeError, ValueError):
        return None  # garbage, "inf", "nan", a date without a zone
    return min(max(0.0, wait), MAX_RETRY_AFTER)


def request_failure(exc: requests.RequestException, secrets: Iterable[str]) -> RequestFailure:
    """Translate a transport failure; ``secrets`` are redacted from the message (exception text may echo them)."""
    if isinstance(exc, _INVALID_REQUEST):
        return RequestFailure(redact(f"invalid request: {exc}", secrets), retryable=False, maybe_sent=False)
    kind = "timed out" if isinstance(exc, requests.Timeout) else "connection failed"
    return RequestFailure(redact(f"{kind}: {exc}", secrets), retryable=True, maybe_sent=_maybe_sent(exc))


def session_without_retries(session: requests.Session | None = None) -> requests.Session:
    """``session`` (or a new one) with urllib3's retries off for http and https; returns it.

    ``Retry(0, read=False)`` is requests' own default, stated here so that a changed default cannot
    bring retries back; ``read=False`` keeps a read timeout a ReadTimeout (with ``read=0`` urllib3
    would wrap it into a MaxRetryError and requests would report a ConnectionError).
    """
    session = session if session is not None else requests.Session()
    adapter = HTTPAdapter(max_retries=Retry(total=0, read=False, redirect=False))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def json_or_none(response: requests.Response, kind: type[Any] = object) -> Any:
    """The decoded body when it is JSON of ``kind``, else None (an empty body included)."""
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, kind) else None


def status_line(response: requests.Response) -> str:
    """``HTTP 503 Service Unavailable``: what to say of an answer whose body says nothing useful."""
    return f"HTTP {response.status_code} {response.reason or ''}".strip()


def _maybe_sent(exc: requests.RequestException) -> bool:
    """Whether the request may have reached the server: False only when the connection never opened."""
    # An SSLError is not listed: TLS can also fail while the answer is being read, after the send.
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.ProxyError)):
        return False
    cause = exc.args[0] if exc.args else None
    if isinstance(cause, MaxRetryError):
        cause = cause.reason
    # NameResolutionError is a NewConnectionError; refused and unreachable are too.
    return not isinstance(cause, (NewConnectionError, ConnectTimeoutError))
