"""Apply one NC's planned sync to Jira, step by step, and record it.

The steps: create or adopt the issue (connector.sync.ensure), edit the fields, the remote link, the
transition (connector.sync.status) and the comments (connector.sync.comments). Each records what it
applied as it applied it, and one that Jira refuses for good does not stop the others: the sync ends
in a dead letter naming the failed step and what was applied. The NC's merged state is recorded
before any Jira call, so an older delivery never overwrites a newer value, also after a dead letter.
An edit goes before the transition, except on the way out of a done status: a closed issue's screen
may refuse edits until it is reopened.

Every Jira call is made through `Syncer._call` (connector.jira.throttle): no call during Jira's
Retry-After, and one call at a time across all workers while Jira signals rate-limit pressure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Engine

from connector.jira.gateway import FieldInfo, JiraError, JiraGateway
from connector.jira.resolver import CachedResolver
from connector.jira.throttle import JiraThrottle, LockBusy, Paused
from connector.jira.workflow import StatusRef, StatusTarget
from connector.mapping.render import marker_label
from connector.mapping.rules import Mapping, MappingError
from connector.models import DeliveryStatus
from connector.sync import links, queue
from connector.sync.comments import post_comments
from connector.sync.ensure import ensure_issue, relocate
from connector.sync.errors import InstallationFault, LeaseLost, Permanent, RetryLater
from connector.sync.links import Link
from connector.sync.plan import Delivered, SyncPlan, coalesce, digest, merge_record, parse_payload, plan_sync
from connector.sync.queue import Claim, finish
from connector.sync.status import follow_status
from connector.sync.steps import IssueGone, SyncRun, run_step

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncResult:
    jira_key: str | None
    created: bool
    writes: int
    comments: int


class Enricher(Protocol):
    """Optional: the NC's current record from Qualio (see connector.qualio.enrich)."""

    def fetch(self, nc_id: str, attempt: int = 1) -> dict[str, Any]: ...


