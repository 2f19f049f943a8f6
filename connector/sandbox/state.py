"""The Jira sandbox's in-memory world: reference data, issues, a JQL subset, faults and the request log.

Everything mutable lives in `SandboxState` and is guarded by one re-entrant lock, so the threaded
werkzeug server (and tests poking the state directly) can share it. Methods hand out deep copies,
never the live objects. The HTTP layer (rendering, routing, the fault middleware) is in `app.py`.
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
import math
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

JsonDict = dict[str, Any]
Clock = Callable[[], float]
Sleeper = Callable[[float], None]

NOT_FOUND = "Issue does not exist or you do not have permission to see it."
WRITE_METHODS = ("POST", "PUT", "DELETE")
FAULT_KINDS = ("rate_limit", "unavailable", "drop", "drop_after", "slow")
FAULT_ALIASES = {"429": "rate_limit", "503": "unavailable"}
TEXT_LIMIT = 32767
LINE_LIMIT = 255
LOG_LIMIT = 10_000
NEAR_LIMIT_SHARE = 0.2  # Jira Cloud sends X-RateLimit-NearLimit: true once less than this share is left
SNAPSHOT_LIMIT = 50
PROJECT_ID = "10000"


class JiraError(Exception):
    """An answer Jira would give instead of a result: a status plus an ErrorCollection body."""

    def __init__(self, status: int, messages: Iterable[str] = (), errors: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.messages = list(messages)
        self.errors = dict(errors or {})
        super().__init__(f"{status}: {self.messages or self.errors}")

    def body(self) -> JsonDict:
        return {"errorMessages": self.messages, "errors": self.errors}


class FieldError(ValueError):
    """A field value Jira would refuse; the message is Jira's wording for `errors[field]`."""


def not_found() -> JiraError:
    return JiraError(404, [NOT_FOUND])


def jql_error(message: str) -> JiraError:
    return JiraError(400, [message])


def unsettable(field_id: str) -> FieldError:
    return FieldError(f"Field '{field_id}' cannot be set. It is not on the appropriate screen, or unknown.")


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class SandboxConfig:
    """Start-up options; `SandboxState.reset()` returns the sandbox to exactly these."""

    project_key: str = "QA"
    project_name: str = "Quality Assurance"
    email: str = "sandbox@example.com"
    token: str = "sandbox-token"
    pat: str = "sandbox-pat"
    deployment_type: str = "Server"
    search_lag: float = 0.0
    latency: float = 0.0
    legacy_search: bool = True
    base_url: str | None = None

    def __post_init__(self) -> None:
        if self.deployment_type not in ("Server", "Cloud"):
            raise ValueError(f"deployment_type must be 'Server' or 'Cloud', not {self.deployment_type!r}")
        if not re.fullmatch(r"[A-Z][A-Z0-9_]{0,9}", self.project_key):
            raise ValueError(f"project_key must look like a Jira project key, not {self.project_key!r}")
        if self.search_lag < 0 or self.latency < 0:
            raise ValueError("search_lag and latency must not be negative")

    @property
    def cloud(self) -> bool:
        return self.deployment_type == "Cloud"


# --------------------------------------------------------------------------- reference data


@dataclass(frozen=True)
class Named:
    """A reference value addressed by id or name (priority, issue type, resolution, option, component)."""

    id: str
    name: str
    detail: str = ""


@dataclass(frozen=True)
class Status:
    id: str
    name: str
    category: str
    description: str


@dataclass(frozen=True)
class Transition:
    """A workflow transition: available from `sources`, leads to status `to`; `screen` accepts fields."""

    id: str
    name: str
    to: str
    sources: tuple[str, ...]
    screen: bool = False


@dataclass(frozen=True)
class User:
    account_id: str
    name: str
    display_name: str
    email: str
    time_zone: str = "Europe/Berlin"


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


STATUS_CATEGORIES: dict[str, JsonDict] = {
    "new": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
    "indeterminate": {"id": 4, "key": "indeterminate", "colorName": "yellow", "name": "In Progress"},
    "done": {"id": 3, "key": "done", "colorName": "green", "name": "Done"},
}
STATUSES = (
    Status("10000", "To Do", "new", "Work that has not been started."),
    Status("3", "In Progress", "indeterminate", "The issue is currently being worked on."),
    Status("10001", "In Review", "indeterminate", "The work is waiting for review."),
    Status("10002", "Done", "done", "Work has been completed."),
)
INITIAL_STATUS = "10000"
TRANSITIONS = (
    Transition("11", "Start Progress", "3", ("10000",)),
    Transition("21", "Submit for Review", "10001", ("3",)),
    Transition("31", "Request Changes", "3", ("10001",)),
    Transition("41", "Approve", "10002", ("10001",), screen=True),
    Transition("51", "Stop Progress", "10000", ("3",)),
    Transition("61", "Done", "10002", ("10000", "3"), screen=True),
    Transition("71", "Reopen", "10000", ("10002",)),
)
PRIORITIES = (
    Named("1", "Highest", "#d04437"),
    Named("2", "High", "#f15C75"),
    Named("3", "Medium", "#f79232"),
    Named("4", "Low", "#707070"),
    Named("5", "Lowest", "#999999"),
)
DEFAULT_PRIORITY = "3"
ISSUE_TYPES = (
    Named("10004", "Bug", "A problem which impairs or prevents the functions of the product."),
    Named("10002", "Task", "A task that needs to be done."),
    Named("10005", "Non-conformance", "A deviation from a specification, standard or procedure."),
)
RESOLUTIONS = (
    Named("10000", "Done", "Work has been completed on this issue."),
    Named("10001", "Won't Do", "This issue won't be actioned."),
    Named("10002", "Duplicate", "The problem is a duplicate of an existing issue."),
)
DEFAULT_RESOLUTION = "10000"
SEVERITIES = (Named("10020", "Critical"), Named("10021", "Major"), Named("10022", "Minor"))
COMPONENTS = (Named("10100", "Manufacturing"), Named("10101", "Supplier"), Named("10102", "Software"))

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


