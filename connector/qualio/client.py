"""Optional enrichment from Qualio's public API: fetch an event in full, map it to our NC record.

Qualio allows 200 requests per minute per API key and answers 429 beyond that. ``QualioClient``
keeps under its share with a sliding-window limiter (waiting when the window is full). After a 429
the limiter is paused for every caller of the client (one client per process): for Retry-After
when the answer carries one (Qualio's spec documents none), else for our own exponential backoff
with jitter (2 s doubling per 429 in a row, up to 60 s; reset by any other answer). While paused,
calls are refused locally (a retryable 429 whose ``retry_after`` is the pause left) instead of
sleeping: the worker reschedules the delivery. A refused key (401, 403) is a ``QualioAuthError``.
Nothing is retried here. The API key only ever travels in the ``X-Api-Key`` header.
"""

from __future__ import annotations

import random
import re
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

__all__ = ["QualioAuthError", "QualioClient", "QualioError", "RateLimiter", "is_event_code", "nc_record_from_event"]

WINDOW_SECONDS = 60.0
_RETRYABLE_4XX = frozenset({408, 429})
_AUTH = frozenset({401, 403})
_MAX_MESSAGE = 300
BACKOFF_BASE = 2.0  # seconds: the first pause after a 429 without a usable Retry-After
BACKOFF_CAP = 60.0

# An event code is its template's prefix, a hyphen and the event's number: the spec's examples are CAPA-1,
# NCR-12, NCR-21, COM-1 (and CAPA-4 in our fixtures). Letters only in the prefix, ASCII digits only in the
# number; a lower-case prefix is let through (Qualio may match it; a 404 costs little), "NC-2025-001" is not.
_EVENT_CODE = re.compile(r"[A-Za-z]+-[0-9]+")


def is_event_code(value: str) -> bool:
    """Whether ``value`` can be a Qualio event code (``NCR-12``): a template prefix, a hyphen, a number."""
    return _EVENT_CODE.fullmatch(value) is not None


def equal_jitter(delay: float) -> float:
    """A random wait between half of ``delay`` and ``delay``: processes sharing a key do not retry in step."""
    return random.uniform(delay / 2, delay)


class QualioError(APIError):
    """A failed Qualio call. ``retryable`` says whether trying again later can help."""

    service: ClassVar[str] = "Qualio"


class QualioAuthError(QualioError):
    """Qualio refused the API key (401, 403; ``status`` says which): a fault of the installation, not of one
    event. Never retryable by itself: every call fails the same way until the key or its rights are fixed."""


