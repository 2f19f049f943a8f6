"""Errors the sandbox answers with: Jira's ErrorCollection (`JiraError`) and per-field refusals (`FieldError`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

JsonDict = dict[str, Any]

NOT_FOUND = "Issue does not exist or you do not have permission to see it."


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