def seeded_users(email: str) -> tuple[User, ...]:
    """The sandbox's users; the first one is the authenticated caller."""
    return (
        User("557058:5b10ac8d-sandbox-bot", "sandbox", "Sandbox Bot", email),
        User("712020:9f2c1e7a-dana-0001", "dana", "Dana Quality", "dana@example.com"),
        User("712020:3b8d4f21-sam-0002", "sam", "Sam Engineer", "sam@example.com"),
    )


def find_named(options: Sequence[Named], ref: str, *, by_name: bool = True) -> Named | None:
    """The option whose id (or, if `by_name`, name, case-insensitively) is `ref`."""
    for option in options:
        if option.id == ref or (by_name and option.name.lower() == ref.lower()):
            return option
    return None


def named(options: Sequence[Named], ref: str) -> Named:
    option = find_named(options, ref, by_name=False)
    if option is None:
        raise KeyError(ref)
    return option


def status(status_id: str) -> Status:
    return next(s for s in STATUSES if s.id == status_id)


def transitions_from(status_id: str) -> list[Transition]:
    return [t for t in TRANSITIONS if status_id in t.sources]


# --------------------------------------------------------------------------- field values


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
        """A user by account id, username or email address."""
        ref = ref.lower()
        return next((u for u in self.users if ref in (u.account_id.lower(), u.name, u.email.lower())), None)

    def project_matches(self, ref: str) -> bool:
        """Whether `ref` is the project's id or key (exactly, as in a create request)."""
        return ref in (PROJECT_ID, self.config.project_key)

    def values(self, raw: Any, screen: str) -> tuple[JsonDict, dict[str, str]]:
        """Stored values and Jira-worded errors for a request's `fields` object on `screen`."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise JiraError(400, ["Can not deserialize 'fields': expected an object."])
        values: JsonDict = {}
        errors: dict[str, str] = {}
        for field_id, value in raw.items():
            try:
                values[field_id] = self.normalise(field_id, value, screen)
            except FieldError as exc:
                errors[field_id] = str(exc)
        return values, errors

    def normalise(self, field_id: str, value: Any, screen: str) -> Any:
        spec = FIELDS_BY_ID.get(field_id)
        if spec is None or screen not in spec.screens:
            raise unsettable(field_id)
        return self._normalisers[spec.kind](value)

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
        if value is None:
            return None
        if not isinstance(value, dict):
            raise FieldError("expected Object containing an 'accountId'" if self.config.cloud
                             else "expected Object containing a 'name' property")
        keys = ("accountId",) if self.config.cloud else ("name", "key", "accountId")
        ref = next((str(value[k]) for k in keys if value.get(k) is not None), None)
        if ref is None:
            if self.config.cloud and "name" in value:
                raise FieldError("'accountId' must be the only user identifying query parameter in GDPR strict mode.")
            return None
        user = self.find_user(ref)
        if user is None or (self.config.cloud and user.account_id != ref):
            raise FieldError("Specify a valid value for the user" if self.config.cloud
                             else f"User '{ref}' does not exist.")
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
        return reference(value, RESOLUTIONS, "resolution", "name")


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


# --------------------------------------------------------------------------- issues


@dataclass
class Comment:
    id: str
    body: str
    author: str
    created: float
    updated: float
    visibility: JsonDict | None = None


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


# --------------------------------------------------------------------------- JQL subset

EQ_OPS = frozenset({"=", "!=", "in", "not in", "is", "is not"})
TEXT_OPS = frozenset({"~", "!~", "is", "is not"})
TIME_OPS = frozenset({"=", "!=", ">", ">=", "<", "<=", "is", "is not"})
_TOKEN = re.compile(
    r"""\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|(!=|!~|>=|<=|=|~|>|<|&&|\|\|)|([(),])"""
    r"""|([^\s"'(),=!~<>&|;]+))"""
)
_SYMBOLS = {"&&": "AND", "||": "OR"}
_PERIOD = re.compile(r"([+-]?)\s*((?:\d+\s*[wdhm]\s*)+)")
_DATE_FORMATS = ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d")
_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60}


@dataclass(frozen=True)
class JqlField:
    """A searchable field: `attr` is its key in the stored fields, `domain` how values resolve."""

    name: str
    attr: str
    domain: str
    operators: frozenset[str]


def _jql_fields() -> dict[str, JqlField]:
    table = [
        (("project",), JqlField("project", "project", "project", EQ_OPS)),
        (("key", "issuekey", "id"), JqlField("key", "key", "key", EQ_OPS)),
        (("labels", "label"), JqlField("labels", "labels", "label", EQ_OPS)),
        (("status",), JqlField("status", "status", "status", EQ_OPS)),
        (("issuetype", "type"), JqlField("issuetype", "issuetype", "issuetype", EQ_OPS)),
        (("priority",), JqlField("priority", "priority", "priority", EQ_OPS)),
        (("resolution",), JqlField("resolution", "resolution", "resolution", EQ_OPS)),
        (("assignee",), JqlField("assignee", "assignee", "user", EQ_OPS)),
        (("reporter",), JqlField("reporter", "reporter", "user", EQ_OPS)),
        (("component", "components"), JqlField("component", "components", "component", EQ_OPS)),
        (("summary",), JqlField("summary", "summary", "text", TEXT_OPS)),
        (("description",), JqlField("description", "description", "text", TEXT_OPS)),
        (("text",), JqlField("text", "text", "text", TEXT_OPS)),
        (("severity", "cf[10010]"), JqlField("Severity", "customfield_10010", "option", EQ_OPS)),
        (("nc link", "cf[10011]"), JqlField("NC Link", "customfield_10011", "exact", EQ_OPS)),
        (("root cause", "cf[10012]"), JqlField("Root cause", "customfield_10012", "text", TEXT_OPS)),
        (("created", "createddate"), JqlField("created", "created", "time", TIME_OPS)),
        (("updated", "updateddate"), JqlField("updated", "updated", "time", TIME_OPS)),
    ]
    return {alias: jf for aliases, jf in table for alias in aliases}


