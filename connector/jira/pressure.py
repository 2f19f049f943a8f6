"""Jira's rate-limit signals, read from each answer: ``Pressure``, and how long Jira asks us to wait.

Every answer is read for ``X-RateLimit-NearLimit: true`` (sent once less than 20% of a budget is
left), a 429, or a 503 with Retry-After. The gateway keeps the strongest signal each thread's calls
met and ``take_pressure()`` hands it to the caller, which shares it with the other workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import requests

from connector.http_api import MAX_RETRY_AFTER, retry_after

__all__ = ["Pressure", "jira_retry_after", "pressure_of", "stronger"]


@dataclass(frozen=True)
class Pressure:
    """Jira asked us to slow down: ``X-RateLimit-NearLimit: true``, a 429, or a 503 with Retry-After."""

    status: int
    near_limit: bool
    retry_after: float | None = None  # seconds, from a 429's or 503's Retry-After (or X-RateLimit-Reset)
    remaining: int | None = None  # X-RateLimit-Remaining, when Jira sent it
    reason: str | None = None  # RateLimit-Reason (which limit), when Jira sent it


def jira_retry_after(response: requests.Response, now: datetime | None = None) -> float | None:
    """Seconds to wait: Retry-After (seconds or HTTP date), else Cloud's X-RateLimit-Reset (ISO time).

    An unreadable Retry-After gives None: X-RateLimit-Reset is only read when Retry-After is absent.
    """
    if response.headers.get("Retry-After"):
        return retry_after(response, now)
    reset = response.headers.get("X-RateLimit-Reset")
    if reset:
        try:
            reset_at = datetime.fromisoformat(reset.replace("Z", "+00:00"))
        except ValueError:
            return None
        if reset_at.tzinfo is None:
            reset_at = reset_at.replace(tzinfo=UTC)  # Cloud sends UTC; a zone-less time is read as UTC too
        return min(max(0.0, (reset_at - (now or datetime.now(UTC))).total_seconds()), MAX_RETRY_AFTER)
    return None


def pressure_of(response: requests.Response) -> Pressure | None:
    """The answer's rate-limit signal: NearLimit true, a 429, or a 503 with Retry-After; else None."""
    code = response.status_code
    near = response.headers.get("X-RateLimit-NearLimit", "").strip().casefold() == "true"
    wait = jira_retry_after(response) if code in (429, 503) else None
    if not (near or code == 429 or wait is not None):
        return None
    remaining = response.headers.get("X-RateLimit-Remaining", "").strip()
    return Pressure(status=code, near_limit=near, retry_after=wait,
                    remaining=int(remaining) if remaining.isdigit() else None,
                    reason=response.headers.get("RateLimit-Reason"))


def stronger(old: Pressure | None, new: Pressure) -> Pressure:
    """The signal asking for the longer wait; the newer one on a tie."""
    if old is None or (new.retry_after or 0.0) >= (old.retry_after or 0.0):
        return new
    return old
