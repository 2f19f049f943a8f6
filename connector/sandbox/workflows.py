"""Workflows the sandbox can run: statuses, transitions (with their screens) and resolutions, as one
`WorkflowDef` chosen at start-up (`SandboxConfig.workflow`).

Built in, by name (`WORKFLOWS`):

- `review` (the default): To Do / In Progress / In Review / Done, the sandbox's original workflow;
- `cloud`: Jira Cloud's simplified workflow, To Do / In Progress / Done, every status reachable from every
  other by a global transition named after its target, no screens;
- `classic`: Jira Data Center's classic default workflow (Open, In Progress, Reopened, Resolved, Closed),
  with the Resolve and Close screens requiring a resolution, and Data Center's default resolutions;
- `gated`: Backlog -> Selected -> In Progress -> Review -> Done, one step at a time (no direct path to done).

A JSON file describes any other (see `connector.sandbox.workflow_file`).
"""

from __future__ import annotations

from dataclasses import dataclass

from connector.sandbox.reference import Named

CATEGORIES = ("new", "indeterminate", "done")


@dataclass(frozen=True)
class Status:
    id: str
    name: str
    category: str
    description: str = ""


@dataclass(frozen=True)
class ScreenField:
    """A field on a transition's screen; a `required` one must be given unless the issue already has a value."""

    field_id: str
    required: bool = False


@dataclass(frozen=True)
class Transition:
    """A workflow transition to status `to`, available from `sources` (empty: global, from every other status)."""

    id: str
    name: str
    to: str
    sources: tuple[str, ...]
    screen: tuple[ScreenField, ...] = ()

    @property
    def has_screen(self) -> bool:
        return bool(self.screen)

    @property
    def is_global(self) -> bool:
        return not self.sources

    def available_from(self, status_id: str) -> bool:
        return status_id in self.sources if self.sources else status_id != self.to


@dataclass(frozen=True)
class WorkflowDef:
    """One workflow: its statuses, the status new issues start in, transitions and resolutions."""

    name: str
    statuses: tuple[Status, ...]
    initial: str
    transitions: tuple[Transition, ...]
    resolutions: tuple[Named, ...]

    def status(self, status_id: str) -> Status:
        found = next((s for s in self.statuses if s.id == status_id), None)
        if found is None:
            raise KeyError(status_id)
        return found

    def find_status(self, ref: str) -> Status | None:
        """The status with id `ref` or name `ref` (case-insensitively)."""
        return next((s for s in self.statuses if ref == s.id or s.name.lower() == ref.lower()), None)

    def transitions_from(self, status_id: str) -> list[Transition]:
        return [t for t in self.transitions if t.available_from(status_id)]

    @property
    def default_resolution(self) -> str | None:
        """The resolution set on entering a done status when none is given (and none is required)."""
        return self.resolutions[0].id if self.resolutions else None


OPTIONAL_RESOLUTION = (ScreenField("resolution"),)
REQUIRED_RESOLUTION = (ScreenField("resolution", required=True),)

# Jira Cloud's defaults (the first three are the sandbox's original ones).
CLOUD_RESOLUTIONS = (
    Named("10000", "Done", "Work has been completed on this issue."),
    Named("10001", "Won't Do", "This issue won't be actioned."),
    Named("10002", "Duplicate", "The problem is a duplicate of an existing issue."),
    Named("10003", "Cannot Reproduce", "All attempts at reproducing this issue failed, or not enough "
                                       "information was available to reproduce the issue."),
)
# Jira Data Center's defaults.
DC_RESOLUTIONS = (
    Named("1", "Fixed", "A fix for this issue is checked into the tree and tested."),
    Named("2", "Won't Fix", "The problem described is an issue which will never be fixed."),
    Named("3", "Duplicate", "The problem is a duplicate of an existing issue."),
    Named("4", "Incomplete", "The problem is not completely described."),
    Named("5", "Cannot Reproduce", "All attempts at reproducing this issue failed, or not enough information "
                                   "was available to reproduce the issue."),
    Named("10000", "Done", "Work has been completed on this issue."),
)
DEFAULT_RESOLUTIONS = CLOUD_RESOLUTIONS[:3]