JQL_FIELDS = _jql_fields()
TEXT_ATTRS = ("summary", "description", "customfield_10012")
SORT_KEYS: dict[str, Callable[[Issue], Any]] = {
    "key": issue_number, "issuekey": issue_number, "id": issue_number,
    "created": lambda i: i.fields["created"], "updated": lambda i: i.fields["updated"],
    "priority": lambda i: int(i.fields["priority"]), "summary": lambda i: i.fields["summary"].lower(),
}


@dataclass(frozen=True)
class Token:
    text: str
    quoted: bool = False

    @property
    def keyword(self) -> str:
        return "" if self.quoted else _SYMBOLS.get(self.text, self.text.upper())


@dataclass(frozen=True)
class Clause:
    """`field op values`; `targets`/`threshold` are the values resolved against the sandbox's data."""

    field: JqlField
    op: str
    values: tuple[str, ...]
    targets: frozenset[str] = frozenset()
    threshold: float | None = None


@dataclass(frozen=True)
class BoolNode:
    op: str  # "and" | "or" | "not"
    children: tuple[Node, ...]


Node = Clause | BoolNode


@dataclass(frozen=True)
class Query:
    where: Node | None
    order: tuple[tuple[str, bool], ...]  # (sort key, descending)


def tokenize(jql: str) -> list[Token]:
    text, pos, tokens = jql.strip(), 0, []
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            pos += len(text[pos:]) - len(text[pos:].lstrip())
            raise jql_error(f"Error in the JQL Query: The character '{text[pos]}' is a reserved JQL character. "
                            f"(line 1, character {pos + 1})")
        pos = match.end()
        dq, sq, op, punct, word = match.groups()
        quoted = dq if dq is not None else sq
        if quoted is not None:
            tokens.append(Token(re.sub(r"\\(.)", r"\1", quoted), quoted=True))
        else:
            tokens.append(Token(op or punct or word))
    return tokens


