"""An in-memory JiraGateway that records what Jira received (for sync tests without HTTP)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from connector.jira.gateway import FieldInfo, IssueState, JiraError, Pressure, Transition

WORKFLOW = {  # status -> transitions (id, name, to)
    "To Do": [("11", "Start", "In Progress"), ("31", "Done", "Done")],
    "In Progress": [("21", "Stop", "To Do"), ("31", "Done", "Done")],
    "Done": [("41", "Reopen", "To Do")],
}


@dataclass
class FakeIssue:
    key: str
    fields: dict[str, Any]
    status: str = "To Do"
    comments: list[tuple[str, str]] = field(default_factory=list)
    links: dict[str, dict[str, Any]] = field(default_factory=dict)


class FakeJira:
    def __init__(self) -> None:
        self.issues: dict[str, FakeIssue] = {}
        self.calls: list[tuple[str, str]] = []  # (method, key or label)
        self.fail_next: dict[str, list[JiraError]] = {}  # method -> errors to raise, in order
        self.lose_answer: set[str] = set()  # methods whose next call succeeds but "times out"
        self.search_visible = True  # False simulates Jira Cloud's search index lag
        self.comments_visible = True  # False: a slow comment post has not landed yet
        self.before: dict[str, Any] = {}  # method -> callable run as the call arrives (another worker acts)
        self.pressure_on: dict[str, Pressure] = {}  # method -> the rate-limit signal its next answer carries
        self._pressure: Pressure | None = None
        self._ids = itertools.count(1)

    def take_pressure(self) -> Pressure | None:
        seen, self._pressure = self._pressure, None
        return seen

    def _enter(self, method: str, target: str) -> None:
        self.calls.append((method, target))
        if method in self.before:
            self.before.pop(method)()
        if method in self.pressure_on:
            self._pressure = self.pressure_on.pop(method)
        errors = self.fail_next.get(method)
        if errors:
            raise errors.pop(0)

    def _maybe_lose(self, method: str) -> None:
        if method in self.lose_answer:
            self.lose_answer.discard(method)
            raise JiraError("read timed out", status=None, retryable=True, outcome_unknown=True)

    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] in {"create_issue", "update_issue", "transition_issue",
                                                  "add_comment", "upsert_remote_link"}]

    def find_issues_by_label(self, label: str, project: str) -> list[str]:
        self._enter("find_issues_by_label", label)
        if not self.search_visible:
            return []
        return [i.key for i in self.issues.values() if label in i.fields.get("labels", [])]

    def create_issue(self, fields: dict[str, Any]) -> str:
        self._enter("create_issue", fields["summary"])
        key = f"QA-{next(self._ids)}"
        self.issues[key] = FakeIssue(key, dict(fields))
        self._maybe_lose("create_issue")
        return key

    def update_issue(self, key: str, fields: dict[str, Any]) -> None:
        self._enter("update_issue", key)
        self.issues[key].fields.update(fields)
        self._maybe_lose("update_issue")

    def get_issue(self, key: str) -> IssueState:
        self._enter("get_issue", key)
        issue = self.issues[key]
        return IssueState(key=key, status=issue.status,
                          transitions=[Transition(i, n, to) for i, n, to in WORKFLOW[issue.status]])

    def transition_issue(self, key: str, transition_id: str) -> None:
        self._enter("transition_issue", key)
        issue = self.issues[key]
        issue.status = next(to for i, _, to in WORKFLOW[issue.status] if i == transition_id)

    def add_comment(self, key: str, body: str) -> str:
        self._enter("add_comment", key)
        comment_id = str(1000 + next(self._ids))
        self.issues[key].comments.append((comment_id, body))
        self._maybe_lose("add_comment")
        return comment_id

    def comments(self, key: str) -> list[tuple[str, str]]:
        self._enter("comments", key)
        return list(self.issues[key].comments) if self.comments_visible else []

    def upsert_remote_link(self, key: str, link: dict[str, Any]) -> None:
        self._enter("upsert_remote_link", key)
        self.issues[key].links[link["globalId"]] = link

    def fields(self) -> list[FieldInfo]:
        self._enter("fields", "")
        return [FieldInfo("customfield_10010", "Severity", "option", None)]

    def account_id(self, email: str) -> str | None:
        self._enter("account_id", email)
        return {"dana@example.com": "acc-dana"}.get(email)

    def check_project(self, project: str, issue_type: str) -> list[str]:
        return []
