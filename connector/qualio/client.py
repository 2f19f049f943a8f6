"""Qualio's public API: an event in full (enrichment), the templates and pages of event summaries (reconcile).

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
from typing import Any, ClassVar, Protocol
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
from connector.qualio.record import nc_record_from_event
from connector.secrets import redact

__all__ = ["Limiter", "QualioAuthError", "QualioClient", "QualioError", "RateLimiter", "is_event_code",
           "nc_record_from_event"]

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


class Limiter(Protocol):
    """What the client needs of a budget: ``RateLimiter`` (this process) or ``connector.budgets.SharedBudget``."""

    def acquire(self) -> float: ...

    def pause(self, seconds: float) -> float: ...

    def paused_for(self) -> float: ...


class QualioClient:
    """Reads Qualio's API: an event in full (``fetch_event``), the event templates (``list_templates``) and a
    page of event summaries (``query_events``).

    Every request takes a slot of ``limiter`` first (default: a ``RateLimiter`` of ``max_per_minute`` for this
    process; the runtime passes the installation's ``SharedBudget``); a 429 pauses it for every caller.
    ``clock``, ``sleep`` and ``jitter`` (the backoff's, see ``Backoff``) are for the tests. ``requests`` and
    ``throttled`` count what this client sent and how many 429s came back.
    """

    def __init__(self, base_url: str, api_key: str, timeout: float = 10.0, max_per_minute: int = 200,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 jitter: Callable[[float], float] = equal_jitter, limiter: Limiter | None = None) -> None:
        if not base_url:
            raise ValueError("a Qualio base URL is required")
        if not api_key:
            raise ValueError("a Qualio API key is required")
        self._base = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = timeout
        self._limiter: Limiter = limiter or RateLimiter(max_per_minute, clock=clock, sleep=sleep)
        self._backoff = Backoff(jitter=jitter)
        self._session = _session(api_key)
        self.requests = 0
        self.throttled = 0

    def close(self) -> None:
        self._session.close()

    def fetch_event(self, code: str) -> dict[str, Any]:
        """The raw ``eventDetailed`` record of the event with this code (e.g. NCR-12)."""
        if not code:
            raise ValueError("an event code is required")
        return self._get(f"/v1/events/events/{quote(code, safe='')}", None, f"event {code} not found")

    def list_templates(self) -> list[dict[str, Any]]:
        """Every effective event template (``eventTemplateResp.items``): prefix, event_template_matrix_id, ..."""
        items = self._get("/v1/events/templates", None, "no event templates").get("items")
        if not isinstance(items, list):
            raise QualioError("the template list has no items", status=200, retryable=True)
        return [item for item in items if isinstance(item, dict)]

    def query_events(self, status: str, offset: int, limit: int,
                     template_id: str | None = None) -> dict[str, Any]:
        """One page of event summaries (``eventQueryResponse``: ``items`` and ``total``) with this status."""
        params: dict[str, str | int] = {"status": status, "offset": offset, "limit": limit}
        if template_id is not None:
            params["event_template_matrix_id"] = template_id
        page = self._get("/v1/events/events", params, "events not found")
        if not isinstance(page.get("items"), list) or not isinstance(page.get("total"), int | float):
            raise QualioError("the event list has no items or no total", status=200, retryable=True)
        return page

    def _get(self, path: str, params: dict[str, str | int] | None, not_found: str) -> dict[str, Any]:
        paused = self._limiter.acquire()
        if paused > 0:
            raise QualioError(f"not sent: Qualio calls are paused after a 429 ({paused:.0f} s left)",
                              status=429, retry_after=paused, retryable=True)
        backoff_round = self._backoff.round
        self.requests += 1
        try:
            # No redirects: requests would forward the X-Api-Key header to wherever they point.
            response = self._session.get(self._base + path, params=params, timeout=self._timeout,
                                         allow_redirects=False)
        except requests.RequestException as exc:
            failure = request_failure(exc, [self._api_key])
            raise QualioError(failure.message, retryable=failure.retryable) from None
        if response.status_code == 429:
            self.throttled += 1
            raise self._throttled(response, backoff_round)
        self._backoff.reset()
        if response.status_code == 200:
            return self._event(response)
        raise self._from_response(response, not_found)

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

    def _from_response(self, response: requests.Response, not_found: str) -> QualioError:
        status = response.status_code
        wait = retry_after(response)
        if status == 404:
            message = not_found
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
