"""An in-memory JiraGateway that records what Jira received (for sync tests without HTTP)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from connector.jira.gateway import (
    FieldInfo,
    IssueState,
    JiraError,
    PostedComment,
    Pressure,
    ScreenField,
    StatusRef,
    Transition,
)

STATUSES = {  # status name -> (id, statusCategory key), as Jira Cloud's simplified workflow has them
    "To Do": ("10000", "new"),
    "In Progress": ("3", "indeterminate"),
    "Done": ("10002", "done"),
}
WORKFLOW = {  # status -> transitions (id, name, to)
    "To Do": [("11", "Start", "In Progress"), ("31", "Done", "Done")],
    "In Progress": [("21", "Stop", "To Do"), ("31", "Done", "Done")],
    "Done": [("41", "Reopen", "To Do")],
}
USERS = {"dana@example.com": "acc-dana"}  # the user directory: e-mail -> accountId


def status_ref(name: str) -> StatusRef:
    ident, category = STATUSES.get(name, ("", ""))
    return StatusRef(ident, name, category)


@dataclass
class FakeIssue:
    key: str
    fields: dict[str, Any]
    status: str = "To Do"  # the status name
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
        # transition id -> its screen; a required field without a default that a transition is run
        # without is refused as Jira does (400, field_errors). No screens by default.
        self.screens: dict[str, tuple[ScreenField, ...]] = {}
        self.workflow = dict(WORKFLOW)  # a test may give the project another workflow
        self.missing_permissions: list[str] = []  # what permission_problems() reports
        self.keeps_comment_properties = True  # False: a Jira that drops comment properties (the marker must do)
        self.comment_properties: dict[str, str] = {}  # comment id -> our commentKey property
        self.field_list = [FieldInfo("customfield_10010", "Severity", "option", None)]  # GET /field
        self.transition_fields: list[tuple[str, str, dict[str, Any]]] = []  # (key, transition id, fields sent)
        self.moved: dict[str, str] = {}  # old key -> new key: a person moved the issue (see move())

    def move(self, key: str, new_key: str) -> None:
        """Move an issue to another project, as a person would: the old key still answers."""
        self.issues[new_key] = self.issues.pop(key)
        self.issues[new_key].key = new_key
        self.moved[key] = new_key
        for old, current in self.moved.items():
            if current == key:
                self.moved[old] = new_key

    def _issue(self, key: str) -> FakeIssue:
        current = self.moved.get(key, key)
        if current not in self.issues:
            raise JiraError("Issue does not exist or you do not have permission to see it.", status=404)
        return self.issues[current]

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

    def find_issues_by_label(self, label: str, project: str | None) -> list[str]:
        """Issues with the label; in ``project`` (its key prefix) or, with None, in every project."""
        self._enter("find_issues_by_label", label)
        if not self.search_visible:
            return []
        return [i.key for i in self.issues.values() if label in i.fields.get("labels", [])
                and (project is None or i.key.split("-", 1)[0] == project)]

    def create_issue(self, fields: dict[str, Any]) -> str:
        self._enter("create_issue", fields["summary"])
        key = f"QA-{next(self._ids)}"
        self.issues[key] = FakeIssue(key, dict(fields))
        self._maybe_lose("create_issue")
        return key

    def update_issue(self, key: str, fields: dict[str, Any]) -> None:
        self._enter("update_issue", key)
        self._issue(key).fields.update(fields)
        self._maybe_lose("update_issue")

    def get_issue(self, key: str) -> IssueState:
        self._enter("get_issue", key)
        issue = self._issue(key)
        return IssueState(key=issue.key, status=status_ref(issue.status),
                          transitions=[Transition(i, n, status_ref(to), self.screens.get(i, ()))
                                       for i, n, to in self.workflow[issue.status]])

    def transition_issue(self, key: str, transition_id: str, fields: dict[str, Any] | None = None) -> None:
        self._enter("transition_issue", key)
        issue = self._issue(key)
        to = next((to for i, _, to in self.workflow[issue.status] if i == transition_id), None)
        if to is None:
            raise JiraError(f"Transition id '{transition_id}' is not valid for this issue.", status=400)
        sent = dict(fields or {})
        missing = {f.id: f"{f.name} is required." for f in self.screens.get(transition_id, ())
                   if f.required and not f.has_default and f.id not in sent}
        if missing:
            raise JiraError("; ".join(f"{k}: {v}" for k, v in missing.items()), status=400, field_errors=missing)
        self.transition_fields.append((issue.key, transition_id, sent))
        issue.fields.update(sent)
        issue.status = to

    def add_comment(self, key: str, body: str, comment_key: str = "") -> str:
        self._enter("add_comment", key)
        comment_id = str(1000 + next(self._ids))
        self._issue(key).comments.append((comment_id, body))
        if comment_key and self.keeps_comment_properties:
            self.comment_properties[comment_id] = comment_key
        self._maybe_lose("add_comment")
        return comment_id

    def comments(self, key: str) -> list[PostedComment]:
        self._enter("comments", key)
        if not self.comments_visible:
            return []
        keys = self.comment_properties
        return [PostedComment(cid, body, keys.get(cid, "")) for cid, body in self._issue(key).comments]

    def upsert_remote_link(self, key: str, link: dict[str, Any]) -> None:
        self._enter("upsert_remote_link", key)
        self._issue(key).links[link["globalId"]] = link

    def fields(self) -> list[FieldInfo]:
        self._enter("fields", "")
        return list(self.field_list)

    def user_ref(self, ref: str) -> dict[str, str] | None:
        """Jira Cloud's shape: an e-mail of USERS, or any other value taken as an accountId."""
        self._enter("user_ref", ref)
        if "@" not in ref:
            return {"accountId": ref}
        account = USERS.get(ref)
        return {"accountId": account} if account else None

    def check_project(self, project: str, issue_type: str) -> list[str]:
        return []

    def newest_issue(self, project: str) -> str | None:
        """The newest issue the search index shows (none while search_visible is False)."""
        self._enter("newest_issue", project)
        keys = [k for k in self.issues if k.split("-", 1)[0] == project] if self.search_visible else []
        return max(keys, key=lambda k: int(k.split("-", 1)[1]), default=None)

    def issue_labels(self, key: str) -> list[str] | None:
        self._enter("issue_labels", key)
        issue = self.issues.get(self.moved.get(key, key))
        return None if issue is None else list(issue.fields.get("labels", []))

    def permission_problems(self, project: str) -> list[str]:
        self._enter("permission_problems", project)
        return list(self.missing_permissions)
