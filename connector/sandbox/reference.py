"""Jira's fixed world in the sandbox: status categories, priorities, issue types, Severity options, components,
the project id and the seeded users. Statuses, transitions and resolutions belong to the configured workflow
(`connector.sandbox.workflows`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from connector.sandbox.errors import JsonDict

PROJECT_ID = "10000"


@dataclass(frozen=True)
class Named:
    """A reference value addressed by id or name (priority, issue type, resolution, option, component)."""

    id: str
    name: str
    detail: str = ""


@dataclass(frozen=True)
class User:
    """A user: Cloud knows them by `account_id`, Data Center by `name` (username) and `key` (its stable id,
    the username for early users, JIRAUSERnnnnn for users created since Jira 8)."""

    account_id: str
    name: str
    display_name: str
    email: str
    key: str
    time_zone: str = "Europe/Berlin"


STATUS_CATEGORIES: dict[str, JsonDict] = {
    "new": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
    "indeterminate": {"id": 4, "key": "indeterminate", "colorName": "yellow", "name": "In Progress"},
    "done": {"id": 3, "key": "done", "colorName": "green", "name": "Done"},
}
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
SEVERITIES = (Named("10020", "Critical"), Named("10021", "Major"), Named("10022", "Minor"))
COMPONENTS = (Named("10100", "Manufacturing"), Named("10101", "Supplier"), Named("10102", "Software"))
# The option lists a JQL value is looked up in, by the value domain of its field (resolutions: the workflow's).
OPTIONS_BY_DOMAIN = {"issuetype": ISSUE_TYPES, "priority": PRIORITIES, "option": SEVERITIES,
                     "component": COMPONENTS}


def seeded_users(email: str) -> tuple[User, ...]:
    """The sandbox's users; the first one is the authenticated caller."""
    return (
        User("557058:5b10ac8d-sandbox-bot", "sandbox", "Sandbox Bot", email, "sandbox"),
        User("712020:9f2c1e7a-dana-0001", "dana", "Dana Quality", "dana@example.com", "JIRAUSER10100"),
        User("712020:3b8d4f21-sam-0002", "sam", "Sam Engineer", "sam@example.com", "JIRAUSER10101"),
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