REVIEW = WorkflowDef(
    "review",
    (Status("10000", "To Do", "new", "Work that has not been started."),
     Status("3", "In Progress", "indeterminate", "The issue is currently being worked on."),
     Status("10001", "In Review", "indeterminate", "The work is waiting for review."),
     Status("10002", "Done", "done", "Work has been completed.")),
    "10000",
    (Transition("11", "Start Progress", "3", ("10000",)),
     Transition("21", "Submit for Review", "10001", ("3",)),
     Transition("31", "Request Changes", "3", ("10001",)),
     Transition("41", "Approve", "10002", ("10001",), OPTIONAL_RESOLUTION),
     Transition("51", "Stop Progress", "10000", ("3",)),
     Transition("61", "Done", "10002", ("10000", "3"), OPTIONAL_RESOLUTION),
     Transition("71", "Reopen", "10000", ("10002",))),
    DEFAULT_RESOLUTIONS,
)

CLOUD = WorkflowDef(
    "cloud",
    (Status("10000", "To Do", "new", ""),
     Status("3", "In Progress", "indeterminate", "This issue is being actively worked on at the moment by the "
                                                 "assignee."),
     Status("10001", "Done", "done", "")),
    "10000",
    (Transition("11", "To Do", "10000", ()),
     Transition("21", "In Progress", "3", ()),
     Transition("31", "Done", "10001", ())),
    CLOUD_RESOLUTIONS,
)

_OPEN, _IN_PROGRESS, _REOPENED, _RESOLVED, _CLOSED = "1", "3", "4", "5", "6"
CLASSIC = WorkflowDef(
    "classic",
    (Status(_OPEN, "Open", "new", "The issue is open and ready for the assignee to start work on it."),
     Status(_IN_PROGRESS, "In Progress", "indeterminate",
            "This issue is being actively worked on at the moment by the assignee."),
     Status(_REOPENED, "Reopened", "new", "This issue was once resolved, but the resolution was deemed "
                                          "incorrect. From here issues are either marked assigned or resolved."),
     Status(_RESOLVED, "Resolved", "done", "A resolution has been taken, and it is awaiting verification by "
                                           "reporter. From here issues are either reopened, or are closed."),
     Status(_CLOSED, "Closed", "done", "The issue is considered finished, the resolution is correct. Issues "
                                       "which are closed can be reopened.")),
    _OPEN,
    (Transition("4", "Start Progress", _IN_PROGRESS, (_OPEN, _REOPENED)),
     Transition("301", "Stop Progress", _OPEN, (_IN_PROGRESS,)),
     Transition("5", "Resolve Issue", _RESOLVED, (_OPEN, _IN_PROGRESS, _REOPENED), REQUIRED_RESOLUTION),
     Transition("2", "Close Issue", _CLOSED, (_OPEN, _IN_PROGRESS, _REOPENED, _RESOLVED), REQUIRED_RESOLUTION),
     Transition("3", "Reopen Issue", _REOPENED, (_RESOLVED, _CLOSED))),
    DC_RESOLUTIONS,
)

_BACKLOG, _SELECTED, _REVIEW, _DONE = "10100", "10101", "10102", "10103"
GATED = WorkflowDef(
    "gated",
    (Status(_BACKLOG, "Backlog", "new", "Work that has not been planned yet."),
     Status(_SELECTED, "Selected", "new", "Work selected for development."),
     Status("3", "In Progress", "indeterminate", "The issue is currently being worked on."),
     Status(_REVIEW, "Review", "indeterminate", "The work is waiting for review."),
     Status(_DONE, "Done", "done", "Work has been completed.")),
    _BACKLOG,
    (Transition("11", "Select for Development", _SELECTED, (_BACKLOG,)),
     Transition("21", "Start Progress", "3", (_SELECTED,)),
     Transition("31", "Submit for Review", _REVIEW, ("3",)),
     Transition("41", "Approve", _DONE, (_REVIEW,), OPTIONAL_RESOLUTION),
     Transition("51", "Request changes", "3", (_REVIEW,)),
     Transition("61", "Reopen", _BACKLOG, (_DONE,))),
    DEFAULT_RESOLUTIONS,
)

WORKFLOWS = {w.name: w for w in (REVIEW, CLOUD, CLASSIC, GATED)}
