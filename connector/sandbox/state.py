"""`SandboxState`: the Jira sandbox's whole mutable world behind one façade, thread-safe.

The state is composed of parts sharing one re-entrant lock, so the threaded werkzeug server (and tests
poking the state directly) can share it; methods hand out deep copies, never the live objects:

- `IssueStore` (issues.py): issues, with `Workflow` (workflow.py), `Comments` and `RemoteLinks`
  (comments_links.py) acting on them;
- `SearchIndex` (search.py): JQL search over the lagging index;
- `FaultInjector` (injector.py): queued faults, latency and the rate-limit budget;
- `RequestLog` (requestlog.py): every /rest/ request and the Retry-After violations among them.

The HTTP layer (routes per resource, rendering, the fault middleware) is `app.py` and the modules it names.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from connector.sandbox.budget import WRITE_METHODS
from connector.sandbox.comments_links import Comments, RemoteLinks
from connector.sandbox.config import SandboxConfig
from connector.sandbox.errors import JsonDict
from connector.sandbox.faults import parse_seconds
from connector.sandbox.fields import Catalog
from connector.sandbox.injector import Decision, FaultInjector, parse_fault_settings
from connector.sandbox.issues import Comment, Issue, IssueStore, RemoteLink
from connector.sandbox.requestlog import RequestLog, RequestRecord
from connector.sandbox.search import SearchIndex
from connector.sandbox.workflow import Workflow
from connector.sandbox.workflows import Transition

Clock = Callable[[], float]
Sleeper = Callable[[float], None]

COUNTERS = ("creates", "updates", "transitions", "comments", "remoteLinksCreated", "remoteLinksUpdated",
            "remoteLinksDeleted", "deletes", "searches")


class SandboxState:
    """The sandbox's whole mutable world, thread-safe: issues, faults, the request log and counters."""

    def __init__(self, config: SandboxConfig | None = None, *, clock: Clock = time.time,
                 sleep: Sleeper = time.sleep) -> None:
        self.config = config or SandboxConfig()
        self.catalog = Catalog(self.config)
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.RLock()
        self._counters: Counter[str] = Counter()
        self._store = IssueStore(self.config, self.catalog, clock, self._lock, self._counters)
        self._workflow = Workflow(self._store)
        self._comments = Comments(self._store)
        self._links = RemoteLinks(self._store)
        self._index = SearchIndex(self._store)
        self._faults = FaultInjector(self.config.latency, self._lock)
        self._log = RequestLog(clock, self._lock)

    # ---- lifecycle

    def reset(self) -> None:
        """Forget all issues, requests, counters and faults; back to the start-up configuration."""
        with self._lock:
            self._counters.clear()
            for part in (self._store, self._links, self._index, self._faults, self._log):
                part.reset()

    @property
    def search_lag(self) -> float:
        return self._index.lag

    @search_lag.setter
    def search_lag(self, seconds: float) -> None:
        with self._lock:
            self._index.lag = parse_seconds(seconds)

    # ---- issues, workflow, comments and remote links

    def create_issue(self, raw_fields: Any, actor: str) -> Issue:
        return self._store.create(raw_fields, actor)

    def issue(self, ref: str) -> Issue:
        return self._store.get(ref)

    def issues(self) -> list[Issue]:
        return self._store.all()

    def update_issue(self, ref: str, raw_fields: Any, raw_update: Any, actor: str) -> Issue:
        return self._store.update(ref, raw_fields, raw_update, actor)

    def delete_issue(self, ref: str) -> None:
        self._store.delete(ref)

    def move_issue(self, ref: str, new_key: str | None = None, *, project: str | None = None) -> Issue:
        """Move an issue as a person might: it gets `new_key` (or the next key in `project`), keeps its id,
        and its old key still finds it. ValueError for a bad or taken key."""
        return self._store.move(ref, new_key, project)

    def projects(self) -> list[tuple[str, str, str]]:
        """(id, key, name) of the configured project and of every project an issue was moved to."""
        return self._store.projects()

    def project(self, project_id: str) -> tuple[str, str, str]:
        return self._store.project(project_id)

    def find_project(self, ref: str) -> str | None:
        """The id of the project with id, key or name `ref` (keys and names in any case), or None."""
        return self._store.find_project(ref)

    def transitions(self, ref: str) -> tuple[Issue, list[Transition]]:
        return self._workflow.transitions(ref)

    def transition(self, ref: str, body: JsonDict, actor: str) -> Issue:
        return self._workflow.transition(ref, body, actor)

    def add_comment(self, ref: str, body: Any, actor: str, visibility: Any = None,
                    properties: Any = None) -> tuple[Issue, Comment]:
        return self._comments.add(ref, body, actor, visibility, properties)

    def upsert_remote_link(self, ref: str, payload: Any) -> tuple[Issue, RemoteLink, bool]:
        """Add a remote link, or update the one with the same globalId; True when it was added."""
        return self._links.upsert(ref, payload)

    def remote_link(self, ref: str, link_id: str) -> tuple[Issue, RemoteLink]:
        return self._links.get(ref, link_id)

    def delete_remote_link(self, ref: str, link_id: str) -> None:
        self._links.delete(ref, link_id)

    # ---- search

    def search(self, jql: str, actor: str, *, reconcile: Iterable[str] = (), strict: bool = True,
               bounded: bool = False) -> list[Issue]:
        """Issues matching `jql` as the (lagging) index sees them; `reconcile` ids are read fresh."""
        return self._index.search(jql, actor, reconcile=reconcile, strict=strict, bounded=bounded)

    # ---- faults

    def add_fault(self, kind: str, count: int | None = 1, *, retry_after: int | None = 1, seconds: float = 30.0,
                  method: str = "*", path: str = "*") -> None:
        """Queue a fault for the next `count` matching /rest/ requests (kinds: see FAULT_KINDS)."""
        self._faults.add_fault(kind, count, retry_after=retry_after, seconds=seconds, method=method, path=path)

    def set_latency(self, seconds: float, *, method: str = "*", path: str = "*") -> None:
        """Delay every matching /rest/ request by `seconds` (replaces earlier latency rules; 0 clears)."""
        self._faults.set_latency(seconds, method=method, path=path)

    def set_budget(self, limit: int, window: float, *, methods: Sequence[str] = WRITE_METHODS,
                   per_issue: bool = False) -> None:
        """Allow at most `limit` `methods` requests per sliding `window` seconds; beyond that answer 429."""
        self._faults.set_budget(limit, window, methods=methods, per_issue=per_issue)

    def clear_faults(self) -> None:
        """Remove queued faults, latency rules and the budget (search lag stays)."""
        self._faults.clear_faults()

    def configure_faults(self, spec: Any) -> JsonDict:
        """Apply a /_sandbox/faults JSON document (validated as a whole first); return the new settings."""
        settings = parse_fault_settings(spec)
        with self._lock:
            self._faults.apply(settings)
            if settings.search_lag is not None:
                self._index.lag = settings.search_lag
            return self.faults()

    def faults(self) -> JsonDict:
        with self._lock:
            return {**self._faults.to_json(), "searchLag": self._index.lag}

    # ---- the request log

    def begin_request(self, method: str, path: str, query: str = "", body: Any = None) -> Decision:
        """Log a request's arrival and decide its latency and fault (consuming one use of a fault rule)."""
        with self._lock:
            now = self.clock()
            return self._faults.decide(self._log.arrive(method, path, query, now, body), now)

    def end_request(self, decision: Decision, status: int | None, *, delivered: bool = True,
                    retry_after: int | None = None) -> None:
        self._log.answered(decision.record, status, delivered=delivered, retry_after=retry_after)

    def requests(self) -> list[RequestRecord]:
        return self._log.requests()

    def retry_after_violations(self, *, same_path: bool = False, grace: float = 0.0) -> list[JsonDict]:
        """Requests that arrived after a Retry-After answer was sent but before it had elapsed.

        Global by default (Jira's limits are per tenant); `same_path` only counts repeats of the limited
        method and path. `grace`: requests arriving within that many seconds of the answer count as
        already in flight (another client of the same tenant could not have known yet).
        """
        return self._log.retry_after_violations(same_path=same_path, grace=grace)

    # ---- counters

    def stats(self) -> JsonDict:
        with self._lock:
            stats: JsonDict = {name: self._counters[name] for name in COUNTERS}
            stats.update(issues=self._store.count(), requests=self._log.seq, **self._faults.served_json())
        stats["retryAfterViolations"] = len(self.retry_after_violations())
        return stats
