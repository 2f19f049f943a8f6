"""The issue of an NC: exactly one, created only when none can exist yet, found again after a move.

The link row is reserved and marked `creating` (committed) before the create call. A later attempt
that finds `creating` searches Jira for the marker label first; when the search finds nothing it waits
until Jira's search lag has passed since the create was sent before creating again, so index lag
cannot produce a second issue. A linked key that Jira answers 404 for is looked for by its marker
label across every project: found (a person moved it), the NC is relinked; not found, the dead
letter says the issue is gone and how to recover.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from connector import db, metrics
from connector.jira.gateway import JiraError
from connector.sync import links
from connector.sync.errors import Permanent, RetryLater
from connector.sync.links import Link
from connector.sync.steps import SyncRun, not_this_steps

log = logging.getLogger(__name__)

# After a lost create answer: numbers in a row that must not exist before we stop reading keys (a deleted or
# moved issue leaves a gap), and how many keys at most (a busy project may have many newer issues).
PROBE_MISSES = 3
PROBE_LIMIT = 50


def ensure_issue(run: SyncRun, link: Link, label: str, create_fields: dict[str, Any],
                 search_lag: float) -> bool:
    """Set `run.key` to the NC's issue, creating it if (and only if) none can exist yet; True if created."""
    if link.state == "linked" and link.jira_key:
        run.key = link.jira_key
        return False
    with run.call() as jira:
        found = jira.find_issues_by_label(label, create_fields["project"]["key"])
    if found:
        adopt(run, found)
        return False
    project = create_fields["project"]["key"]
    if link.state == "creating" and link.create_started_at is not None:
        wait = (link.create_started_at + timedelta(seconds=search_lag) - db.now(run.engine)).total_seconds()
        if wait > 0:
            # A create was sent and its outcome is unknown; Jira's search may not show it yet.
            raise RetryLater("an earlier create may exist in Jira; waiting out the search lag",
                             delay=wait, count_attempt=False)
        # Jira Cloud's search has no bounded lag: ask for the keys after the newest one it shows, by key.
        probed = probe_keys(run, project, label)
        if probed:
            adopt(run, [probed])
            return False
    try:
        with run.call() as jira:
            links.mark_creating(run.engine, run.nc_id, run.claim)  # only once the call is sure to be made
            key = jira.create_issue(create_fields)
    except JiraError as exc:
        if not exc.outcome_unknown:
            links.mark_not_created(run.engine, run.nc_id)
        if not_this_steps(exc):
            raise
        raise Permanent(f"Jira refused ({exc.status}): {exc.message}", step="create") from None
    links.mark_linked(run.engine, run.nc_id, key, run.claim)
    run.key = key
    run.wrote(f"created {key}")
    log.info("created Jira issue", extra={**run.context, "jira_key": key})
    return True


def probe_keys(run: SyncRun, project: str, label: str) -> str | None:
    """After a create whose answer was lost: read the issues numbered after the newest the search index shows,
    one by one (reading by key is consistent at once), until PROBE_MISSES numbers in a row do not exist; the
    key of the one carrying our label, if any."""
    with run.call() as jira:
        newest = jira.newest_issue(project)
    number = int(newest.rsplit("-", 1)[1]) + 1 if newest else 1
    misses = 0
    for _ in range(PROBE_LIMIT):
        key = f"{project}-{number}"
        with run.call() as jira:
            labels = jira.issue_labels(key)
        if labels is not None and label in labels:
            log.warning("found a create whose answer was lost by reading its key (the search had not shown it)",
                        extra={**run.context, "jira_key": key})
            return key
        misses = misses + 1 if labels is None else 0
        if misses == PROBE_MISSES:
            return None
        number += 1
    return None


def adopt(run: SyncRun, found: list[str]) -> None:
    if len(found) > 1:
        log.error("several Jira issues carry the marker label; adopting the oldest, the others need a person",
                  extra={**run.context, "jira_keys": found})
        metrics.DUPLICATE_ISSUES.inc()
        links.record_duplicates(run.engine, run.nc_id, found[1:], run.claim)
    log.info("adopted existing Jira issue", extra={**run.context, "jira_key": found[0]})
    links.mark_linked(run.engine, run.nc_id, found[0], run.claim)
    run.key = found[0]


def relocate(run: SyncRun, label: str) -> None:
    """The linked issue answered 404: find it by its label in any project, or give up saying how to recover."""
    gone = run.key
    with run.call() as jira:
        found = jira.find_issues_by_label(label, None)
    found = [key for key in found if key != gone]
    if not found:
        raise Permanent(
            f"Jira issue {gone} of {run.nc_id} is gone (deleted, or no longer visible to the connector's "
            f"account) and no issue carries the label {label!r}: run 'nc-connector links unlink {run.nc_id}' "
            f"and replay to create a new one, or 'nc-connector links relink {run.nc_id} KEY' to use another",
            step="issue")
    log.warning("linked Jira issue answered 404; found it by its label", extra={
        **run.context, "jira_key": found[0], "previous_key": gone})
    run.rekey(found[0])
