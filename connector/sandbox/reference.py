"""Jira's fixed world in the sandbox: statuses and the workflow, priorities, issue types, resolutions,
Severity options, components, the project id and the seeded users."""

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
# The option lists a JQL value is looked up in, by the value domain of its field.
OPTIONS_BY_DOMAIN = {"issuetype": ISSUE_TYPES, "priority": PRIORITIES, "resolution": RESOLUTIONS,
                     "option": SEVERITIES, "component": COMPONENTS}


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
