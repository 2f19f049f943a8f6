"""What the steps of one NC's sync share: the run (its Jira calls, the key, what was applied and what failed).

The steps are create or adopt (`ensure`), edit, remote link, transition (`status`) and comments
(`comments`). Each records what it applied when it applied it (connector.sync.links), and a step
that fails for good is noted here and does not stop the others; the run ends in a dead letter that
says which step failed and what was applied, and a replay re-runs only what is still missing.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from connector.jira.gateway import JiraError, JiraGateway
from connector.sync import links
from connector.sync.errors import Permanent
from connector.sync.queue import Claim

Call = Callable[[], AbstractContextManager[JiraGateway]]  # call(): the gateway for ONE Jira call


class IssueGone(Exception):
    """Jira answered 404 for the linked key: the issue was deleted, moved, or hidden from us."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


@dataclass(frozen=True)
class StepFailure:
    step: str
    message: str


@dataclass
class SyncRun:
    engine: Engine
    call: Call
    claim: Claim  # every record is made only while it is still ours
    context: dict[str, Any]  # extra fields of every log line about this sync
    key: str = ""  # the Jira issue, once known
    applied: list[str] = field(default_factory=list)  # "edit", "comments (2)": for the dead letter's text
    failures: list[StepFailure] = field(default_factory=list)
    writes: int = 0  # Jira writes made (creates, edits, links, transitions, comments)
    comments: int = 0  # of which comments

    @property
    def nc_id(self) -> str:
        return self.claim.nc_id

    def wrote(self, what: str) -> None:
        self.writes += 1
        self.applied.append(what)

    def failed(self, step: str, message: str) -> None:
        self.failures.append(StepFailure(step, message))

    def rekey(self, key: str) -> None:
        """Jira answers for the issue under another key (a person moved it): record the key it gave."""
        if key and key != self.key:
            links.mark_linked(self.engine, self.nc_id, key, self.claim)
            self.key = key

    def outcome(self) -> Permanent | None:
        """The dead letter for the steps that failed, naming them and what was applied; None if none did."""
        if not self.failures:
            return None
        failed = "; ".join(f"{f.step} failed: {f.message}" for f in self.failures)
        applied = ", ".join(self.applied) or "nothing"
        return Permanent(f"{failed} (applied: {applied})", step=self.failures[0].step)


def not_this_steps(exc: JiraError) -> bool:
    """A failure that does not belong to one step: worth a retry, the issue gone (404), or the installation's
    credentials or permissions refused (401, 403), which the sync as a whole must answer."""
    return exc.retryable or exc.status in (401, 403, 404)


def refusal(exc: JiraError) -> str:
    """Jira's refusal in the words a dead letter uses."""
    return f"Jira refused ({exc.status}): {exc.message}"


def run_step(run: SyncRun, step: str, action: Callable[[], object]) -> None:
    """Run one step: a refusal for good is noted and the sync goes on; a 404 on the issue is `IssueGone`;
    anything that may succeed later (a retryable JiraError, RetryLater, LeaseLost) stops the sync."""
    try:
        action()
    except JiraError as exc:
        if exc.status == 404:
            raise IssueGone(run.key) from None
        if not_this_steps(exc):
            raise
        run.failed(step, refusal(exc))
    except Permanent as exc:
        run.failed(step, str(exc))
