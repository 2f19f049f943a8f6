"""Injected faults: the rules queued through the control API (429, 503, dropped connections, slow answers),
latency rules, and the fault chosen for one request.

The rate-limit budget is in `connector.sandbox.budget`; `connector.sandbox.injector` holds the current
settings and decides each request's fault. The HTTP side (answers, dropped connections) is
`connector.sandbox.middleware`.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from connector.sandbox.errors import JsonDict

FAULT_KINDS = ("rate_limit", "unavailable", "drop", "drop_after", "slow", "unauthorized")
FAULT_ALIASES = {"429": "rate_limit", "503": "unavailable", "401": "unauthorized"}


@dataclass
class FaultRule:
    """Answer the next `count` matching requests (None: all of them) with fault `kind`."""

    kind: str
    count: int | None = 1
    retry_after: int | None = 1
    seconds: float = 30.0
    method: str = "*"
    path: str = "*"

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and fnmatch.fnmatchcase(path, self.path)

    def to_json(self) -> JsonDict:
        return {"kind": self.kind, "count": self.count, "retryAfter": self.retry_after,
                "seconds": self.seconds, "method": self.method, "path": self.path}


@dataclass
class LatencyRule:
    seconds: float
    method: str = "*"
    path: str = "*"

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and fnmatch.fnmatchcase(path, self.path)

    def to_json(self) -> JsonDict:
        return {"seconds": self.seconds, "method": self.method, "path": self.path}


@dataclass(frozen=True)
class Fault:
    """The fault chosen for one request."""

    kind: str  # a FAULT_KINDS entry, or "budget" (a 429 from the rate-limit budget)
    retry_after: int | None = None
    seconds: float = 0.0
    limit: int | None = None
    window: float | None = None
    reason: str = "jira-quota-tenant-based"

    @property
    def status(self) -> int | None:
        return {"rate_limit": 429, "budget": 429, "unavailable": 503, "unauthorized": 401}.get(self.kind)


def parse_fault_rule(spec: Any) -> FaultRule:
    if not isinstance(spec, dict):
        raise ValueError("each fault must be an object")
    unknown = set(spec) - {"kind", "count", "retryAfter", "seconds", "method", "path"}
    if unknown:
        raise ValueError(f"unknown fault keys: {sorted(unknown)}")
    kind = FAULT_ALIASES.get(str(spec.get("kind")), str(spec.get("kind")))
    if kind not in FAULT_KINDS:
        raise ValueError(f"fault kind must be one of {list(FAULT_KINDS) + list(FAULT_ALIASES)}")
    count = spec.get("count", 1)
    retry_after = spec.get("retryAfter", 1)
    if count is not None and (not isinstance(count, int) or count < 1):
        raise ValueError("count must be a positive integer or null (always)")
    if retry_after is not None and (not isinstance(retry_after, int) or retry_after < 0):
        raise ValueError("retryAfter must be a whole number of seconds (Jira sends integers) or null")
    return FaultRule(kind, count, retry_after, parse_seconds(spec.get("seconds", 30.0)),
                     str(spec.get("method", "*")).upper(), str(spec.get("path", "*")))


def parse_latency(spec: Any) -> list[LatencyRule]:
    if spec is None:
        return []
    if isinstance(spec, int | float):
        return [LatencyRule(parse_seconds(spec))] if spec else []
    items = spec if isinstance(spec, list) else [spec]
    rules = []
    for item in items:
        if not isinstance(item, dict) or set(item) - {"seconds", "method", "path"}:
            raise ValueError("latency must be seconds, or {seconds, method?, path?}, or a list of those")
        rules.append(LatencyRule(parse_seconds(item.get("seconds", 0)), str(item.get("method", "*")).upper(),
                                 str(item.get("path", "*"))))
    return rules


def parse_seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"expected a non-negative number of seconds, not {value!r}")
    return float(value)