class Syncer:
    def __init__(self, engine: Engine, gateway: JiraGateway, mapping: Mapping, search_lag: float,
                 enricher: Enricher | None = None, lease_seconds: float = 120.0,
                 throttle: JiraThrottle | None = None) -> None:
        self.engine = engine
        self.gateway = gateway
        self.mapping = mapping
        self.search_lag = search_lag  # also how long a write whose answer we missed may take to show
        self.enricher = enricher
        self.lease_seconds = lease_seconds
        self.throttle = throttle or JiraThrottle(engine)
        self.resolver = CachedResolver(_ThrottledLookups(self._call))
        self._claim: Claim | None = None  # the claim being synced (one at a time per worker)

    def close(self) -> None:
        """Let go of what careful mode holds (the PostgreSQL lock's connection, the SQLite lock file)."""
        self.throttle.close()

    def sync(self, claim: Claim) -> SyncResult:
        """Sync the claimed NC; raises RetryLater, Permanent, LeaseLost or InstallationFault (JiraError and
        MappingError are translated)."""
        self._claim = claim
        try:
            return self._sync(claim)
        except JiraError as exc:
            self._installation_fault(exc)
            if not exc.retryable:
                raise Permanent(f"Jira refused ({exc.status}): {exc.message}") from None
            delay = exc.retry_after  # already shared with every worker by the throttle
            if exc.outcome_unknown:
                # The write may still land: retrying at once could race it (an old edit landing
                # after a newer one, a comment posted twice). Give it the time Jira takes to show it.
                delay = max(delay or 0.0, self.search_lag)
            # Jira asking everyone to slow down is no fault of this NC's: it costs no attempt.
            pressure = exc.status == 429 or (exc.status == 503 and exc.retry_after is not None)
            raise RetryLater(f"Jira: {exc.message}", delay, count_attempt=not pressure) from None
        except MappingError as exc:
            # A configuration fault: parked at once with the mapping's own words, the other NCs flow on.
            raise Permanent(f"the mapping cannot render this NC: {exc}", step="mapping") from None
        finally:
            self._claim = None

    def _installation_fault(self, exc: JiraError) -> None:
        """A 401, or a 403 with the project's permissions gone, is the installation's fault, not the NC's."""
        if exc.status == 401:
            raise InstallationFault(f"Jira refused the connector's credentials (401): {exc.message}") from None
        if exc.status != 403:
            return
        try:
            with self._call() as jira:
                missing = jira.permission_problems(self.mapping.project)
        except JiraError as probe:
            if probe.status not in (401, 403):
                raise RetryLater(f"Jira: {probe.message}", probe.retry_after) from None
            missing = [probe.message]
        if missing:
            raise InstallationFault(f"Jira refused (403) and the connector's permissions are gone: "
                                    f"{'; '.join(missing)}") from None

    @contextmanager
    def _call(self) -> Iterator[JiraGateway]:
        """The gateway for ONE Jira call: `with self._call() as jira: jira.get_issue(key)`.

        Not during Jira's Retry-After (RetryLater, not counted as an attempt); only while our claim still
        holds (LeaseLost). In careful mode the block runs under the lock every worker
        shares, so it must make one call and nothing slow besides.
        """
        # Renewed before every call, reads too: a slow read (a careful-mode wait, a lag) must not outlive it.
        if self._claim is not None and not queue.renew(self.engine, self._claim, self.lease_seconds):
            raise LeaseLost(f"lost the claim on {self._claim.nc_id} to another worker")
        try:
            with self.throttle.call(self.gateway) as jira:
                yield jira
        except Paused as exc:
            raise RetryLater("Jira asked every client to wait (Retry-After)", delay=exc.wait,
                             count_attempt=False) from None
        except LockBusy as exc:
            raise RetryLater(str(exc), delay=1.0, count_attempt=False) from None

    def _sync(self, claim: Claim) -> SyncResult:
        link = links.reserve(self.engine, claim.nc_id)
        deliveries = [Delivered(d.id, d.event_type, d.event_timestamp, parse_payload(d.payload))
                      for d in claim.deliveries]
        snapshot = coalesce(link.nc_state, link.field_times, link.last_event_at, deliveries)
        if not snapshot.applied:  # only unknown event types: recorded and ignored, never retried
            with self.engine.begin() as conn:
                finish(conn, claim, DeliveryStatus.IGNORED, link.jira_key)
            return SyncResult(link.jira_key, False, 0, 0)
        if self.enricher is not None:  # fills what the deliveries left out, never overwrites newer values
            merge_record(snapshot, self.enricher.fetch(claim.nc_id, attempt=claim.attempts + 1))
        snapshot.state["ncId"] = claim.nc_id
        plan = plan_sync(self.mapping, snapshot, link.fields_hash, link.remote_link_hash,
                         links.posted_comment_keys(self.engine, claim.nc_id), self.resolver)
        links.record_state(self.engine, claim.nc_id, snapshot.state, snapshot.set_at, snapshot.newest, claim)

        run = SyncRun(self.engine, self._call, claim, {"nc_id": claim.nc_id, "delivery_ids": claim.ids})
        label = marker_label(self.mapping, claim.nc_id)
        created = ensure_issue(run, link, label, plan.create_fields, self.search_lag)
        if created:
            links.record_fields(self.engine, claim.nc_id, plan.fields_hash, claim)  # a create sends every field
        try:
            self._steps(run, plan, None if created else link)
        except IssueGone:
            relocate(run, label)
            try:
                self._steps(run, plan, links.get(self.engine, claim.nc_id))
            except IssueGone as again:
                raise Permanent(f"Jira issue {again.key} answered 404 right after {claim.nc_id} was relinked to it",
                                step="issue") from None
        failure = run.outcome()
        if failure is not None:
            raise failure
        with self.engine.begin() as conn:
            if finish(conn, claim, DeliveryStatus.DONE, run.key, snapshot.applied) < len(snapshot.applied):
                # Another worker took the NC over and may have recorded newer state: keep ours out.
                raise LeaseLost(f"lost the claim on {claim.nc_id} before recording the sync")
            if snapshot.ignored:
                finish(conn, claim, DeliveryStatus.IGNORED, run.key, snapshot.ignored)
        return SyncResult(run.key, created, run.writes, run.comments)

    def _steps(self, run: SyncRun, plan: SyncPlan, link: Link | None) -> None:
        """Edit, remote link, transition and comments on `run.key`. `link` is None right after a create
        (Jira has every field, and no status is known yet)."""
        known = link.jira_status if link else None
        edit = link is not None and plan.fields_changed
        edit_last = edit and reopening(known, plan.target_status)
        if edit and not edit_last:
            run_step(run, "edit", lambda: self._edit(run, plan))
        if plan.remote_link is not None and plan.link_hash is not None and (link is None or plan.link_changed):
            run_step(run, "remote link", lambda: self._remote_link(run, plan))
        target = plan.target_status
        if target is not None:
            run_step(run, "transition", lambda: follow_status(run, target, known, plan.create_fields))
        if edit_last:
            run_step(run, "edit", lambda: self._edit(run, plan))
        run_step(run, "comment", lambda: post_comments(run, plan.comments, self.search_lag))

    def _edit(self, run: SyncRun, plan: SyncPlan) -> None:
        """The changed fields; those Jira refuses by name are left out and the rest applied."""
        fields = dict(plan.edit_fields)
        try:
            with self._call() as jira:
                jira.update_issue(run.key, fields)
        except JiraError as exc:
            accepted = {k: v for k, v in fields.items() if k not in exc.field_errors}
            if exc.retryable or exc.status != 400 or not exc.field_errors or accepted == fields:
                raise
            refused = ", ".join(f"{name}: {text}" for name, text in exc.field_errors.items())
            run.failed("edit", f"Jira refused field(s) {refused}")
            if not accepted:
                return
            with self._call() as jira:
                jira.update_issue(run.key, accepted)
            fields = accepted
        links.record_fields(self.engine, run.nc_id, digest(fields), run.claim)
        run.wrote("edit")

    def _remote_link(self, run: SyncRun, plan: SyncPlan) -> None:
        assert plan.remote_link is not None and plan.link_hash is not None
        with self._call() as jira:
            jira.upsert_remote_link(run.key, plan.remote_link)
        links.record_remote_link(self.engine, run.nc_id, plan.link_hash, run.claim)
        run.wrote("remote link")


def reopening(known: StatusRef | None, target: StatusTarget | None) -> bool:
    """On the way out of a done status: transition first, as a closed issue may refuse edits."""
    return known is not None and known.category == "done" and target is not None and not target.matches(known) \
        and target.category != "done"


class _ThrottledLookups:
    """The resolver's Jira look-ups (made on a cache miss), each through the throttle like any other call."""

    def __init__(self, call: Callable[[], AbstractContextManager[JiraGateway]]) -> None:
        self._call = call

    def fields(self) -> list[FieldInfo]:
        with self._call() as jira:
            return jira.fields()

    def user_ref(self, ref: str) -> dict[str, str] | None:
        with self._call() as jira:
            return jira.user_ref(ref)