class JqlParser:
    """Recursive descent over: expr := term (OR term)*; term := factor (AND factor)*;
    factor := NOT factor | ( expr ) | field op value(s); then an optional ORDER BY list."""

    def __init__(self, jql: str) -> None:
        self.tokens = tokenize(jql)
        self.pos = 0

    def parse(self) -> Query:
        where = None if self._peek() in ("", "ORDER") else self._expr()
        order = self._order_by() if self._peek() == "ORDER" else ()
        if self.pos < len(self.tokens):
            raise self._error(f"Expecting either 'OR' or 'AND' but got '{self.tokens[self.pos].text}'.")
        return Query(where, order)

    def _peek(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.tokens[index].keyword if index < len(self.tokens) else ""

    def _take(self) -> Token:
        if self.pos >= len(self.tokens):
            raise self._error("Unexpected end of query.")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def _expect(self, text: str) -> None:
        token = self._take()
        if token.keyword != text.upper():
            raise self._error(f"Expecting '{text}' but got '{token.text}'.")

    def _error(self, detail: str) -> JiraError:
        return jql_error(f"Error in the JQL Query: {detail}")

    def _expr(self) -> Node:
        return self._chain("OR", "or", self._term)

    def _term(self) -> Node:
        return self._chain("AND", "and", self._factor)

    def _chain(self, keyword: str, op: str, part: Callable[[], Node]) -> Node:
        nodes = [part()]
        while self._peek() == keyword:
            self._take()
            nodes.append(part())
        return nodes[0] if len(nodes) == 1 else BoolNode(op, tuple(nodes))

    def _factor(self) -> Node:
        if self._peek() == "NOT":
            self._take()
            return BoolNode("not", (self._factor(),))
        if self._peek() == "(":
            self._take()
            node = self._expr()
            self._expect(")")
            return node
        return self._clause()

    def _clause(self) -> Clause:
        token = self._take()
        if token.text in "(),=" and not token.quoted:
            raise self._error(f"Expecting a field name but got '{token.text}'.")
        jf = JQL_FIELDS.get(token.text.lower())
        if jf is None:
            raise jql_error(f"Field '{token.text}' does not exist or you do not have permission to view it.")
        op = self._operator()
        if op not in jf.operators:
            raise jql_error(f"The operator '{op}' is not supported by the '{jf.name}' field.")
        return Clause(jf, op, self._operands(op))

    def _operator(self) -> str:
        token = self._take()
        word = token.keyword
        if word == "NOT":
            self._expect("IN")
            return "not in"
        if word == "IS":
            if self._peek() == "NOT":
                self._take()
                return "is not"
            return "is"
        if word == "IN":
            return "in"
        if not token.quoted and token.text in ("=", "!=", "~", "!~", ">", ">=", "<", "<="):
            return token.text
        raise self._error(f"Expecting operator but got '{token.text}'.")

    def _operands(self, op: str) -> tuple[str, ...]:
        if op in ("is", "is not"):
            token = self._take()
            if token.keyword not in ("EMPTY", "NULL"):
                raise self._error(f"Expecting 'EMPTY' or 'NULL' but got '{token.text}'.")
            return ()
        if op not in ("in", "not in"):
            return (self._value(),)
        self._expect("(")
        values = [self._value()]
        while self._peek() == ",":
            self._take()
            values.append(self._value())
        self._expect(")")
        return tuple(values)

    def _value(self) -> str:
        token = self._take()
        if token.quoted:
            return token.text
        if token.text in "(),":
            raise self._error(f"Expecting a value but got '{token.text}'.")
        if self._peek() == "(" and self._peek(1) == ")":
            self.pos += 2
            return token.text + "()"
        return token.text

    def _order_by(self) -> tuple[tuple[str, bool], ...]:
        self._take()
        self._expect("BY")
        order = [self._sort_key()]
        while self._peek() == ",":
            self._take()
            order.append(self._sort_key())
        return tuple(order)

    def _sort_key(self) -> tuple[str, bool]:
        name = self._take().text.lower()
        if name not in SORT_KEYS:
            if name in JQL_FIELDS:
                raise jql_error(f"Field '{name}' does not support sorting.")
            raise jql_error(f"Field '{name}' does not exist or you do not have permission to view it.")
        descending = False
        if self._peek() in ("ASC", "DESC"):
            descending = self._take().keyword == "DESC"
        return name, descending


def parse_jql(jql: str) -> Query:
    return JqlParser(jql).parse()


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def text_matches(haystack: str, needle: str) -> bool:
    """Jira-ish `~`: every term of `needle` occurs as a word in `haystack` (a trailing * matches a prefix)."""
    have = words(haystack)
    for term in re.findall(r"[\w*]+", needle.lower()):
        stem = term.rstrip("*")
        if not stem:
            continue
        if not (any(w.startswith(stem) for w in have) if term.endswith("*") else stem in have):
            return False
    return True


def field_text(view: JsonDict, attr: str) -> str:
    if attr == "text":
        return " ".join(str(view.get(a) or "") for a in TEXT_ATTRS)
    return str(view.get(attr) or "")


def clause_matches(clause: Clause, view: JsonDict) -> bool:
    jf, op = clause.field, clause.op
    value = view.get(jf.attr) if jf.attr != "text" else field_text(view, "text")
    if op in ("is", "is not"):
        empty = value in (None, [], "")
        return empty if op == "is" else not empty
    if jf.domain == "text":
        if not value:
            return False
        hit = text_matches(field_text(view, jf.attr), clause.values[0])
        return hit if op == "~" else not hit
    if jf.domain == "time":
        return isinstance(value, int | float) and compare_time(op, float(value), clause.threshold or 0.0)
    present = {stored_form(jf, item) for item in as_list(value)}
    hit = bool(present & clause.targets)
    if op in ("=", "in"):
        return hit
    return bool(present) and not hit  # like Jira, != and NOT IN never match an empty field


def as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def stored_form(jf: JqlField, item: Any) -> str:
    """How a stored value compares with resolved JQL values (labels case-insensitively, as Jira >= 7.10)."""
    return str(item).lower() if jf.domain == "label" else str(item)


def compare_time(op: str, value: float, threshold: float) -> bool:
    return {
        "=": value == threshold, "!=": value != threshold, ">": value > threshold,
        ">=": value >= threshold, "<": value < threshold, "<=": value <= threshold,
    }[op]


def evaluate(node: Node, view: JsonDict) -> bool:
    if isinstance(node, Clause):
        return clause_matches(node, view)
    if node.op == "not":
        return not evaluate(node.children[0], view)
    results = (evaluate(child, view) for child in node.children)
    return all(results) if node.op == "and" else any(results)


def parse_time(raw: str, now: float, field_name: str) -> float:
    """A JQL date: absolute ('2024-05-01', '2024/05/01 10:30') or relative ('-5d', '-1w 2d', 'now()')."""
    if raw.lower() == "now()":
        return now
    match = _PERIOD.fullmatch(raw.strip())
    if match:
        seconds = sum(int(n) * _SECONDS[u] for n, u in re.findall(r"(\d+)\s*([wdhm])", match.group(2)))
        return now - seconds if match.group(1) == "-" else now + seconds
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(raw, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    raise jql_error(f"Date value '{raw}' for field '{field_name}' is invalid. Valid formats include: "
                    "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format "
                    "e.g. '-5d', '4w 2d'.")


# --------------------------------------------------------------------------- faults and the request log


@dataclass
class FaultRule:
    """Answer the next `count` matching requests (None: all of them) with fault `kind`."""

    kind: str
    count: int | None = 1
    retry_after: int | None = 1
    seconds: float = 30.0
    method: str = "*"
    path: str = "*"

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and fnmatch.fnmatchcase(path, self.path)

    def to_json(self) -> JsonDict:
        return {"kind": self.kind, "count": self.count, "retryAfter": self.retry_after,
                "seconds": self.seconds, "method": self.method, "path": self.path}


@dataclass
class LatencyRule:
    seconds: float
    method: str = "*"
    path: str = "*"

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and fnmatch.fnmatchcase(path, self.path)

    def to_json(self) -> JsonDict:
        return {"seconds": self.seconds, "method": self.method, "path": self.path}


@dataclass(frozen=True)
class Quota:
    """Where a request the budget counts left its window (Jira Cloud's X-RateLimit-* answer headers)."""

    limit: int
    remaining: int  # slots left in the window after this request; 0 for a refused one
    retry_after: int | None = None  # refused: whole seconds until the window frees a slot

    @property
    def near_limit(self) -> bool:
        """Jira Cloud's X-RateLimit-NearLimit: less than 20% of the budget is left."""
        return self.remaining < self.limit * NEAR_LIMIT_SHARE

    def headers(self) -> list[tuple[str, str]]:
        """X-RateLimit-Limit and -Remaining, plus X-RateLimit-NearLimit: true when near the limit."""
        found = [("X-RateLimit-Limit", str(self.limit)), ("X-RateLimit-Remaining", str(self.remaining))]
        return [*found, ("X-RateLimit-NearLimit", "true")] if self.near_limit else found


@dataclass
class Budget:
    """At most `limit` requests with one of `methods` per sliding `window` seconds (per issue if `per_issue`)."""

    limit: int
    window: float
    methods: tuple[str, ...] = WRITE_METHODS
    per_issue: bool = False
    hits: dict[str, deque[float]] = field(default_factory=dict)

    def admit(self, method: str, path: str, now: float) -> Quota | None:
        """None when the budget does not count this request; else its quota, refused if `retry_after` is set."""
        bucket_key = self._bucket(method, path)
        if bucket_key is None:
            return None
        bucket = self.hits.setdefault(bucket_key, deque())
        while bucket and bucket[0] <= now - self.window:
            bucket.popleft()
        if len(bucket) < self.limit:
            bucket.append(now)
            return Quota(self.limit, self.limit - len(bucket))
        return Quota(self.limit, 0, max(1, math.ceil(bucket[0] + self.window - now)))

    def refusal(self, quota: Quota) -> Fault:
        """The 429 for a refused request, with RateLimit-Reason as Jira Cloud names these limits."""
        reason = "jira-per-issue-on-write" if self.per_issue else "jira-burst-based"
        return Fault("budget", quota.retry_after, limit=self.limit, window=self.window, reason=reason)

    def _bucket(self, method: str, path: str) -> str | None:
        if method not in self.methods or not path.startswith("/rest/api/") or "/search" in path:
            return None  # POST /search is a read
        if not self.per_issue:
            return ""
        match = re.match(r"/rest/api/[^/]+/issue/([^/]+)", path)
        return match.group(1).upper() if match else None

    def to_json(self) -> JsonDict:
        return {"limit": self.limit, "window": self.window, "methods": list(self.methods),
                "perIssue": self.per_issue}


@dataclass(frozen=True)
class Fault:
    """The fault chosen for one request."""

    kind: str  # a FAULT_KINDS entry, or "budget" (a 429 from the rate-limit budget)
    retry_after: int | None = None
    seconds: float = 0.0
    limit: int | None = None
    window: float | None = None
    reason: str = "jira-quota-tenant-based"

    @property
    def status(self) -> int | None:
        return {"rate_limit": 429, "budget": 429, "unavailable": 503}.get(self.kind)


@dataclass
class RequestRecord:
    """One request as the sandbox saw it; `time` is its arrival, `answered` when the answer was ready."""

    seq: int
    method: str
    path: str
    query: str
    time: float
    body: Any = None
    status: int | None = None
    answered: float | None = None
    fault: str | None = None
    retry_after: int | None = None
    delivered: bool = True

    def to_json(self) -> JsonDict:
        return {"seq": self.seq, "method": self.method, "path": self.path, "query": self.query,
                "time": self.time, "answered": self.answered, "status": self.status, "fault": self.fault,
                "retryAfter": self.retry_after, "delivered": self.delivered, "body": self.body}


@dataclass(frozen=True)
class Decision:
    """What the middleware must do with a request: wait `latency`, then apply `fault` (if any).

    `quota`: set when the rate-limit budget counted the request (its answer carries X-RateLimit-*).
    """

    record: RequestRecord
    latency: float
    fault: Fault | None
    quota: Quota | None = None


def parse_fault_rule(spec: Any) -> FaultRule:
    if not isinstance(spec, dict):
        raise ValueError("each fault must be an object")
    unknown = set(spec) - {"kind", "count", "retryAfter", "seconds", "method", "path"}
    if unknown:
        raise ValueError(f"unknown fault keys: {sorted(unknown)}")
    kind = FAULT_ALIASES.get(str(spec.get("kind")), str(spec.get("kind")))
    if kind not in FAULT_KINDS:
        raise ValueError(f"fault kind must be one of {list(FAULT_KINDS) + list(FAULT_ALIASES)}")
    count = spec.get("count", 1)
    retry_after = spec.get("retryAfter", 1)
    if count is not None and (not isinstance(count, int) or count < 1):
        raise ValueError("count must be a positive integer or null (always)")
    if retry_after is not None and (not isinstance(retry_after, int) or retry_after < 0):
        raise ValueError("retryAfter must be a whole number of seconds (Jira sends integers) or null")
    return FaultRule(kind, count, retry_after, _seconds(spec.get("seconds", 30.0)),
                     str(spec.get("method", "*")).upper(), str(spec.get("path", "*")))


def parse_latency(spec: Any) -> list[LatencyRule]:
    if spec is None:
        return []
    if isinstance(spec, int | float):
        return [LatencyRule(_seconds(spec))] if spec else []
    items = spec if isinstance(spec, list) else [spec]
    rules = []
    for item in items:
        if not isinstance(item, dict) or set(item) - {"seconds", "method", "path"}:
            raise ValueError("latency must be seconds, or {seconds, method?, path?}, or a list of those")
        rules.append(LatencyRule(_seconds(item.get("seconds", 0)), str(item.get("method", "*")).upper(),
                                 str(item.get("path", "*"))))
    return rules


def parse_budget(spec: Any) -> Budget | None:
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) - {"limit", "window", "methods", "perIssue"}:
        raise ValueError("budget must be {limit, window, methods?, perIssue?} or null")
    limit = spec.get("limit")
    if not isinstance(limit, int) or limit < 1:
        raise ValueError("budget.limit must be a positive integer")
    methods = tuple(str(m).upper() for m in spec.get("methods", WRITE_METHODS))
    return Budget(limit, _seconds(spec.get("window", 60)) or 1.0, methods, bool(spec.get("perIssue", False)))


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"expected a non-negative number of seconds, not {value!r}")
    return float(value)


