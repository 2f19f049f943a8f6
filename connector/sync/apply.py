"""Apply one NC's planned sync to Jira and record it: ensure the issue, edit, transition, comment, link.

Exactly one issue per NC: the link row is reserved and marked `creating` (committed) before the
create call. A later attempt that finds `creating` searches Jira for the marker label first; when
the search finds nothing it waits until Jira's search lag (jira_search_lag) has passed since the
create was sent before creating again, so index lag cannot produce a second issue.

Every Jira call is made through `Syncer._call` (connector.jira.throttle): no call during Jira's
Retry-After, and one call at a time across all workers while Jira signals rate-limit pressure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import Engine

from connector.clock import utcnow
from connector.jira.gateway import FieldInfo, JiraError, JiraGateway
from connector.jira.resolver import CachedResolver
from connector.jira.throttle import JiraThrottle, LockBusy, Paused
from connector.mapping.render import marker_label
from connector.mapping.rules import Mapping
from connector.models import DeliveryStatus
from connector.sync import links, queue
from connector.sync.errors import LeaseLost, Permanent, RetryLater
from connector.sync.links import Link
from connector.sync.plan import Delivered, PlannedComment, SyncPlan, coalesce, comment_marker, parse_payload, plan_sync
from connector.sync.queue import Claim, finish

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncResult:
    jira_key: str | None
    created: bool
    writes: int
    comments: int


class Enricher(Protocol):
    """Optional: the NC's current record from Qualio (see connector.qualio.enrich)."""

    def fetch(self, nc_id: str) -> dict[str, Any]: ...


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
        """Sync the claimed NC; raises RetryLater, Permanent or LeaseLost (JiraError is translated)."""
        self._claim = claim
        try:
            return self._sync(claim)
        except JiraError as exc:
            if not exc.retryable:
                raise Permanent(f"Jira refused ({exc.status}): {exc.message}") from None
            delay = exc.retry_after  # already shared with every worker by the throttle
            if exc.outcome_unknown:
                # The write may still land: retrying at once could race it (an old edit landing
                # after a newer one, a comment posted twice). Give it the time Jira takes to show it.
                delay = max(delay or 0.0, self.search_lag)
            raise RetryLater(f"Jira: {exc.message}", delay) from None
        finally:
            self._claim = None

    @contextmanager
    def _call(self, write: bool = False) -> Iterator[JiraGateway]:
        """The gateway for ONE Jira call: `with self._call() as jira: jira.get_issue(key)`.

        Not during Jira's Retry-After (RetryLater, not counted as an attempt); for a write, only while
        our claim still holds (LeaseLost). In careful mode the block runs under the lock every worker
        shares, so it must make one call and nothing slow besides.
        """
        if write and self._claim is not None and not queue.renew(self.engine, self._claim, self.lease_seconds):
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
        if self.enricher is not None:  # Qualio's current record is newer than any delivery
            fetched_at = utcnow()
            for key, value in self.enricher.fetch(claim.nc_id).items():
                snapshot.state[key], snapshot.set_at[key] = value, fetched_at
        snapshot.state["ncId"] = claim.nc_id
        plan = plan_sync(self.mapping, snapshot, link.nc_state, link.fields_hash,
                         links.posted_comment_keys(self.engine, claim.nc_id), self.resolver)

        key, created = self._ensure_issue(link, plan, {"nc_id": claim.nc_id, "delivery_ids": claim.ids})
        writes = 1 if created else 0
        if not created and plan.fields_changed:
            with self._call(write=True) as jira:
                jira.update_issue(key, plan.edit_fields)
            writes += 1
        if plan.remote_link and (created or plan.link_changed):
            with self._call(write=True) as jira:
                jira.upsert_remote_link(key, plan.remote_link)
            writes += 1
        links.mark_linked(self.engine, claim.nc_id, key, plan.fields_hash)
        status, moved = self._follow_status(key, link if not created else None, plan)
        writes += moved
        posted = self._post_comments(claim.nc_id, key, plan.comments)
        with self.engine.begin() as conn:
            if finish(conn, claim, DeliveryStatus.DONE, key, snapshot.applied) < len(snapshot.applied):
                # Another worker took the NC over and may have recorded newer state: keep ours out.
                raise LeaseLost(f"lost the claim on {claim.nc_id} before recording the sync")
            if snapshot.ignored:
                finish(conn, claim, DeliveryStatus.IGNORED, key, snapshot.ignored)
            links.record_sync(conn, claim.nc_id, fields_hash=plan.fields_hash, jira_status=status,
                              last_event_at=snapshot.newest, nc_state=snapshot.state,
                              field_times=snapshot.set_at)
        return SyncResult(key, created, writes + posted, posted)

    # -- the issue ---------------------------------------------------------------------------

    def _ensure_issue(self, link: Link, plan: SyncPlan, context: dict[str, Any]) -> tuple[str, bool]:
        """The NC's Jira key, creating the issue if (and only if) none can exist yet."""
        if link.state == "linked" and link.jira_key:
            return link.jira_key, False
        label = marker_label(self.mapping, link.nc_id)
        with self._call() as jira:
            found = jira.find_issues_by_label(label, plan.create_fields["project"]["key"])
        if found:
            if len(found) > 1:
                log.warning("several Jira issues carry the marker label; adopting the oldest",
                            extra={**context, "jira_keys": found})
            log.info("adopted existing Jira issue", extra={**context, "jira_key": found[0]})
            links.mark_linked(self.engine, link.nc_id, found[0])
            return found[0], False
        if link.state == "creating" and link.create_started_at is not None:
            settle_at = link.create_started_at + timedelta(seconds=self.search_lag)
            wait = (settle_at - utcnow()).total_seconds()
            if wait > 0:
                # A create was sent and its outcome is unknown; Jira's search may not show it yet.
                raise RetryLater("an earlier create may exist in Jira; waiting out the search lag",
                                 delay=wait, count_attempt=False)
        try:
            with self._call(write=True) as jira:
                links.mark_creating(self.engine, link.nc_id)  # only once the call is sure to be made
                key = jira.create_issue(plan.create_fields)
        except JiraError as exc:
            if not exc.outcome_unknown:
                links.mark_not_created(self.engine, link.nc_id)
            raise
        links.mark_linked(self.engine, link.nc_id, key)
        log.info("created Jira issue", extra={**context, "jira_key": key})
        return key, True

    def _follow_status(self, key: str, link: Link | None, plan: SyncPlan) -> tuple[str | None, int]:
        """Run the transition to the mapped status, if the issue is not there yet."""
        target = plan.target_status
        known = link.jira_status if link else None
        if target is None or (known is not None and known.casefold() == target.casefold()):
            return known, 0
        with self._call() as jira:
            issue = jira.get_issue(key)
        current, options = issue.status, issue.transitions
        if current.casefold() == target.casefold():
            return current, 0
        for transition in options:
            if transition.to_status.casefold() == target.casefold():
                with self._call(write=True) as jira:
                    jira.transition_issue(key, transition.id)
                return transition.to_status, 1
        available = ", ".join(f"{t.name!r} -> {t.to_status!r}" for t in options) or "none"
        raise Permanent(f"no transition leads from {current!r} to {target!r} on {key}; available: {available}")

    # -- comments ----------------------------------------------------------------------------

    def _post_comments(self, nc_id: str, key: str, comments: tuple[PlannedComment, ...]) -> int:
        if not comments:
            return 0
        uncertain = links.uncertain_comments(self.engine, nc_id)  # key -> when its post was started
        already = self._comments_in_jira(key) if uncertain else {}
        posted = 0
        for comment in comments:
            marker = comment_marker(comment.key)
            if marker in already:  # an earlier post whose answer we never saw did go through
                links.record_comment(self.engine, nc_id, comment.key, already[marker])
                continue
            if comment.key in uncertain:
                wait = (uncertain[comment.key] + timedelta(seconds=self.search_lag) - utcnow()).total_seconds()
                if wait > 0:  # that post may still land: do not post a second copy yet
                    raise RetryLater("an earlier comment post may still land in Jira; waiting", delay=wait,
                                     count_attempt=False)
            try:
                with self._call(write=True) as jira:
                    links.reserve_comment(self.engine, nc_id, comment.key)  # only once the post is sure
                    comment_id = jira.add_comment(key, comment.body)
            except JiraError as exc:
                if not exc.outcome_unknown:
                    links.forget_comment(self.engine, nc_id, comment.key)
                raise
            links.record_comment(self.engine, nc_id, comment.key, comment_id)
            posted += 1
        return posted

    def _comments_in_jira(self, key: str) -> dict[str, str]:
        """marker -> comment id for the issue's comments that carry one of our markers."""
        found: dict[str, str] = {}
        with self._call() as jira:
            comments = jira.comments(key)
        for comment_id, body in comments:
            last_line = body.rstrip().rsplit("\n", 1)[-1]
            if last_line.startswith("[qualio-comment:"):
                found[last_line] = comment_id
        return found


class _ThrottledLookups:
    """The resolver's Jira look-ups (made on a cache miss), each through the throttle like any other call."""

    def __init__(self, call: Callable[[], AbstractContextManager[JiraGateway]]) -> None:
        self._call = call

    def fields(self) -> list[FieldInfo]:
        with self._call() as jira:
            return jira.fields()

    def account_id(self, email: str) -> str | None:
        with self._call() as jira:
            return jira.account_id(email)
