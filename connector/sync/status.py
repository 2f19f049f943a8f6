"""The transition step: walk the issue to the mapped status through whatever workflow its project has.

One hop at a time (connector.jira.workflow.next_transition): read the status and the transitions open
from it (with their screens), take the hop, record the status reached, read again. Each hop's screen is
filled with the resolution and the mapped fields it asks for. No way there is a failure of this step
alone, naming the status, the target and every transition on offer; the edit and the comments still
happen.
"""

from __future__ import annotations

from typing import Any

from connector.jira.gateway import IssueState, JiraError
from connector.jira.workflow import MAX_HOPS, StatusRef, StatusTarget, Transition, next_transition, screen_values
from connector.sync import links
from connector.sync.errors import Permanent
from connector.sync.steps import SyncRun, not_this_steps


def follow_status(run: SyncRun, target: StatusTarget, known: StatusRef | None, fields: dict[str, Any]) -> int:
    """Transition `run.key` to `target` (no read when the status last recorded matches); returns the hops."""
    if known is not None and target.matches(known):
        return 0
    issue = read(run)
    seen: set[str] = set()
    categories: dict[str, str] = {}
    hops = 0
    while not target.matches(issue.status):
        seen.add(issue.status.id or issue.status.name.casefold())
        categories.update({t.to.name.casefold(): t.to.category for t in issue.transitions})
        step = next_transition(issue.status, issue.transitions, target, seen, categories)
        if step is None or hops == MAX_HOPS:
            raise Permanent(no_way(run.key, issue, target, hops))
        hop(run, step, fields, target.resolution)
        hops += 1
        if target.matches(step.to):
            break
        issue = read(run)  # what is open from the new status: only Jira knows
    return hops


def read(run: SyncRun) -> IssueState:
    with run.call() as jira:
        issue = jira.get_issue(run.key)
    run.rekey(issue.key)
    links.record_status(run.engine, run.nc_id, issue.status, run.claim)
    return issue


def hop(run: SyncRun, step: Transition, fields: dict[str, Any], resolution: str) -> None:
    values, missing = screen_values(step, fields, resolution)
    try:
        with run.call() as jira:
            jira.transition_issue(run.key, step.id, values or None)
    except JiraError as exc:
        if not_this_steps(exc):
            raise
        needed = [f"{f.name} ({f.id})" for f in missing if f.id in exc.field_errors or not exc.field_errors]
        if needed:
            raise Permanent(f"transition {step.name!r} on {run.key} needs {', '.join(needed)}, which the mapping "
                            f"does not fill; Jira said: {exc.message}") from None
        raise Permanent(f"Jira refused transition {step.name!r} on {run.key} ({exc.status}): {exc.message}") from None
    links.record_status(run.engine, run.nc_id, step.to, run.claim)
    run.wrote(f"transition to {step.to.name!r}")


def no_way(key: str, issue: IssueState, target: StatusTarget, hops: int) -> str:
    offered = ", ".join(f"{t.name!r} -> {t.to.name!r}" for t in issue.transitions) or "none"
    after = f" after {hops} transition(s)" if hops else ""
    return f"no transition leads from {issue.status.name!r} to {target} on {key}{after}; available: {offered}"
