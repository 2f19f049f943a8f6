"""The rate-limit budget: at most `limit` writes per sliding window (per tenant, or per issue), answered
like Jira Cloud with X-RateLimit-* headers and, once spent, a 429 with Retry-After."""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from connector.sandbox.errors import JsonDict
from connector.sandbox.faults import Fault, parse_seconds

WRITE_METHODS = ("POST", "PUT", "DELETE")
NEAR_LIMIT_SHARE = 0.2  # Jira Cloud sends X-RateLimit-NearLimit: true once less than this share is left


@dataclass(frozen=True)
class Quota:
    """Where a request the budget counts left its window (Jira Cloud's X-RateLimit-* answer headers)."""

    limit: int
    remaining: int  # slots left in the window after this request; 0 for a refused one
    retry_after: int | None = None  # refused: whole seconds until the window frees a slot

    @property
    def near_limit(self) -> bool:
        """Jira Cloud's X-RateLimit-NearLimit: less than 20% of the budget is left."""
        return self.remaining < self.limit * NEAR_LIMIT_SHARE

    def headers(self) -> list[tuple[str, str]]:
        """X-RateLimit-Limit and -Remaining, plus X-RateLimit-NearLimit: true when near the limit."""
        found = [("X-RateLimit-Limit", str(self.limit)), ("X-RateLimit-Remaining", str(self.remaining))]
        return [*found, ("X-RateLimit-NearLimit", "true")] if self.near_limit else found


@dataclass
class Budget:
    """At most `limit` requests with one of `methods` per sliding `window` seconds (per issue if `per_issue`)."""

    limit: int
    window: float
    methods: tuple[str, ...] = WRITE_METHODS
    per_issue: bool = False
    hits: dict[str, deque[float]] = field(default_factory=dict)

    def admit(self, method: str, path: str, now: float) -> Quota | None:
        """None when the budget does not count this request; else its quota, refused if `retry_after` is set."""
        bucket_key = self._bucket(method, path)
        if bucket_key is None:
            return None
        bucket = self.hits.setdefault(bucket_key, deque())
        while bucket and bucket[0] <= now - self.window:
            bucket.popleft()
        if len(bucket) < self.limit:
            bucket.append(now)
            return Quota(self.limit, self.limit - len(bucket))
        return Quota(self.limit, 0, max(1, math.ceil(bucket[0] + self.window - now)))

    def refusal(self, quota: Quota) -> Fault:
        """The 429 for a refused request, with RateLimit-Reason as Jira Cloud names these limits."""
        reason = "jira-per-issue-on-write" if self.per_issue else "jira-burst-based"
        return Fault("budget", quota.retry_after, limit=self.limit, window=self.window, reason=reason)

    def _bucket(self, method: str, path: str) -> str | None:
        if method not in self.methods or not path.startswith("/rest/api/") or "/search" in path:
            return None  # POST /search is a read
        if not self.per_issue:
            return ""
        match = re.match(r"/rest/api/[^/]+/issue/([^/]+)", path)
        return match.group(1).upper() if match else None

    def to_json(self) -> JsonDict:
        return {"limit": self.limit, "window": self.window, "methods": list(self.methods),
                "perIssue": self.per_issue}


def parse_budget(spec: Any) -> Budget | None:
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) - {"limit", "window", "methods", "perIssue"}:
        raise ValueError("budget must be {limit, window, methods?, perIssue?} or null")
    limit = spec.get("limit")
    if not isinstance(limit, int) or limit < 1:
        raise ValueError("budget.limit must be a positive integer")
    methods = tuple(str(m).upper() for m in spec.get("methods", WRITE_METHODS))
    return Budget(limit, parse_seconds(spec.get("window", 60)) or 1.0, methods, bool(spec.get("perIssue", False)))
