"""The mapping's view of Jira (field ids and types, users), looked up on need and cached for a while."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from connector.jira.gateway import FieldInfo

# How long a look-up is trusted: a field added in Jira, or an account deactivated, is seen this soon.
DEFAULT_TTL = 3600.0


class JiraLookups(Protocol):
    """The two Jira reads the resolver makes (a JiraGateway has them)."""

    def fields(self) -> list[FieldInfo]: ...

    def user_ref(self, ref: str) -> dict[str, str] | None: ...


class CachedResolver:
    """Resolves custom fields by id or name (Jira's field list) and users by e-mail or id.

    Only answers are cached, each for ``ttl`` seconds (by ``clock``): a look-up that failed
    (JiraError) is asked again on the next call, and "no such user" (None) is an answer like any
    other. The gateway is never called under the resolver's lock.
    """

    def __init__(self, gateway: JiraLookups, ttl: float = DEFAULT_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._gateway = gateway
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._fields: tuple[float, dict[str, FieldInfo]] | None = None  # (fetched at, id or casefolded name -> info)
        self._users: dict[str, tuple[float, dict[str, str] | None]] = {}  # ref -> (fetched at, answer)

    def _fresh(self, fetched_at: float) -> bool:
        return self._clock() - fetched_at < self._ttl

    def field(self, name_or_id: str) -> FieldInfo | None:
        with self._lock:
            cached = self._fields
        if cached is None or not self._fresh(cached[0]):
            fetched_at = self._clock()
            found: dict[str, FieldInfo] = {}
            for info in self._gateway.fields():  # a JiraError leaves the cache as it was
                found.setdefault(info.id, info)
                found.setdefault(info.name.casefold(), info)
            cached = (fetched_at, found)
            with self._lock:
                self._fields = cached
        by_key = cached[1]
        return by_key.get(name_or_id) or by_key.get(name_or_id.casefold())

    def user(self, ref: str) -> dict[str, str] | None:
        """The user field value for an e-mail or id (see ``JiraGateway.user_ref``), or None."""
        with self._lock:
            cached = self._users.get(ref)
        if cached is not None and self._fresh(cached[0]):
            return dict(cached[1]) if cached[1] is not None else None
        fetched_at = self._clock()
        answer = self._gateway.user_ref(ref)  # a JiraError caches nothing
        with self._lock:
            self._users[ref] = (fetched_at, dict(answer) if answer is not None else None)
        return answer
