"""The mapping's data model: a loaded Mapping and its Rules, MappingError, the Resolver rendering asks.

Also the vocabulary every stage shares: the schema version this connector reads, the documented NC
and comment keys templates may use, the defaults a file may leave out, and the two helpers that
word messages (a key path as TOML spells it, a did-you-mean suggestion).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from jinja2 import Template

from connector.jira.field_shapes import JiraField

__all__ = ["COMMENT_KEYS", "DEFAULT_COMMENT", "DEFAULT_LINK_TITLE", "DEFAULT_MARKER", "JIRA_DEFAULT_PRIORITIES",
           "JIRA_DEFAULT_STATUSES", "NC_KEYS", "SCHEMA_VERSION", "Mapping", "MappingError", "Resolver", "Rule",
           "key_path", "suggest"]

SCHEMA_VERSION = 1
NC_KEYS = frozenset({"ncId", "eventType", "timestamp", "title", "description", "status", "severity", "owner",
                     "dueAt", "url", "risk", "tags", "fields", "changedFields", "comment", "qualioStatus"})
COMMENT_KEYS = frozenset({"id", "author", "createdAt", "body"})
JIRA_DEFAULT_PRIORITIES = ("Highest", "High", "Medium", "Low", "Lowest")
JIRA_DEFAULT_STATUSES = ("To Do", "In Progress", "Done")
DEFAULT_MARKER = "qualio-nc-{nc_id}"
DEFAULT_COMMENT = ("*{{ comment.author | default('Someone', true) }}* commented in Qualio"
                   "{% if comment.createdAt %} ({{ comment.createdAt }}){% endif %}:\n\n{{ comment.body }}")
DEFAULT_LINK_TITLE = "Qualio {{ nc.ncId }}{% if nc.title %}: {{ nc.title }}{% endif %}"

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class MappingError(ValueError):
    """A mapping file is invalid, or a template failed; each problem names the file and the key."""

    def __init__(self, path: str, problems: list[str]) -> None:
        super().__init__("\n".join(f"{path}: {problem}" for problem in problems))
        self.path = path
        self.problems = tuple(problems)


class Resolver(Protocol):
    """The Jira look-ups rendering needs; the sync engine passes a Jira-backed one.

    ``field`` answers a FieldInfo or any object with ``id``, ``schema_type`` and ``items`` (such as
    the Jira gateway's own FieldInfo), or None when Jira has no such field. ``user`` answers an
    e-mail or id as the deployment's user fields take it (``{"accountId": ...}`` on Cloud,
    ``{"name": ...}`` on Server/Data Center), or None when Jira has no such user.
    """

    def field(self, name_or_id: str) -> JiraField | None: ...

    def user(self, ref: str) -> dict[str, str] | None: ...


@dataclass(frozen=True)
class Rule:
    """Where one value comes from: a static value, a template or an NC key, optionally mapped."""

    name: str  # the Jira field as written in the file ("priority", "Severity", "customfield_10010")
    key: str  # where the rule sits in the file, for messages ("fields.priority")
    value: Any = None
    template: str = ""
    source: str = ""
    value_map: dict[str, Any] = field(default_factory=dict)
    default: Any = None
    allowed: tuple[str, ...] = ()
    type: str = ""


@dataclass(frozen=True)
class Mapping:
    """A loaded, validated mapping; templates are compiled once, at load."""

    path: str
    project: str  # "" means use settings.jira_project
    issue_type: str
    marker_label: str  # contains {nc_id}
    fields: tuple[Rule, ...]
    status: Rule | None
    resolutions: dict[str, str]  # status target as written in the file -> resolution to set on the way there
    comment_template: str
    remote_link_url: str
    remote_link_title: str
    nc_keys: frozenset[str] = NC_KEYS
    comment_keys: frozenset[str] = COMMENT_KEYS
    templates: dict[str, Template] = field(default_factory=dict, repr=False, compare=False)


def key_path(base: str, *parts: str) -> str:
    """A key path for messages: base (already a path) plus parts, quoted as TOML would need."""
    quoted = [part if _BARE_KEY.match(part) else f'"{part}"' for part in parts]
    return ".".join([base, *quoted] if base else quoted)


def suggest(word: str, choices: Any) -> str:
    """A did-you-mean hint naming the closest of choices; "" when none is close."""
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
