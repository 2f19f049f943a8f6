"""Issues: the stored shapes (`Issue`, `Comment`, `RemoteLink`) and `IssueStore`, which creates, reads, edits
and deletes them.

The store holds the live issues behind the sandbox's one re-entrant lock and hands out deep copies. Every
write goes through `touch()`, which bumps `updated` and queues the new state for the lagging search index.
It also knows the projects issues are in (the configured one, plus any an issue was moved to) and the keys
moved issues had before, which still find them (as in Jira).
"""

from __future__ import annotations

import copy
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connector.sandbox.config import SandboxConfig
from connector.sandbox.errors import FieldError, JiraError, JsonDict, not_found, unsettable
from connector.sandbox.fields import FIELDS, FIELDS_BY_ID, Catalog, comment_bodies, operation_list
from connector.sandbox.reference import DEFAULT_PRIORITY, PROJECT_ID

Clock = Callable[[], float]

SNAPSHOT_LIMIT = 50
PROJECT_KEY = re.compile(r"[A-Z][A-Z0-9_]{0,9}")
ISSUE_KEY = re.compile(r"([A-Z][A-Z0-9_]{0,9})-([1-9][0-9]{0,8})")


@dataclass
class Comment:
    id: str
    body: str
    author: str
    created: float
    updated: float
    visibility: JsonDict | None = None
    properties: list[JsonDict] = field(default_factory=list)  # entity properties: [{"key", "value"}]


@dataclass
class RemoteLink:
    id: int
    global_id: str | None
    object: JsonDict
    application: JsonDict
    relationship: str | None


@dataclass
class Issue:
    """An issue: stored field values (ids for references, epoch floats for times) plus its sub-resources."""

    id: str
    key: str
    fields: JsonDict
    comments: list[Comment] = field(default_factory=list)
    remote_links: list[RemoteLink] = field(default_factory=list)
    versions: list[tuple[float, JsonDict]] = field(default_factory=list)

    def index_view(self) -> JsonDict:
        """What the search index knows about this issue: its fields plus key and id."""
        return {**copy.deepcopy(self.fields), "key": self.key, "id": self.id}


def issue_number(issue: Issue) -> int:
    return int(issue.id)


