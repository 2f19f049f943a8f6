"""The Qualio stand-in's state: events, templates, the per-key rate limit, faults and the request log.

Shapes follow Qualio's OpenAPI description (tests/specs/qualio-openapi.json): ``event`` (summaries),
``eventDetailed`` (the detail, with empty steps), ``eventTemplateResp`` items, ``eventQueryResponse``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

STATUSES = ("open", "closed", "imported", "rejected", "cancelled")
SUMMARY_KEYS = ("code", "title", "description", "status", "url", "owner_user_id", "created_at", "due_at",
                "modified_at", "closed_at")
DEFAULT_TEMPLATES = (("NCR", "Non Compliance", "c3e000df-4e7e-4916-b5dc-b236a83b3fe5"),
                     ("CAPA", "Corrective and Preventive Action", "5b7d1c2e-8f3a-4d6b-9e0f-1a2b3c4d5e6f"))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class RequestRecord:
    time: float  # epoch seconds
    kind: str  # "templates", "list", "detail", "other"
    status: int
    query: dict[str, str] = field(default_factory=dict)


class QualioState:
    """Thread-safe. ``limit_per_minute``: a sliding 60 s window per API key, 429 beyond (like Qualio's 200).
    ``order``: "created" (list rows in creation order) or "modified" (newest change first: every change moves
    a row to the top, the hardest case for offset paging). ``on_list`` callbacks run before each list answer
    with the number of list requests so far (tests change the set mid-sweep with them)."""

    def __init__(self, api_key: str = "qualio-sandbox-key", limit_per_minute: int | None = 200,
                 order: str = "created", templates: Iterable[tuple[str, str, str]] = DEFAULT_TEMPLATES,
                 clock: Callable[[], float] = time.time) -> None:
        if order not in ("created", "modified"):
            raise ValueError("order must be 'created' or 'modified'")
        self.api_key = api_key
        self.limit_per_minute = limit_per_minute
        self.order = order
        self.clock = clock
        self.lock = threading.RLock()
        self.templates = [{"prefix": p, "title": t, "status": "effective", "event_template_matrix_id": i,
                           "url": f"https://app.qualio.com/quality-events/templates/{n + 1}"}
                          for n, (p, t, i) in enumerate(templates)]
        self.events: dict[str, dict[str, Any]] = {}
        self.template_of: dict[str, str] = {}
        self.log: list[RequestRecord] = []
        self.on_list: list[Callable[[QualioState, int], None]] = []
        self.throttle_next = 0  # answer the next N API requests 429, whatever the window
        self._window: deque[float] = deque()
        self._numbers: dict[str, int] = {}
        self._lists = 0

    # -- the data ---------------------------------------------------------------------------------

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def add_event(self, prefix: str = "NCR", status: str = "open", title: str | None = None,
                  at: datetime | None = None, code: str | None = None, **extra: Any) -> dict[str, Any]:
        """A new event of the template with ``prefix`` (code PREFIX-n, or ``code``), created and modified ``at``
        (now)."""
        with self.lock:
            template = next(t for t in self.templates if t["prefix"] == prefix)
            number = self._numbers[prefix] = self._numbers.get(prefix, 0) + 1
            code, moment = code or f"{prefix}-{number}", iso(at or self.now())
            self.events[code] = {
                "code": code, "title": title or f"{template['title']} {number}", "description": "",
                "status": status, "url": f"https://app.qualio.com/quality-events/events/{100000 + len(self.events)}",
                "owner_user_id": 1, "created_at": moment, "due_at": iso((at or self.now()) + timedelta(days=30)),
                "modified_at": moment, "closed_at": moment if status == "closed" else None, "risk": None,
                "escalated_from": [], "escalated_to": [], "tag_ids": [], "steps": [], **extra}
            self.template_of[code] = template["event_template_matrix_id"]
            return dict(self.events[code])

    def change(self, code: str, at: datetime | None = None, **values: Any) -> dict[str, Any]:
        """Change an event (title, status, ...); its ``modified_at`` becomes ``at`` (now)."""
        with self.lock:
            event = self.events[code]
            event.update(values)
            event["modified_at"] = iso(at or self.now())
            if values.get("status") == "closed" and not event.get("closed_at"):
                event["closed_at"] = event["modified_at"]
            if self.order == "modified":  # re-insert: dict order is the list order
                self.events[code] = self.events.pop(code)
            return dict(event)

    def delete(self, code: str) -> None:
        with self.lock:
            self.events.pop(code, None)

    # -- the API (called by the HTTP layer) -----------------------------------------------------------

    def admit(self, kind: str, key: str | None, query: dict[str, str]) -> int | None:
        """Log the request and answer 403/429 when due (the status), else None."""
        with self.lock:
            now = self.clock()
            status = None
            if key != self.api_key:
                status = 403
            elif self.throttle_next > 0:
                self.throttle_next -= 1
                status = 429
            elif self.limit_per_minute is not None:
                while self._window and now - self._window[0] >= 60:
                    self._window.popleft()
                if len(self._window) >= self.limit_per_minute:
                    status = 429
                else:
                    self._window.append(now)
            self.log.append(RequestRecord(now, kind, status or 200, dict(query)))
            return status

    def template_list(self) -> dict[str, Any]:
        with self.lock:
            return {"items": [dict(t) for t in self.templates], "total": len(self.templates)}

    def query(self, status: str, offset: int, limit: int, template_id: str | None) -> dict[str, Any]:
        with self.lock:
            self._lists += 1
            for hook in list(self.on_list):
                hook(self, self._lists)
            rows = [e for c, e in self.events.items() if e["status"] == status
                    and (template_id is None or self.template_of.get(c) == template_id)]
            if self.order == "modified":
                rows.reverse()
            page = rows[offset:offset + limit]
            return {"items": [{k: e[k] for k in SUMMARY_KEYS} for e in page], "total": len(rows)}

    def detail(self, code: str) -> dict[str, Any] | None:
        with self.lock:
            event = self.events.get(code)
            return dict(event) if event is not None else None

    # -- figures ----------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self.lock:
            by_kind: dict[str, int] = {}
            for record in self.log:
                by_kind[record.kind] = by_kind.get(record.kind, 0) + 1
            return {"requests": len(self.log), "byKind": by_kind,
                    "throttled": sum(1 for r in self.log if r.status == 429),
                    "times": [r.time for r in self.log if r.status != 403],
                    "peakPerMinute": peak_per_minute([r.time for r in self.log if r.status == 200])}


def peak_per_minute(times: list[float]) -> int:
    """The most requests inside any sliding 60 s window [t, t + 60)."""
    ordered, best, start = sorted(times), 0, 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= 60:
            start += 1
        best = max(best, end - start + 1)
    return best
