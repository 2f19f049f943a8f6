"""The fault injector: the current fault settings (queued rules, latency rules, the budget), changed through
`SandboxState` or POST /_sandbox/faults, and the `Decision` for each arriving /rest/ request."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from connector.sandbox.budget import WRITE_METHODS, Budget, Quota, parse_budget
from connector.sandbox.errors import JsonDict
from connector.sandbox.faults import (
    FAULT_KINDS,
    Fault,
    FaultRule,
    LatencyRule,
    parse_fault_rule,
    parse_latency,
    parse_seconds,
)
from connector.sandbox.requestlog import RequestRecord


@dataclass(frozen=True)
class Decision:
    """What the middleware must do with a request: wait `latency`, then apply `fault` (if any).

    `quota`: set when the rate-limit budget counted the request (its answer carries X-RateLimit-*).
    """

    record: RequestRecord
    latency: float
    fault: Fault | None
    quota: Quota | None = None


@dataclass(frozen=True)
class FaultSettings:
    """A validated /_sandbox/faults document; None (and `replace_budget` False) leaves a setting as it is."""

    clear: bool = False
    rules: list[FaultRule] = field(default_factory=list)
    latency: list[LatencyRule] | None = None
    replace_budget: bool = False
    budget: Budget | None = None
    search_lag: float | None = None


def parse_fault_settings(spec: Any) -> FaultSettings:
    """Validate a /_sandbox/faults JSON document as a whole (ValueError names the first problem)."""
    if not isinstance(spec, dict):
        raise ValueError("expected a JSON object")
    unknown = set(spec) - {"clear", "latency", "faults", "budget", "searchLag"}
    if unknown:
        raise ValueError(f"unknown keys: {sorted(unknown)}")
    raw_rules = spec.get("faults", [])
    if not isinstance(raw_rules, list):
        raise ValueError("faults must be a list")
    rules = [parse_fault_rule(item) for item in raw_rules]
    latency = parse_latency(spec["latency"]) if "latency" in spec else None
    budget = parse_budget(spec["budget"]) if "budget" in spec else None
    lag = parse_seconds(spec["searchLag"]) if "searchLag" in spec else None
    return FaultSettings(bool(spec.get("clear")), rules, latency, "budget" in spec, budget, lag)


class FaultInjector:
    """Queued fault rules (first match wins), latency rules and the budget, and the faults served so far."""

    def __init__(self, latency: float, lock: threading.RLock) -> None:
        self.initial_latency = latency
        self.lock = lock
        self.reset()

    def reset(self) -> None:
        """No queued faults or budget, the start-up latency, nothing served."""
        with self.lock:
            self.served: Counter[str] = Counter()
            self._rules: list[FaultRule] = []
            self._latency = parse_latency(self.initial_latency)
            self._budget: Budget | None = None

    def add_fault(self, kind: str, count: int | None = 1, *, retry_after: int | None = 1, seconds: float = 30.0,
                  method: str = "*", path: str = "*") -> None:
        """Queue a fault for the next `count` matching /rest/ requests (kinds: see FAULT_KINDS)."""
        rule = parse_fault_rule({"kind": kind, "count": count, "retryAfter": retry_after, "seconds": seconds,
                                 "method": method, "path": path})
        with self.lock:
            self._rules.append(rule)

    def set_latency(self, seconds: float, *, method: str = "*", path: str = "*") -> None:
        """Delay every matching /rest/ request by `seconds` (replaces earlier latency rules; 0 clears)."""
        rules = parse_latency({"seconds": seconds, "method": method, "path": path}) if seconds else []
        with self.lock:
            self._latency = rules

    def set_budget(self, limit: int, window: float, *, methods: Sequence[str] = WRITE_METHODS,
                   per_issue: bool = False) -> None:
        """Allow at most `limit` `methods` requests per sliding `window` seconds; beyond that answer 429."""
        budget = parse_budget({"limit": limit, "window": window, "methods": list(methods), "perIssue": per_issue})
        with self.lock:
            self._budget = budget

    def clear_faults(self) -> None:
        """Remove queued faults, latency rules and the budget."""
        with self.lock:
            self._rules, self._latency, self._budget = [], [], None

    def apply(self, settings: FaultSettings) -> None:
        """Apply validated /_sandbox/faults settings (the search lag is the search index's)."""
        with self.lock:
            if settings.clear:
                self.clear_faults()
            self._rules.extend(settings.rules)
            if settings.latency is not None:
                self._latency = settings.latency
            if settings.replace_budget:
                self._budget = settings.budget

    def to_json(self) -> JsonDict:
        with self.lock:
            return {"faults": [r.to_json() for r in self._rules], "latency": [r.to_json() for r in self._latency],
                    "budget": self._budget.to_json() if self._budget else None}

    def served_json(self) -> JsonDict:
        """Faults served so far, by kind ("budget": 429s of the budget), and their total."""
        with self.lock:
            return {"faultsServed": {kind: self.served[kind] for kind in (*FAULT_KINDS, "budget")},
                    "faultsServedTotal": sum(self.served.values())}

    def decide(self, record: RequestRecord, now: float) -> Decision:
        """The latency and fault for a logged request (consuming one use of a fault rule)."""
        with self.lock:
            method, path = record.method, record.path
            latency = sum(rule.seconds for rule in self._latency if rule.matches(method, path))
            fault = self._take_fault(method, path)  # a request a fault rule answers is not counted
            budget = self._budget if fault is None else None
            quota = budget.admit(method, path, now) if budget is not None else None
            if budget is not None and quota is not None and quota.retry_after is not None:
                fault = budget.refusal(quota)
            if fault is not None:
                record.fault = fault.kind
                self.served[fault.kind] += 1
            return Decision(record, latency, fault, quota)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        rule = next((r for r in self._rules if r.matches(method, path)), None)
        if rule is None:
            return None
        if rule.count is not None:
            rule.count -= 1
            if rule.count <= 0:
                self._rules.remove(rule)
        return Fault(rule.kind, rule.retry_after, rule.seconds)