# --------------------------------------------------------------------------- the state


class SandboxState:
    """The sandbox's whole mutable world, thread-safe: issues, faults, the request log and counters."""

    def __init__(self, config: SandboxConfig | None = None, *, clock: Clock = time.time,
                 sleep: Sleeper = time.sleep) -> None:
        self.config = config or SandboxConfig()
        self.catalog = Catalog(self.config)
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.RLock()
        self.reset()

    # ---- lifecycle

    def reset(self) -> None:
        """Forget all issues, requests, counters and faults; back to the start-up configuration."""
        with self._lock:
            self._issues: dict[str, Issue] = {}
            self._next_issue = 0
            self._next_comment = 10000
            self._next_link = 10000
            self._counters: Counter[str] = Counter()
            self._faults_served: Counter[str] = Counter()
            self._log: deque[RequestRecord] = deque(maxlen=LOG_LIMIT)
            self._seq = 0
            self._rules: list[FaultRule] = []
            self._latency = parse_latency(self.config.latency)
            self._budget: Budget | None = None
            self._search_lag = self.config.search_lag

    @property
    def search_lag(self) -> float:
        return self._search_lag

    @search_lag.setter
    def search_lag(self, seconds: float) -> None:
        with self._lock:
            self._search_lag = _seconds(seconds)

    # ---- issues

    def create_issue(self, raw_fields: Any, actor: str) -> Issue:
        values, errors = self.catalog.values(raw_fields, "create")
        for field_id, message in (("project", "Specify a valid project ID or key"),
                                  ("issuetype", "Specify an issue type"),
                                  ("summary", "You must specify a summary of the issue.")):
            if field_id not in values and field_id not in errors:
                errors[field_id] = message
        if errors:
            raise JiraError(400, [], errors)
        with self._lock:
            now = self.clock()
            self._next_issue += 1
            fields = self._new_fields(values, actor, now)
            issue = Issue(str(10000 + self._next_issue), f"{self.config.project_key}-{self._next_issue}", fields)
            self._issues[issue.key] = issue
            self._touch(issue, now)
            self._counters["creates"] += 1
            return copy.deepcopy(issue)

    def _new_fields(self, values: JsonDict, actor: str, now: float) -> JsonDict:
        defaults: JsonDict = {spec.id: None for spec in FIELDS if spec.kind not in ("comments",)}
        defaults.update(labels=[], components=[], priority=DEFAULT_PRIORITY, status=INITIAL_STATUS,
                        reporter=actor, creator=actor, created=now)
        return {**defaults, **values}

    def issue(self, ref: str) -> Issue:
        with self._lock:
            return copy.deepcopy(self._find(ref))

    def issues(self) -> list[Issue]:
        with self._lock:
            return [copy.deepcopy(issue) for issue in self._issues.values()]

    def _find(self, ref: str) -> Issue:
        issue = self._issues.get(ref.upper()) or next((i for i in self._issues.values() if i.id == ref), None)
        if issue is None:
            raise not_found()
        return issue

    def _touch(self, issue: Issue, now: float) -> None:
        """Record a write: bump `updated` and queue the new state for the (lagging) search index."""
        issue.fields["updated"] = now
        issue.versions.append((now, issue.index_view()))
        del issue.versions[:-SNAPSHOT_LIMIT]

    def update_issue(self, ref: str, raw_fields: Any, raw_update: Any, actor: str) -> Issue:
        with self._lock:
            issue = self._find(ref)
            values, errors = self.catalog.values(raw_fields, "edit")
            merged = {**issue.fields, **values}
            comments = self._apply_operations(merged, raw_update, "edit", errors)
            if errors:
                raise JiraError(400, [], errors)
            issue.fields = merged
            now = self.clock()
            for body in comments:
                self._append_comment(issue, body, actor, None, now)
            self._touch(issue, now)
            self._counters["updates"] += 1
            return copy.deepcopy(issue)

    def _apply_operations(self, fields: JsonDict, raw_update: Any, screen: str, errors: dict[str, str]) -> list[str]:
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

    def delete_issue(self, ref: str) -> None:
        with self._lock:
            issue = self._find(ref)
            del self._issues[issue.key]
            self._counters["deletes"] += 1

    # ---- workflow

    def transitions(self, ref: str) -> tuple[Issue, list[Transition]]:
        with self._lock:
            issue = self._find(ref)
            return copy.deepcopy(issue), transitions_from(issue.fields["status"])

    def transition(self, ref: str, body: JsonDict, actor: str) -> Issue:
        with self._lock:
            issue = self._find(ref)
            chosen = self._chosen_transition(issue, body.get("transition"))
            values, errors = self.catalog.values(body.get("fields"), "transition" if chosen.screen else "none")
            merged = {**issue.fields, **values}
            comments = self._apply_operations(merged, body.get("update"), "edit", errors)
            if errors:
                raise JiraError(400, [], errors)
            now = self.clock()
            self._enter_status(merged, chosen.to, now)
            issue.fields = merged
            for text in comments:
                self._append_comment(issue, text, actor, None, now)
            self._touch(issue, now)
            self._counters["transitions"] += 1
            return copy.deepcopy(issue)

    def _chosen_transition(self, issue: Issue, ref: Any) -> Transition:
        if not isinstance(ref, dict) or ref.get("id") is None:
            raise JiraError(400, ["Missing 'transition' identifier"])
        wanted = str(ref["id"])
        chosen = next((t for t in transitions_from(issue.fields["status"]) if t.id == wanted), None)
        if chosen is None:
            raise JiraError(400, [f"Transition id '{wanted}' is not valid for this issue."])
        return chosen

    @staticmethod
    def _enter_status(fields: JsonDict, status_id: str, now: float) -> None:
        fields["status"] = status_id
        if status(status_id).category == "done":
            fields["resolution"] = fields.get("resolution") or DEFAULT_RESOLUTION
            fields["resolutiondate"] = now
        else:
            fields["resolution"] = None
            fields["resolutiondate"] = None

    # ---- comments

    def add_comment(self, ref: str, body: Any, actor: str, visibility: Any = None) -> tuple[Issue, Comment]:
        with self._lock:
            issue = self._find(ref)
            text = comment_body(body)
            if visibility is not None and not isinstance(visibility, dict):
                raise JiraError(400, [], {"visibility": "'visibility' must be an object."})
            now = self.clock()
            comment = self._append_comment(issue, text, actor, visibility, now)
            self._touch(issue, now)
            return copy.deepcopy(issue), copy.deepcopy(comment)

    def _append_comment(self, issue: Issue, text: str, actor: str, visibility: JsonDict | None,
                        now: float) -> Comment:
        self._next_comment += 1
        comment = Comment(str(self._next_comment), text, actor, now, now, visibility)
        issue.comments.append(comment)
        self._counters["comments"] += 1
        return comment

    # ---- remote links

    def upsert_remote_link(self, ref: str, payload: Any) -> tuple[Issue, RemoteLink, bool]:
        """Add a remote link, or update the one with the same globalId; True when it was added."""
        with self._lock:
            issue = self._find(ref)
            global_id, obj, application, relationship = remote_link_parts(payload)
            link = next((lk for lk in issue.remote_links if global_id and lk.global_id == global_id), None)
            created = link is None
            if link is None:
                self._next_link += 1
                link = RemoteLink(self._next_link, global_id, obj, application, relationship)
                issue.remote_links.append(link)
            else:
                link.object, link.application, link.relationship = obj, application, relationship
            self._counters["remoteLinksCreated" if created else "remoteLinksUpdated"] += 1
            return copy.deepcopy(issue), copy.deepcopy(link), created

    def remote_link(self, ref: str, link_id: str) -> tuple[Issue, RemoteLink]:
        with self._lock:
            issue = self._find(ref)
            link = next((lk for lk in issue.remote_links if str(lk.id) == link_id), None)
            if link is None:
                raise JiraError(404, [f"No remote link with id '{link_id}' exists on this issue."])
            return copy.deepcopy(issue), copy.deepcopy(link)

    def delete_remote_link(self, ref: str, link_id: str) -> None:
        with self._lock:
            _, link = self.remote_link(ref, link_id)
            live = self._find(ref)
            live.remote_links = [lk for lk in live.remote_links if lk.id != link.id]
            self._counters["remoteLinksDeleted"] += 1

    # ---- search

    def search(self, jql: str, actor: str, *, reconcile: Iterable[str] = (), strict: bool = True,
               bounded: bool = False) -> list[Issue]:
        """Issues matching `jql` as the (lagging) index sees them; `reconcile` ids are read fresh."""
        query = parse_jql(jql or "")
        with self._lock:
            self._counters["searches"] += 1
            if bounded and query.where is None:
                raise jql_error("Unbounded JQL queries are not allowed here. "
                                "Please add a search restriction to your query.")
            now = self.clock()
            where = self._resolve(query.where, actor, strict, now) if query.where else None
            fresh = {str(r) for r in reconcile}
            hits = [i for i in self._issues.values() if self._visible(i, where, now, fresh)]
            return [copy.deepcopy(i) for i in sort_issues(hits, query.order)]

    def _visible(self, issue: Issue, where: Node | None, now: float, fresh: set[str]) -> bool:
        view = issue.index_view() if issue.id in fresh else self._indexed(issue, now)
        return view is not None and (where is None or evaluate(where, view))

    def _indexed(self, issue: Issue, now: float) -> JsonDict | None:
        cutoff = now - self._search_lag
        seen = [view for written, view in issue.versions if written <= cutoff]
        return seen[-1] if seen else None

    def _resolve(self, node: Node, actor: str, strict: bool, now: float) -> Node:
        if isinstance(node, BoolNode):
            return BoolNode(node.op, tuple(self._resolve(c, actor, strict, now) for c in node.children))
        if node.field.domain == "time":
            threshold = parse_time(node.values[0], now, node.field.name) if node.values else None
            return dataclasses.replace(node, threshold=threshold)
        targets = {self._resolve_value(node.field, raw, actor, strict) for raw in node.values}
        return dataclasses.replace(node, targets=frozenset(t for t in targets if t is not None))

    def _resolve_value(self, jf: JqlField, raw: str, actor: str, strict: bool) -> str | None:
        resolved = self._lookup(jf.domain, raw, actor)
        if resolved is None and strict:
            if jf.domain == "key":
                raise jql_error(f"An issue with key '{raw}' does not exist for field 'key'.")
            raise jql_error(f"The value '{raw}' does not exist for the field '{jf.name}'.")
        return resolved

    def _lookup(self, domain: str, raw: str, actor: str) -> str | None:
        """The stored form of JQL value `raw` in `domain`, or None when nothing has that value."""
        if domain == "label":
            return raw.lower()
        if domain in ("exact", "text"):
            return raw
        if domain == "project":
            names = (PROJECT_ID, self.config.project_key.lower(), self.config.project_name.lower())
            return PROJECT_ID if raw.lower() in names else None
        if domain == "key":
            issue = self._issues.get(raw.upper()) or next((i for i in self._issues.values() if i.id == raw), None)
            return issue.key if issue else None
        if domain == "user":
            user = self.catalog.user(actor) if raw.lower() == "currentuser()" else self.catalog.find_user(raw)
            return user.account_id if user else None
        if domain == "status":
            found = next((s for s in STATUSES if raw == s.id or s.name.lower() == raw.lower()), None)
            return found.id if found else None
        tables = {"issuetype": ISSUE_TYPES, "priority": PRIORITIES, "resolution": RESOLUTIONS,
                  "option": SEVERITIES, "component": COMPONENTS}
        option = find_named(tables[domain], raw)
        return option.id if option else None

    # ---- faults

    def add_fault(self, kind: str, count: int | None = 1, *, retry_after: int | None = 1, seconds: float = 30.0,
                  method: str = "*", path: str = "*") -> None:
        """Queue a fault for the next `count` matching /rest/ requests (kinds: see FAULT_KINDS)."""
        rule = parse_fault_rule({"kind": kind, "count": count, "retryAfter": retry_after, "seconds": seconds,
                                 "method": method, "path": path})
        with self._lock:
            self._rules.append(rule)

    def set_latency(self, seconds: float, *, method: str = "*", path: str = "*") -> None:
        """Delay every matching /rest/ request by `seconds` (replaces earlier latency rules; 0 clears)."""
        rules = parse_latency({"seconds": seconds, "method": method, "path": path}) if seconds else []
        with self._lock:
            self._latency = rules

    def set_budget(self, limit: int, window: float, *, methods: Sequence[str] = WRITE_METHODS,
                   per_issue: bool = False) -> None:
        """Allow at most `limit` `methods` requests per sliding `window` seconds; beyond that answer 429."""
        budget = parse_budget({"limit": limit, "window": window, "methods": list(methods), "perIssue": per_issue})
        with self._lock:
            self._budget = budget

    def clear_faults(self) -> None:
        """Remove queued faults, latency rules and the budget (search lag stays)."""
        with self._lock:
            self._rules, self._latency, self._budget = [], [], None

    def configure_faults(self, spec: Any) -> JsonDict:
        """Apply a /_sandbox/faults JSON document (validated as a whole first); return the new settings."""
        if not isinstance(spec, dict):
            raise ValueError("expected a JSON object")
        unknown = set(spec) - {"clear", "latency", "faults", "budget", "searchLag"}
        if unknown:
            raise ValueError(f"unknown keys: {sorted(unknown)}")
        raw_rules = spec.get("faults", [])
        if not isinstance(raw_rules, list):
            raise ValueError("faults must be a list")
        rules = [parse_fault_rule(item) for item in raw_rules]
        latency = parse_latency(spec["latency"]) if "latency" in spec else None
        budget = parse_budget(spec["budget"]) if "budget" in spec else None
        lag = _seconds(spec["searchLag"]) if "searchLag" in spec else None
        with self._lock:
            if spec.get("clear"):
                self.clear_faults()
            self._rules.extend(rules)
            if latency is not None:
                self._latency = latency
            if "budget" in spec:
                self._budget = budget
            if lag is not None:
                self._search_lag = lag
            return self.faults()

    def faults(self) -> JsonDict:
        with self._lock:
            return {"faults": [r.to_json() for r in self._rules], "latency": [r.to_json() for r in self._latency],
                    "budget": self._budget.to_json() if self._budget else None, "searchLag": self._search_lag}

    # ---- the request log

    def begin_request(self, method: str, path: str, query: str = "", body: Any = None) -> Decision:
        """Log a request's arrival and decide its latency and fault (consuming one use of a fault rule)."""
        with self._lock:
            now = self.clock()
            self._seq += 1
            record = RequestRecord(self._seq, method, path, query, now, body)
            self._log.append(record)
            latency = sum(rule.seconds for rule in self._latency if rule.matches(method, path))
            fault = self._take_fault(method, path)  # a request a fault rule answers is not counted
            budget = self._budget if fault is None else None
            quota = budget.admit(method, path, now) if budget is not None else None
            if budget is not None and quota is not None and quota.retry_after is not None:
                fault = budget.refusal(quota)
            if fault is not None:
                record.fault = fault.kind
                self._faults_served[fault.kind] += 1
            return Decision(record, latency, fault, quota)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        rule = next((r for r in self._rules if r.matches(method, path)), None)
        if rule is None:
            return None
        if rule.count is not None:
            rule.count -= 1
            if rule.count <= 0:
                self._rules.remove(rule)
        return Fault(rule.kind, rule.retry_after, rule.seconds)

    def end_request(self, decision: Decision, status: int | None, *, delivered: bool = True,
                    retry_after: int | None = None) -> None:
        with self._lock:
            record = decision.record
            record.status, record.delivered, record.retry_after = status, delivered, retry_after
            record.answered = self.clock()

    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return [dataclasses.replace(record) for record in self._log]

    def retry_after_violations(self, *, same_path: bool = False, grace: float = 0.0) -> list[JsonDict]:
        """Requests that arrived after a Retry-After answer was sent but before it had elapsed.

        Global by default (Jira's limits are per tenant); `same_path` only counts repeats of the limited
        method and path. `grace`: requests arriving within that many seconds of the answer count as
        already in flight (another client of the same tenant could not have known yet).
        """
        records = self.requests()
        found = []
        for index, limited in enumerate(records):
            if limited.retry_after is None or limited.answered is None:
                continue
            not_before = limited.answered + limited.retry_after
            for later in records[index + 1:]:
                if later.time >= not_before:
                    break  # the log is in arrival order
                same = (later.method, later.path) == (limited.method, limited.path)
                if later.time >= limited.answered + grace and (same or not same_path):
                    found.append({"limited": limited.seq, "request": later.seq, "arrived": later.time,
                                  "notBefore": not_before, "early": not_before - later.time})
        return found

    # ---- counters

    def stats(self) -> JsonDict:
        with self._lock:
            names = ("creates", "updates", "transitions", "comments", "remoteLinksCreated",
                     "remoteLinksUpdated", "remoteLinksDeleted", "deletes", "searches")
            stats: JsonDict = {name: self._counters[name] for name in names}
            stats.update(issues=len(self._issues), requests=self._seq,
                         faultsServed={kind: self._faults_served[kind] for kind in (*FAULT_KINDS, "budget")},
                         faultsServedTotal=sum(self._faults_served.values()))
        stats["retryAfterViolations"] = len(self.retry_after_violations())
        return stats


