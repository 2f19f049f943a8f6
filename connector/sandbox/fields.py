"""Issue fields: the field catalogue (`FIELDS`), and the rules that turn request values into stored ones.

`Catalog` binds the rules to one configuration (Cloud addresses users by accountId only, Server by name or
key only; resolutions are the workflow's); `operation_list` and `comment_bodies` read an `update` object,
`comment_body` one comment's text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from connector.sandbox.errors import FieldError, JiraError, JsonDict, unsettable
from connector.sandbox.reference import (
    COMPONENTS,
    DEFAULT_PRIORITY,
    ISSUE_TYPES,
    PRIORITIES,
    PROJECT_ID,
    SEVERITIES,
    Named,
    User,
    seeded_users,
)

if TYPE_CHECKING:  # the configuration loads workflows, whose files name fields: no import at run time
    from connector.sandbox.config import SandboxConfig

TEXT_LIMIT = 32767
LINE_LIMIT = 255


@dataclass(frozen=True)
class FieldSpec:
    """One issue field: its id, name, value kind, Jira `schema` and the screens that may set it."""

    id: str
    name: str
    kind: str
    schema: Mapping[str, Any]
    screens: frozenset[str] = frozenset({"create", "edit"})
    clause_names: tuple[str, ...] = ()
    navigable: bool = True

    @property
    def custom(self) -> bool:
        return self.id.startswith("customfield_")


_NO_SCREEN: frozenset[str] = frozenset()
_CF = "com.atlassian.jira.plugin.system.customfieldtypes:"
FIELDS = (
    FieldSpec("summary", "Summary", "summary", {"type": "string", "system": "summary"}),
    FieldSpec("description", "Description", "text", {"type": "string", "system": "description"}),
    FieldSpec("labels", "Labels", "labels", {"type": "array", "items": "string", "system": "labels"}),
    FieldSpec("priority", "Priority", "priority", {"type": "priority", "system": "priority"}),
    FieldSpec("status", "Status", "status", {"type": "status", "system": "status"}, _NO_SCREEN),
    FieldSpec("resolution", "Resolution", "resolution", {"type": "resolution", "system": "resolution"},
              frozenset({"transition"})),
    FieldSpec("assignee", "Assignee", "user", {"type": "user", "system": "assignee"}),
    FieldSpec("reporter", "Reporter", "user", {"type": "user", "system": "reporter"}),
    FieldSpec("creator", "Creator", "user", {"type": "user", "system": "creator"}, _NO_SCREEN),
    FieldSpec("duedate", "Due date", "date", {"type": "date", "system": "duedate"}, clause_names=("due",)),
    FieldSpec("components", "Components", "components",
              {"type": "array", "items": "component", "system": "components"}, clause_names=("component",)),
    FieldSpec("issuetype", "Issue Type", "issuetype", {"type": "issuetype", "system": "issuetype"},
              clause_names=("type",)),
    FieldSpec("project", "Project", "project", {"type": "project", "system": "project"}, frozenset({"create"})),
    FieldSpec("created", "Created", "datetime", {"type": "datetime", "system": "created"}, _NO_SCREEN),
    FieldSpec("updated", "Updated", "datetime", {"type": "datetime", "system": "updated"}, _NO_SCREEN),
    FieldSpec("resolutiondate", "Resolved", "datetime", {"type": "datetime", "system": "resolutiondate"},
              _NO_SCREEN, clause_names=("resolved",)),
    FieldSpec("comment", "Comment", "comments", {"type": "comments-page", "system": "comment"}, _NO_SCREEN,
              navigable=False),
    FieldSpec("customfield_10010", "Severity", "option",
              {"type": "option", "custom": _CF + "select", "customId": 10010}, clause_names=("Severity",)),
    FieldSpec("customfield_10011", "NC Link", "url",
              {"type": "string", "custom": _CF + "url", "customId": 10011}, clause_names=("NC Link",)),
    FieldSpec("customfield_10012", "Root cause", "text",
              {"type": "string", "custom": _CF + "textarea", "customId": 10012}, clause_names=("Root cause",)),
)
FIELDS_BY_ID = {spec.id: spec for spec in FIELDS}


class Catalog:
    """Reference data bound to one configuration, and the rules that turn request values into stored ones."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.users = seeded_users(config.email)
        self.me = self.users[0]
        self._normalisers: dict[str, Callable[[Any], Any]] = {
            "summary": self._summary, "text": self._text, "url": self._url, "labels": self._labels,
            "priority": self._priority, "user": self._user, "date": self._date,
            "components": self._components, "issuetype": self._issuetype, "project": self._project,
            "option": self._option, "resolution": self._resolution,
        }

    def user(self, account_id: str | None) -> User | None:
        return next((u for u in self.users if u.account_id == account_id), None)

    def find_user(self, ref: str) -> User | None:
        """A user by account id, username, user key or email address."""
        ref = ref.lower()
        return next((u for u in self.users
                     if ref in (u.account_id.lower(), u.name, u.key.lower(), u.email.lower())), None)

    def project_matches(self, ref: str) -> bool:
        """Whether `ref` is the project's id or key (exactly, as in a create request)."""
        return ref in (PROJECT_ID, self.config.project_key)

    def values(self, raw: Any, screen: str) -> tuple[JsonDict, dict[str, str]]:
        """Stored values and Jira-worded errors for a request's `fields` object on `screen`."""
        return _each_field(raw, lambda field_id, value: self.normalise(field_id, value, screen))

    def normalise(self, field_id: str, value: Any, screen: str) -> Any:
        spec = FIELDS_BY_ID.get(field_id)
        if spec is None or screen not in spec.screens:
            raise unsettable(field_id)
        return self._normalisers[spec.kind](value)

    def screen_values(self, raw: Any, on_screen: Collection[str]) -> tuple[JsonDict, dict[str, str]]:
        """Like `values`, for a transition screen holding the fields `on_screen`."""
        def on_this_screen(field_id: str, value: Any) -> Any:
            if field_id not in on_screen or field_id not in FIELDS_BY_ID:
                raise unsettable(field_id)
            return self._normalisers[FIELDS_BY_ID[field_id].kind](value)
        return _each_field(raw, on_this_screen)

    def _summary(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise FieldError("You must specify a summary of the issue.")
        if "\n" in value or "\r" in value:
            raise FieldError("The summary is invalid because it contains newline characters.")
        if len(value) > LINE_LIMIT:
            raise FieldError("Summary must be less than 255 characters.")
        return value

    def _text(self, value: Any, limit: int = TEXT_LIMIT) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise FieldError("Operation value must be a string")
        if len(value) > limit:
            raise FieldError(f"The entered text is too long. It exceeds the allowed limit of {limit:,} characters.")
        return value or None

    def _url(self, value: Any) -> str | None:
        text = self._text(value, LINE_LIMIT)
        if text is not None and not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*://\S+", text):
            raise FieldError("Not a valid URL")
        return text

    def _labels(self, value: Any) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise FieldError("Operation value must be an array of strings")
        for label in value:
            if not label or re.search(r"\s", label):
                raise FieldError(f"The label '{label}' contains spaces which is invalid.")
            if len(label) > LINE_LIMIT:
                raise FieldError(f"The label '{label}' exceeds the maximum length for a single label "
                                 "of 255 characters.")
        return list(dict.fromkeys(value))

    def _priority(self, value: Any) -> str:
        if value is None:
            return DEFAULT_PRIORITY
        return reference(value, PRIORITIES, "priority", "name")

    def _user(self, value: Any) -> str | None:
        """Cloud: {"accountId"} only (GDPR strict mode); Server/Data Center: {"name"} or {"key"}, no accountId."""
        if value is None:
            return None
        cloud = self.config.cloud
        if not isinstance(value, dict):
            raise FieldError("expected Object containing an 'accountId'" if cloud
                             else "expected Object containing a 'name' property")
        if cloud and ("name" in value or "key" in value):
            raise FieldError("'accountId' must be the only user identifying query parameter in GDPR strict mode.")
        if not cloud and "accountId" in value:
            raise FieldError("Jira Data Center identifies users by 'name' (or 'key'), not by 'accountId'.")
        keys = ("accountId",) if cloud else ("name", "key")
        found = next(((k, str(value[k])) for k in keys if value.get(k) is not None), None)
        if found is None:
            return None
        how, ref = found
        user = next((u for u in self.users if identifies(u, how, ref)), None)
        if user is None:
            raise FieldError("Specify a valid value for the user" if cloud else f"User '{ref}' does not exist.")
        return user.account_id

    def _date(self, value: Any) -> str | None:
        if value is None:
            return None
        try:
            if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                raise ValueError(value)
            date.fromisoformat(value)
        except ValueError:
            raise FieldError(f"Error parsing date string: {value}") from None
        return value

    def _components(self, value: Any) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise FieldError("Operation value must be an array of components")
        return list(dict.fromkeys(reference(item, COMPONENTS, "component", "name") for item in value))

    def _issuetype(self, value: Any) -> str:
        return reference(value, ISSUE_TYPES, "issue type", "name", unknown="The issue type selected is invalid.")

    def _project(self, value: Any) -> str:
        if isinstance(value, dict) and any(self.project_matches(str(value.get(k))) for k in ("id", "key")):
            return PROJECT_ID
        raise FieldError("Specify a valid project ID or key")

    def _option(self, value: Any) -> str | None:
        if value is None:
            return None
        return reference(value, SEVERITIES, "option", "value")

    def _resolution(self, value: Any) -> str:
        return reference(value, self.config.definition.resolutions, "resolution", "name")


def identifies(user: User, how: str, ref: str) -> bool:
    """Whether `ref` is the user's accountId, username (case-insensitively, as Data Center) or key."""
    if how == "accountId":
        return ref == user.account_id
    return ref.lower() == user.name if how == "name" else ref == user.key


def reference(value: Any, options: Sequence[Named], label: str, name_key: str, unknown: str | None = None) -> str:
    """Resolve `{"id": ...}` or `{name_key: ...}` against `options` (exact, like Jira)."""
    if not isinstance(value, dict) or ("id" not in value and name_key not in value):
        raise FieldError(f"Could not find valid 'id' or '{name_key}' in {label} object.")
    if "id" in value:
        found = next((o for o in options if o.id == str(value["id"])), None)
        problem = unknown or f"{label.capitalize()} with id '{value['id']}' does not exist."
    else:
        found = next((o for o in options if o.name == value[name_key]), None)
        problem = unknown or f"{label.capitalize()} {name_key} '{value[name_key]}' is not valid"
    if found is None:
        raise FieldError(problem)
    return found.id


def operation_list(operations: Any) -> list[JsonDict]:
    if not isinstance(operations, list) or not all(isinstance(op, dict) and len(op) == 1 for op in operations):
        raise FieldError("Operations must be a list of single-verb objects like {\"set\": value}")
    return operations


def comment_bodies(operations: Any) -> list[str]:
    bodies = []
    for operation in operation_list(operations):
        add = operation.get("add")
        if not isinstance(add, dict):
            raise FieldError("Comment operations must be {\"add\": {\"body\": \"...\"}}")
        try:
            bodies.append(comment_body(add.get("body")))
        except JiraError as exc:
            raise FieldError(next(iter(exc.errors.values()))) from None
    return bodies


def comment_body(body: Any) -> str:
    if isinstance(body, dict):
        raise JiraError(400, [], {"comment": "Comment body must be a plain string in REST API v2 "
                                             "(Atlassian Document Format is v3 only)."})
    if not isinstance(body, str) or not body.strip():
        raise JiraError(400, [], {"comment": "Comment body can not be empty!"})
    if len(body) > TEXT_LIMIT:
        raise JiraError(400, [], {"comment": "The entered text is too long. It exceeds the allowed limit of "
                                             "32,767 characters."})
    return body


def _each_field(raw: Any, normalise: Callable[[str, Any], Any]) -> tuple[JsonDict, dict[str, str]]:
    """`normalise` applied to each entry of a request's `fields` object: the values, and the errors by field."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise JiraError(400, ["Can not deserialize 'fields': expected an object."])
    values: JsonDict = {}
    errors: dict[str, str] = {}
    for field_id, value in raw.items():
        try:
            values[field_id] = normalise(field_id, value)
        except FieldError as exc:
            errors[field_id] = str(exc)
    return values, errors
