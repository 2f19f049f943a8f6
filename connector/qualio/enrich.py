"""Optional enrichment: thin events are completed with the NC's current record from Qualio's API.

The rule for thin events (see README, "Thin events"): the record is fetched when a worker
*syncs* the NC, after it has claimed every queued delivery of that NC, so it reflects every
change whose delivery arrived before the claim. A thin duplicate that arrives after its
original was claimed re-queues the NC (store.record_delivery), so a change made in Qualio
while a fetch was in flight is fetched again rather than lost.

Enrichment completes a sync, it never blocks one for good: when Qualio has no record of the NC
(an id that cannot be an event code, a 400 or, after a few attempts, a 404) the NC is synced from
its webhook payloads alone.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from connector.qualio.client import QualioAuthError, QualioClient, QualioError, is_event_code, nc_record_from_event
from connector.sync.errors import InstallationFault, Permanent, RetryLater

__all__ = ["QualioEnricher"]

log = logging.getLogger(__name__)

_REMEMBERED = 10_000  # ids kept per set below; the oldest are forgotten first


class QualioEnricher:
    """``fetch(nc_id, attempt)``: the NC's record from Qualio, ``{}`` when Qualio has none, or a sync signal.

    - An id that cannot be a Qualio event code (``NC-2025-001``; see ``client.is_event_code``), or one
      Qualio calls malformed (400): ``{}`` at once, no request; logged at INFO once per id per process.
    - 404: a new event may not be visible in Qualio's API yet, so on attempts 1..``not_found_attempts``-1
      ``RetryLater`` with ``not_found_delays`` (the last one repeats), counting the attempt; on attempt
      ``not_found_attempts`` (and later) ``{}`` with a WARNING naming the NC. Once that happened for an NC,
      a later 404 for it returns ``{}`` at once (per process; the event is still asked for every time).
    - Qualio refused the key (401, 403): the fault of the installation, not of this NC: ``InstallationFault``,
      on which every worker pauses (no attempt counted) and probes again with backoff until the key works.
    - 429 (sent or refused locally during the client's pause): ``RetryLater`` for the pause left, not counted
      (the API key's budget is shared by every NC, like Jira's Retry-After); other retryable failures
      (5xx, transport): ``RetryLater`` with the worker's backoff, counted.
    - Anything else (a redirect, another 4xx): ``Permanent`` (step "enrich").

    ``attempt`` is the sync's attempt number, 1 for a fresh delivery (``claim.attempts + 1``). It defaults to 1
    for callers that do not pass it, for whom a 404 never falls back to the payload: it is retried, counted,
    until the worker's budget (max_attempts) buries the NC. ``not_found_attempts`` should not exceed
    max_attempts, else the retries bury the NC before the fallback is reached.

    The process keeps one enricher (connector.ops.runtime), so "per process" above is per instance.
    """

    def __init__(self, client: QualioClient, not_found_attempts: int = 3,
                 not_found_delays: Sequence[float] = (5.0, 15.0)) -> None:
        if not_found_attempts < 1:
            raise ValueError("not_found_attempts must be at least 1")
        if not not_found_delays or min(not_found_delays) < 0:
            raise ValueError("not_found_delays must be one or more delays, none negative")
        self.client = client
        self.not_found_attempts = not_found_attempts
        self.not_found_delays = tuple(not_found_delays)
        self._not_codes = _Remembered(_REMEMBERED)  # ids already logged as not Qualio codes
        self._missing = _Remembered(_REMEMBERED)  # codes Qualio did not have after every attempt

    def fetch(self, nc_id: str, attempt: int = 1) -> dict[str, Any]:
        if not is_event_code(nc_id):
            self._not_a_code(nc_id, "cannot be a Qualio event code")
            return {}
        try:
            event = self.client.fetch_event(nc_id)
        except QualioAuthError as exc:
            raise self._auth_fault(exc) from None
        except QualioError as exc:
            if exc.status == 404:
                return self._not_found(nc_id, attempt)
            if exc.status == 400:
                self._not_a_code(nc_id, f"Qualio calls it malformed: {exc.message}")
                return {}
            if exc.retryable:
                throttled = exc.status == 429
                raise RetryLater(f"Qualio: {exc.message}", exc.retry_after, count_attempt=not throttled) from None
            raise Permanent(f"Qualio refused ({exc.status}): {exc.message}", step="enrich") from None
        self._missing.discard(nc_id)
        record = nc_record_from_event(event)
        return {k: v for k, v in record.items() if v is not None}

    def _not_found(self, nc_id: str, attempt: int) -> dict[str, Any]:
        attempt = max(1, attempt)
        if attempt < self.not_found_attempts and nc_id not in self._missing:
            delay = self.not_found_delays[min(attempt, len(self.not_found_delays)) - 1]
            raise RetryLater(f"Qualio has no event {nc_id} (yet): attempt {attempt} of {self.not_found_attempts}",
                             delay=delay, count_attempt=True)
        self._missing.add(nc_id)
        log.warning("Qualio has no event %s (404): synced from the webhook payload alone", nc_id,
                    extra={"nc_id": nc_id, "attempt": attempt})
        return {}

    def _not_a_code(self, nc_id: str, why: str) -> None:
        if self._not_codes.add(nc_id):
            log.info("not enriched from Qualio: %s %s; synced from the webhook payload alone", nc_id, why,
                     extra={"nc_id": nc_id})

    @staticmethod
    def _auth_fault(exc: QualioAuthError) -> InstallationFault:
        return InstallationFault(f"Qualio refused the API key ({exc.status}): {exc.message}")


class _Remembered:
    """A thread-safe set of at most ``size`` strings; the oldest added is forgotten first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, item: str) -> bool:
        """Remember ``item``; True if it was not remembered already."""
        with self._lock:
            if item in self._items:
                return False
            self._items[item] = None
            if len(self._items) > self._size:
                self._items.popitem(last=False)
            return True

    def discard(self, item: str) -> None:
        with self._lock:
            self._items.pop(item, None)

    def __contains__(self, item: str) -> bool:
        with self._lock:
            return item in self._items