class IssueStore:
    """The sandbox's issues by key, and the issue and comment numbers.

    The public reads and writes take `lock`; `find`, `lookup`, `touch`, `append_comment` and `apply_operations`
    are for callers already holding it (the workflow, comments, remote links and search parts).
    """

    def __init__(self, config: SandboxConfig, catalog: Catalog, clock: Clock, lock: threading.RLock,
                 counters: Counter[str]) -> None:
        self.config = config
        self.catalog = catalog
        self.clock = clock
        self.lock = lock
        self.counters = counters
        self.reset()

    def reset(self) -> None:
        """Forget every issue, moved key and extra project; restart the issue and comment numbers."""
        with self.lock:
            self._issues: dict[str, Issue] = {}
            self._moved: dict[str, str] = {}  # a moved issue's earlier key -> its key now
            self._projects: dict[str, str] = {self.config.project_key: PROJECT_ID}  # key -> id
            self._next_issue = 0
            self._next_comment = 10000

    def projects(self) -> list[tuple[str, str, str]]:
        """(id, key, name) of every project: the configured one, then those issues were moved to."""
        with self.lock:
            return [self.project(project_id) for project_id in self._projects.values()]

    def project(self, project_id: str) -> tuple[str, str, str]:
        with self.lock:
            key = next(k for k, i in self._projects.items() if i == project_id)
            return project_id, key, self.config.project_name if key == self.config.project_key else key

    def find_project(self, ref: str) -> str | None:
        """The id of the project whose id, key (any case) or name (any case) is `ref`."""
        with self.lock:
            for project_id, key, name in self.projects():
                if ref == project_id or ref.lower() in (key.lower(), name.lower()):
                    return project_id
            return None

    def count(self) -> int:
        with self.lock:
            return len(self._issues)

    def live(self) -> list[Issue]:
        """The live issues themselves (not copies), for the other parts holding `lock`."""
        with self.lock:
            return list(self._issues.values())

    def create(self, raw_fields: Any, actor: str) -> Issue:
        values, errors = self.catalog.values(raw_fields, "create")
        for field_id, message in (("project", "Specify a valid project ID or key"),
                                  ("issuetype", "Specify an issue type"),
                                  ("summary", "You must specify a summary of the issue.")):
            if field_id not in values and field_id not in errors:
                errors[field_id] = message
        if errors:
            raise JiraError(400, [], errors)
        with self.lock:
            now = self.clock()
            self._next_issue += 1
            fields = self._new_fields(values, actor, now)
            number = self._next_issue
            while self._taken(f"{self.config.project_key}-{number}"):  # an issue moved here may hold it
                number += 1
            issue = Issue(str(10000 + self._next_issue), f"{self.config.project_key}-{number}", fields)
            self._issues[issue.key] = issue
            self.touch(issue, now)
            self.counters["creates"] += 1
            return copy.deepcopy(issue)

    def _new_fields(self, values: JsonDict, actor: str, now: float) -> JsonDict:
        defaults: JsonDict = {spec.id: None for spec in FIELDS if spec.kind not in ("comments",)}
        defaults.update(labels=[], components=[], priority=DEFAULT_PRIORITY,
                        status=self.config.definition.initial,
                        reporter=actor, creator=actor, created=now)
        return {**defaults, **values}

    def get(self, ref: str) -> Issue:
        with self.lock:
            return copy.deepcopy(self.find(ref))

    def all(self) -> list[Issue]:
        with self.lock:
            return [copy.deepcopy(issue) for issue in self._issues.values()]

    def find(self, ref: str) -> Issue:
        """The live issue with key (any case) or id `ref`; else Jira's 404."""
        issue = self.lookup(ref)
        if issue is None:
            raise not_found()
        return issue

    def lookup(self, ref: str) -> Issue | None:
        """The live issue with key (any case, also a key it had before a move) or id `ref`, or None."""
        key = ref.upper()
        return (self._issues.get(self._moved.get(key, key))
                or next((i for i in self._issues.values() if i.id == ref), None))

    def _taken(self, key: str) -> bool:
        return key in self._issues or key in self._moved

    def move(self, ref: str, new_key: str | None = None, project: str | None = None) -> Issue:
        """Give an issue a new key (in `project`, created if new): Jira's move. ValueError for a bad target."""
        with self.lock:
            issue = self.find(ref)
            key = self._move_target(issue, new_key, project)
            old = issue.key
            del self._issues[old]
            issue.key = key
            issue.fields["project"] = self._projects.setdefault(key.split("-")[0], str(10000 + len(self._projects)))
            self._issues[key] = issue
            self._moved = {alias: (key if now_key == old else now_key) for alias, now_key in self._moved.items()
                           if alias != key}
            self._moved[old] = key
            self.touch(issue, self.clock())
            return copy.deepcopy(issue)

    def _move_target(self, issue: Issue, new_key: str | None, project: str | None) -> str:
        if project is not None and (not isinstance(project, str) or not PROJECT_KEY.fullmatch(project)):
            raise ValueError(f"project must be a project key like 'OPS', not {project!r}")
        if new_key is None:
            if project is None:
                raise ValueError("give the new 'key' (like 'OPS-7') or the 'project' to move the issue to")
            used = [int(k.split("-")[1]) for k in (*self._issues, *self._moved) if k.split("-")[0] == project]
            return f"{project}-{max(used, default=0) + 1}"
        match = ISSUE_KEY.fullmatch(new_key) if isinstance(new_key, str) else None
        if match is None:
            raise ValueError(f"key must be an issue key like 'OPS-7', not {new_key!r}")
        if project is not None and match.group(1) != project:
            raise ValueError(f"key {new_key!r} is not in project {project!r}")
        if new_key == issue.key or (self._taken(new_key) and self.lookup(new_key) is not issue):
            raise ValueError(f"key {new_key!r} is already in use")
        return new_key

    def touch(self, issue: Issue, now: float) -> None:
        """Record a write: bump `updated` and queue the new state for the (lagging) search index."""
        issue.fields["updated"] = now
        issue.versions.append((now, issue.index_view()))
        del issue.versions[:-SNAPSHOT_LIMIT]

    def update(self, ref: str, raw_fields: Any, raw_update: Any, actor: str) -> Issue:
        with self.lock:
            issue = self.find(ref)
            values, errors = self.catalog.values(raw_fields, "edit")
            merged = {**issue.fields, **values}
            comments = self.apply_operations(merged, raw_update, "edit", errors)
            if errors:
                raise JiraError(400, [], errors)
            issue.fields = merged
            now = self.clock()
            for body in comments:
                self.append_comment(issue, body, actor, None, now)
            self.touch(issue, now)
            self.counters["updates"] += 1
            return copy.deepcopy(issue)

    def apply_operations(self, fields: JsonDict, raw_update: Any, screen: str, errors: dict[str, str]) -> list[str]:
        """Apply an `update` object's set/add/remove operations to `fields`; return comment bodies to add."""
        if raw_update is None:
            return []
        if not isinstance(raw_update, dict):
            raise JiraError(400, ["Can not deserialize 'update': expected an object."])
        comments: list[str] = []
        for field_id, operations in raw_update.items():
            try:
                if field_id == "comment":
                    comments.extend(comment_bodies(operations))
                else:
                    for operation in operation_list(operations):
                        self._apply_operation(fields, field_id, operation, screen)
            except FieldError as exc:
                errors[field_id] = str(exc)
        return comments

    def _apply_operation(self, fields: JsonDict, field_id: str, operation: JsonDict, screen: str) -> None:
        ((verb, value),) = operation.items()
        spec = FIELDS_BY_ID.get(field_id)
        if spec is None or screen not in spec.screens:
            raise unsettable(field_id)
        if verb == "set":
            fields[field_id] = self.catalog.normalise(field_id, value, screen)
        elif verb in ("add", "remove") and spec.kind in ("labels", "components"):
            items = self.catalog.normalise(field_id, [value], screen)
            current = [v for v in fields[field_id] if v not in items]
            fields[field_id] = current + items if verb == "add" else current
        else:
            raise FieldError(f"Field '{field_id}' does not support operation '{verb}'")

    def delete(self, ref: str) -> None:
        with self.lock:
            issue = self.find(ref)
            del self._issues[issue.key]
            self._moved = {alias: key for alias, key in self._moved.items() if key != issue.key}
            self.counters["deletes"] += 1

    def append_comment(self, issue: Issue, text: str, actor: str, visibility: JsonDict | None,
                       now: float) -> Comment:
        self._next_comment += 1
        comment = Comment(str(self._next_comment), text, actor, now, now, visibility)
        issue.comments.append(comment)
        self.counters["comments"] += 1
        return comment
