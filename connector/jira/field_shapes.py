"""How a plain value becomes the JSON a Jira REST v2 field expects, by Jira field type (pure).

A mapping produces plain values (strings, numbers, lists). Jira wants each field in the shape
of its type: ``{"value": x}`` for a select list, ``{"name": x}`` for a priority, and so on.
The table below is the whole rule set; ``shape`` applies it. Jira's text limits (``cut``,
``single_line``, ``label``) live here too.

A value that does not fit its type (``"soon"`` for a number field) raises ``ShapeError``: that
is a data problem, not a mapping bug, and the caller decides what to do (the renderer leaves the
field out and logs it, so one odd value cannot block a sync).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol


class JiraField(Protocol):
    """What shaping reads from a field description: a FieldInfo, or any object with these."""

    @property
    def id(self) -> str: ...

    @property
    def schema_type(self) -> str: ...

    @property
    def items(self) -> str | None: ...


@dataclass(frozen=True)
class FieldInfo:
    """One Jira field as Jira describes it: id, display name, schema type, array item type."""

    id: str
    name: str
    schema_type: str
    items: str | None = None


class ShapeError(ValueError):
    """A value does not fit the Jira field type."""


# Jira's system fields, so the common ones need no Jira round trip to know their type.
SYSTEM_FIELDS: dict[str, FieldInfo] = {
    info.id: info
    for info in (
        FieldInfo("summary", "Summary", "string"),
        FieldInfo("description", "Description", "string"),
        FieldInfo("environment", "Environment", "string"),
        FieldInfo("priority", "Priority", "priority"),
        FieldInfo("duedate", "Due date", "date"),
        FieldInfo("labels", "Labels", "array", "string"),
        FieldInfo("components", "Components", "array", "component"),
        FieldInfo("fixVersions", "Fix versions", "array", "version"),
        FieldInfo("versions", "Affects versions", "array", "version"),
        FieldInfo("assignee", "Assignee", "user"),
        FieldInfo("reporter", "Reporter", "user"),
    )
}

# Types whose JSON is {"name": value}.
_BY_NAME = frozenset({"priority", "component", "version", "issuetype", "group", "resolution",
                      "securitylevel"})
SCALAR_TYPES = frozenset({"string", "number", "date", "datetime", "option", "user", "project", "any"}
                         | _BY_NAME)
# What a mapping may declare as `type`: a scalar type, or "array:<scalar type>".
DECLARABLE_TYPES = tuple(sorted(SCALAR_TYPES)) + tuple(f"array:{t}" for t in sorted(SCALAR_TYPES))

SUMMARY_LIMIT = 255  # Jira's text limits, counted in UTF-16 code units as Jira (Java) counts them
TEXT_LIMIT = 32767
_LABEL_UNSAFE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A user (e-mail or id) -> the JSON a user field takes in this deployment ({"accountId": ...} on
# Cloud, {"name": ...} on Server/Data Center), or None when Jira has no such user.
UserLookup = Callable[[str], "dict[str, str] | None"]


def split_list(value: Any) -> list[Any]:
    """A list stays a list; a string (e.g. a rendered template) splits on commas and newlines."""
    if isinstance(value, list | tuple):
        return [item for item in value if item not in (None, "")]
    if isinstance(value, str):
        return [part.strip() for part in re.split(r"[,\n]", value) if part.strip()]
    return [] if value is None else [value]


def label(value: Any) -> str:
    """Jira labels cannot contain whitespace; replace it, deterministically."""
    return cut(_LABEL_UNSAFE.sub("_", str(value).strip()), SUMMARY_LIMIT)


def cut(text: str, limit: int, ellipsis: str = "") -> str:
    """At most `limit` UTF-16 code units (Jira counts like Java does), never splitting a character."""
    if len(text.encode("utf-16-le")) <= limit * 2:
        return text
    budget = limit - len(ellipsis)
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > budget:
            return text[:index].rstrip() + ellipsis
    return text


def clean_text(text: str) -> str:
    """Without control characters Jira rejects (NUL and friends); tabs and newlines stay."""
    return _CONTROL.sub("", text)


def single_line(text: str) -> str:
    """All whitespace runs, newlines included, as one space (Jira summaries are one line)."""
    return " ".join(clean_text(text).split())


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value)
    return str(value)


def _number(value: Any) -> float:
    if isinstance(value, bool):  # bool is an int in Python, but never a sensible number here
        raise ShapeError(f"expected a number, got {value!r}")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ShapeError(f"expected a number, got {value!r}") from None
    if not math.isfinite(number):  # JSON has no NaN/Infinity; Jira would reject the body
        raise ShapeError(f"expected a finite number, got {value!r}")
    return number


def _parse_datetime(value: Any) -> datetime:
    text = str(value).strip()
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ShapeError(f"expected an RFC 3339 date or date-time, got {value!r}") from None


def _date(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):  # a TOML date such as `value = 2025-03-01`
        return value.isoformat()
    # The calendar date as written, in the sender's own offset: converting a due date of
    # 2025-02-15T00:00:00+01:00 to UTC would move it to the day before.
    return _parse_datetime(value).date().isoformat()


def _datetime(value: Any) -> str:
    moment = value if isinstance(value, datetime) else _parse_datetime(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Jira's REST format: ISO 8601 with milliseconds and a +hhmm offset.
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}" + moment.strftime("%z")


def _user(value: Any, lookup: UserLookup | None) -> dict[str, str]:
    text = str(value).strip()
    if lookup is None:
        if "@" not in text:  # without Jira, an id is taken for a Jira Cloud accountId
            return {"accountId": text}
        raise ShapeError("e-mail address does not match a Jira account")
    user = lookup(text)
    if not user:
        # The value itself stays out of the message: an e-mail is personal data.
        raise ShapeError("e-mail address does not match a Jira account" if "@" in text
                         else "no such Jira user")
    return dict(user)


def shape_scalar(type_name: str, value: Any, lookup: UserLookup | None = None) -> Any:
    """One value in the JSON shape of a scalar Jira type."""
    if type_name == "string":
        return _text(value)
    if type_name == "number":
        return _number(value)
    if type_name == "date":
        return _date(value)
    if type_name == "datetime":
        return _datetime(value)
    if type_name == "option":
        return {"value": _text(value)}
    if type_name == "user":
        return _user(value, lookup)
    if type_name == "project":
        return {"key": _text(value)}
    if type_name in _BY_NAME:
        return {"name": _text(value)}
    return value  # "any" and types this table does not know: passed through as they are


def shape(info: JiraField, value: Any, lookup: UserLookup | None = None) -> Any:
    """A value in the JSON shape of the field `info`; raises ShapeError when it does not fit."""
    if info.schema_type != "array":
        return shape_scalar(info.schema_type, value, lookup)
    item_type = info.items or "any"
    shaped = [shape_scalar(item_type, item, lookup) for item in split_list(value)]
    if item_type == "string":  # Jira's string arrays are labels (system or custom)
        shaped = list(dict.fromkeys(label(item) for item in shaped if label(item)))
    return shaped


def declared_info(field_id: str, declared: str) -> FieldInfo:
    """The FieldInfo for a `type` written in a mapping ("option", "array:component", ...)."""
    if declared.startswith("array:"):
        return FieldInfo(field_id, field_id, "array", declared.removeprefix("array:"))
    return FieldInfo(field_id, field_id, declared)