class RateLimiter:
    """At most ``limit`` acquisitions in any ``window`` seconds (sliding log), and none while paused; thread-safe.

    A request at time t counts against later ones while they are less than ``window`` after t.
    ``acquire`` waits (with ``sleep``, outside the lock) until a slot is free, but never through a
    pause: ``pause`` (after a 429) makes every ``acquire`` return the pause left without a slot.
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
        self._paused_until = float("-inf")

    def acquire(self) -> float:
        """Take a slot (waiting for one if the window is full) and return 0.0; while paused, take none and
        return the pause left (> 0)."""
        while True:
            with self._lock:
                paused = self._paused_until - self._clock()
                if paused > 0:
                    return paused
                wait = self._take()
            if wait <= 0:
                return 0.0
            self._sleep(wait)

    def pause(self, seconds: float) -> float:
        """Refuse every acquisition for ``seconds`` from now (a longer pause already set is kept); the pause left."""
        with self._lock:
            now = self._clock()
            self._paused_until = max(self._paused_until, now + seconds)
            return self._paused_until - now

    def paused_for(self) -> float:
        """How long acquisitions are still refused (0.0 when not paused)."""
        with self._lock:
            return max(0.0, self._paused_until - self._clock())

    def _try_acquire(self) -> float:
        """Take a slot and return 0, or return how long until the oldest slot frees (the pause is not looked at)."""
        with self._lock:
            return self._take()

    def _take(self) -> float:
        # with self._lock held
        now = self._clock()
        while self._sent and now - self._sent[0] >= self._window:
            self._sent.popleft()
        if len(self._sent) < self._limit:
            self._sent.append(now)
            return 0.0
        return self._sent[0] + self._window - now


class Backoff:
    """Our own pause after a 429 without a usable Retry-After: ``base`` doubling per 429 in a row, up to ``cap``,
    passed through ``jitter``; thread-safe.

    429s that answer requests sent before the latest backoff began are the same burst: they do not double it
    again (several requests in flight when the limit hit would otherwise jump straight to the cap).
    """

    def __init__(self, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP,
                 jitter: Callable[[float], float] = equal_jitter) -> None:
        self._base = base
        self._cap = cap
        self._jitter = jitter
        self._lock = threading.Lock()
        self._in_a_row = 0
        self._round = 0  # how many backoffs began: a request notes it when sent

    @property
    def round(self) -> int:
        return self._round

    def next_wait(self, sent_in_round: int) -> float | None:
        """The next pause, or None when a backoff began since this request was sent."""
        with self._lock:
            if sent_in_round != self._round:
                return None
            self._in_a_row += 1
            self._round += 1
            return self._jitter(min(self._cap, self._base * 2 ** (self._in_a_row - 1)))

    def reset(self) -> None:
        """Qualio answered something other than 429: the next 429 starts from ``base`` again."""
        with self._lock:
            self._in_a_row = 0


class QualioClient:
    """Reads events from Qualio's API (``GET {base}/v1/events/events/{code}``).

    One client per process: its limiter (``max_per_minute``, the pause after a 429) covers every thread that
    calls it. ``clock``, ``sleep`` and ``jitter`` (the backoff's, see ``Backoff``) are for the tests.
    """

    def __init__(self, base_url: str, api_key: str, timeout: float = 10.0, max_per_minute: int = 200,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 jitter: Callable[[float], float] = equal_jitter) -> None:
        if not base_url:
            raise ValueError("a Qualio base URL is required")
        if not api_key:
            raise ValueError("a Qualio API key is required")
        self._base = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = timeout
        self._limiter = RateLimiter(max_per_minute, clock=clock, sleep=sleep)
        self._backoff = Backoff(jitter=jitter)
        self._session = _session(api_key)

    def close(self) -> None:
        self._session.close()

    def fetch_event(self, code: str) -> dict[str, Any]:
        """The raw ``eventDetailed`` record of the event with this code (e.g. NCR-12)."""
        if not code:
            raise ValueError("an event code is required")
        paused = self._limiter.acquire()
        if paused > 0:
            raise QualioError(f"not sent: Qualio calls are paused after a 429 ({paused:.0f} s left)",
                              status=429, retry_after=paused, retryable=True)
        backoff_round = self._backoff.round
        url = f"{self._base}/v1/events/events/{quote(code, safe='')}"
        try:
            # No redirects: requests would forward the X-Api-Key header to wherever they point.
            response = self._session.get(url, timeout=self._timeout, allow_redirects=False)
        except requests.RequestException as exc:
            failure = request_failure(exc, [self._api_key])
            raise QualioError(failure.message, retryable=failure.retryable) from None
        if response.status_code == 429:
            raise self._throttled(response, backoff_round)
        self._backoff.reset()
        if response.status_code == 200:
            return self._event(response)
        raise self._from_response(response, code)

    def _throttled(self, response: requests.Response, backoff_round: int) -> QualioError:
        """Pause every caller: for Retry-After when usable (> 0), else for the backoff's next wait."""
        wait = retry_after(response)  # None when absent or unreadable; 0 after a 429 would only hammer Qualio
        paused = self._limiter.pause(wait) if wait is not None and wait > 0 else self._back_off(backoff_round)
        return QualioError(redact(_error_message(response), [self._api_key]), status=429, retry_after=paused,
                           retryable=True)

    def _back_off(self, backoff_round: int) -> float:
        own = self._backoff.next_wait(backoff_round)
        if own is None:  # another 429 began a backoff while this request was out: the same burst
            paused = self._limiter.paused_for()
            if paused > 0:
                return paused
            own = self._backoff.next_wait(self._backoff.round)  # that pause is over: this 429 is a new one
        return self._limiter.pause(own if own is not None else BACKOFF_BASE)

    def _event(self, response: requests.Response) -> dict[str, Any]:
        data = json_or_none(response, dict)
        if not isinstance(data, dict):
            raise QualioError("the answer is not a JSON object", status=response.status_code, retryable=True)
        return data

    def _from_response(self, response: requests.Response, code: str) -> QualioError:
        status = response.status_code
        wait = retry_after(response)
        if status == 404:
            message = f"event {code} not found"
        elif 300 <= status < 400:
            message = f"Qualio redirected to {response.headers.get('Location')!r}: check the Qualio URL"
        else:
            message = _error_message(response)
        kind = QualioAuthError if status in _AUTH else QualioError
        return kind(redact(message, [self._api_key]), status=status, retry_after=wait,
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