def sort_issues(issues: list[Issue], order: Sequence[tuple[str, bool]]) -> list[Issue]:
    """Sort like ORDER BY (stable, last key first); without one, newest first."""
    result = sorted(issues, key=issue_number, reverse=True)
    for name, descending in reversed(order):
        result.sort(key=SORT_KEYS[name], reverse=descending)
    return result


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


def remote_link_parts(payload: Any) -> tuple[str | None, JsonDict, JsonDict, str | None]:
    """Validate a remote link request: (globalId, object, application, relationship)."""
    if not isinstance(payload, dict):
        raise JiraError(400, ["Can not deserialize the remote link: expected an object."])
    obj = payload.get("object")
    errors = {}
    if not isinstance(obj, dict):
        errors["object"] = "'object' is required."
    else:
        for key in ("url", "title"):
            if not isinstance(obj.get(key), str) or not obj[key]:
                errors[key] = f"'{key}' is required."
    global_id = payload.get("globalId")
    if global_id is not None and (not isinstance(global_id, str) or len(global_id) > LINE_LIMIT):
        errors["globalId"] = "globalId must be a string of at most 255 characters."
    application = payload.get("application") or {}
    if not isinstance(application, dict):
        errors["application"] = "'application' must be an object."
    relationship = payload.get("relationship")
    if errors:
        raise JiraError(400, [], errors)
    assert isinstance(obj, dict)
    return global_id, obj, application, relationship if isinstance(relationship, str) else None
