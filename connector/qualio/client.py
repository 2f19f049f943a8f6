"""Optional enrichment from Qualio's public API: fetch an event in full, map it to our NC record.

Qualio allows 200 requests per minute per API key and answers 429 beyond that. ``QualioClient``
keeps under its share with a sliding-window limiter (waiting when the window is full) and, after a
429, refuses locally until Retry-After has passed instead of sleeping: the worker reschedules the
delivery. Nothing is retried here. The API key only ever travels in the ``X-Api-Key`` header.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import quote

import requests

from connector import __version__
from connector.http_api import (
    APIError,
    json_or_none,
    request_failure,
    retry_after,
    session_without_retries,
    status_line,
)
from connector.secrets import redact

__all__ = ["QualioClient", "QualioError", "RateLimiter", "nc_record_from_event"]

WINDOW_SECONDS = 60.0
_RETRYABLE_4XX = frozenset({408, 429})
_MAX_MESSAGE = 300


class QualioError(APIError):
    """A failed Qualio call. ``retryable`` says whether trying again later can help."""

    service: ClassVar[str] = "Qualio"


class RateLimiter:
    """At most ``limit`` acquisitions in any ``window`` seconds (sliding log); thread-safe.

    A request at time t counts against later ones while they are less than ``window`` after t.
    ``acquire`` waits (with ``sleep``, outside the lock) until a slot is free.
    """

    def __init__(self, limit: int, window: float = WINDOW_SECONDS, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if limit <= 0:
            raise ValueError("limit must be positive")
        self._limit = limit
        self._window = window
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sent: deque[float] = deque()

    def acquire(self) -> None:
        while True:
            wait = self._try_acquire()
            if wait <= 0:
                return
            self._sleep(wait)

    def _try_acquire(self) -> float:
        """Take a slot and return 0, or return how long until the oldest slot frees."""
        with self._lock:
            now = self._clock()
            while self._sent and now - self._sent[0] >= self._window:
                self._sent.popleft()
            if len(self._sent) < self._limit:
                self._sent.append(now)
                return 0.0
            return self._sent[0] + self._window - now


class QualioClient:
    """Reads events from Qualio's API (``GET {base}/v1/events/events/{code}``)."""

    def __init__(self, base_url: str, api_key: str, timeout: float = 10.0, max_per_minute: int = 200,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if not base_url:
            raise ValueError("a Qualio base URL is required")
        if not api_key:
            raise ValueError("a Qualio API key is required")
        self._base = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = timeout
        self._clock = clock
        self._limiter = RateLimiter(max_per_minute, clock=clock, sleep=sleep)
        self._blocked_until = 0.0  # clock() time before which Qualio asked us (429) not to call
        self._session = _session(api_key)

    def close(self) -> None:
        self._session.close()

    def fetch_event(self, code: str) -> dict[str, Any]:
        """The raw ``eventDetailed`` record of the event with this code (e.g. NCR-12)."""
        if not code:
            raise ValueError("an event code is required")
        self._refuse_while_throttled()
        self._limiter.acquire()
        url = f"{self._base}/v1/events/events/{quote(code, safe='')}"
        try:
            # No redirects: requests would forward the X-Api-Key header to wherever they point.
            response = self._session.get(url, timeout=self._timeout, allow_redirects=False)
        except requests.RequestException as exc:
            failure = request_failure(exc, [self._api_key])
            raise QualioError(failure.message, retryable=failure.retryable) from None
        if response.status_code == 200:
            return self._event(response)
        raise self._from_response(response, code)

    def _refuse_while_throttled(self) -> None:
        remaining = self._blocked_until - self._clock()
        if remaining > 0:
            raise QualioError(f"not sent: Qualio asked for a pause after a 429 ({remaining:.0f} s left)",
                              status=429, retry_after=remaining, retryable=True)

    def _event(self, response: requests.Response) -> dict[str, Any]:
        data = json_or_none(response, dict)
        if not isinstance(data, dict):
            raise QualioError("the answer is not a JSON object", status=response.status_code, retryable=True)
        return data

    def _from_response(self, response: requests.Response, code: str) -> QualioError:
        status = response.status_code
        wait = retry_after(response)
        if status == 429 and wait:
            self._blocked_until = max(self._blocked_until, self._clock() + wait)
        if status == 404:
            message = f"event {code} not found"
        elif 300 <= status < 400:
            message = f"Qualio redirected to {response.headers.get('Location')!r}: check the Qualio URL"
        else:
            message = _error_message(response)
        return QualioError(redact(message, [self._api_key]), status=status, retry_after=wait,
                           retryable=status in _RETRYABLE_4XX or status >= 500)


def _session(api_key: str) -> requests.Session:
    # urllib3 must not retry (the worker does, with backoff).
    session = session_without_retries()
    session.headers.update({"X-Api-Key": api_key, "Accept": "application/json",
                            "User-Agent": f"nc-connector/{__version__}"})
    return session


def _error_message(response: requests.Response) -> str:
    """Qualio's ``message`` (403, 429), or the ``errors`` descriptions (400), else the status line."""
    data = json_or_none(response, dict)
    if isinstance(data, dict):
        if data.get("message"):
            return str(data["message"])[:_MAX_MESSAGE]
        errors = data.get("errors")
        if isinstance(errors, list) and errors:
            return "; ".join(str(e.get("description", e)) if isinstance(e, dict) else str(e)
                             for e in errors)[:_MAX_MESSAGE]
    return status_line(response)


# -- eventDetailed -> NC record (pure) ------------------------------------------------------------

# Qualio's own status (open, closed, imported, rejected, cancelled) is `qualioStatus`: the webhook's `status`
# is the NC's workflow status, which drives the Jira transition, and must not be replaced by the coarse one.
_SCALARS = {"ncId": "code", "title": "title", "description": "description", "qualioStatus": "status", "url": "url",
            "createdAt": "created_at", "dueAt": "due_at", "modifiedAt": "modified_at",
            "closedAt": "closed_at", "risk": "risk"}


def nc_record_from_event(event: dict[str, Any]) -> dict[str, Any]:
    """Map Qualio's ``eventDetailed`` to our NC record (the camelCase keys of the webhook contract).

    ``fields`` holds each form field by label, in step and field order: the value for a single
    field (None when empty), a list for a multi field. Linked events appear as their code, other
    linked records (documents, suppliers, ...) as their name. ``sections`` holds each content
    section's content by label. A label seen before (in an earlier step) is kept as
    ``"<step label> / <label>"`` so that nothing is lost and the first keeps its plain name.
    Missing keys become None (or empty), so a partial record maps too.
    """
    record: dict[str, Any] = {ours: event.get(theirs) for ours, theirs in _SCALARS.items()}
    record["ownerUserId"] = _number(event.get("owner_user_id"))
    record["tagIds"] = [_number(t) for t in event.get("tag_ids") or []]
    record["escalatedFrom"] = list(event.get("escalated_from") or [])
    record["escalatedTo"] = list(event.get("escalated_to") or [])
    steps = _ordered([s for s in event.get("steps") or [] if isinstance(s, dict)])
    record["fields"] = _form_fields(steps)
    record["sections"] = _content_sections(steps)
    return record


def _form_fields(steps: list[dict[str, Any]]) -> dict[str, Any]:
    # A "section" inside a form is a heading: it holds no value.
    return _step_values(steps, "form", "fields", _field_value, skip_type="section")


def _content_sections(steps: list[dict[str, Any]]) -> dict[str, Any]:
    return _step_values(steps, "content", "sections", lambda section: section.get("content"))


def _step_values(steps: list[dict[str, Any]], step_type: str, key: str, value_of: Callable[[dict[str, Any]], Any],
                 skip_type: str | None = None) -> dict[str, Any]:
    """Label -> value over the steps of `step_type`, each step's `key` list in its own order."""
    found: dict[str, Any] = {}
    for step in steps:
        if step.get("type") != step_type:
            continue
        for item in _ordered(step.get(key) or []):
            if skip_type is None or item.get("type") != skip_type:
                _put(found, step, str(item.get("label", "")), value_of(item))
    return found


def _put(found: dict[str, Any], step: dict[str, Any], label: str, value: Any) -> None:
    key = label if label not in found else f"{step.get('label', '')} / {label}"
    found.setdefault(key, value)


def _field_value(field: dict[str, Any]) -> Any:
    is_event = field.get("type") == "event"
    values = [_value(v, is_event) for v in field.get("values") or []]
    if field.get("multi"):
        return values
    return values[0] if values else None


def _value(value: Any, is_event: bool) -> Any:
    if not isinstance(value, dict):
        return value
    if is_event and value.get("code"):
        return value["code"]
    return value.get("name")


def _ordered(items: list[Any]) -> list[dict[str, Any]]:
    """Dict items sorted by their ``order`` (stable; those without one keep their place at the end)."""
    dicts = [i for i in items if isinstance(i, dict)]
    return sorted(dicts, key=lambda i: (not isinstance(i.get("order"), int | float), i.get("order") or 0))


def _number(value: Any) -> Any:
    """JSON numbers that are whole (1.0) as int: ids compare and print as ids."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
