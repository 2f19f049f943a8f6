"""Status targets, the way through a workflow one hop at a time, and transition screens (pure)."""

from __future__ import annotations

import pytest

from connector.jira.workflow import (
    MAX_HOPS,
    ScreenField,
    StatusRef,
    StatusTarget,
    Transition,
    choose_resolution,
    next_transition,
    parse_target,
    screen_values,
)

# Jira Data Center's classic workflow (ids as Jira ships them).
OPEN, IN_PROGRESS = StatusRef("1", "Open", "new"), StatusRef("3", "In Progress", "indeterminate")
REOPENED, RESOLVED, CLOSED = StatusRef("4", "Reopened", "new"), StatusRef("5", "Resolved", "done"), \
    StatusRef("6", "Closed", "done")
RESOLUTION = ScreenField("resolution", "Resolution", required=True, has_default=False,
                         allowed=("Fixed", "Won't Fix", "Duplicate", "Done"))
CLASSIC = {
    "1": [Transition("4", "Start Progress", IN_PROGRESS), Transition("5", "Resolve Issue", RESOLVED, (RESOLUTION,)),
          Transition("2", "Close Issue", CLOSED, (RESOLUTION,))],
    "3": [Transition("301", "Stop Progress", OPEN), Transition("5", "Resolve Issue", RESOLVED, (RESOLUTION,)),
          Transition("2", "Close Issue", CLOSED, (RESOLUTION,))],
    "5": [Transition("2", "Close Issue", CLOSED), Transition("3", "Reopen Issue", REOPENED)],
    "6": [Transition("3", "Reopen Issue", REOPENED)],
    "4": [Transition("4", "Start Progress", IN_PROGRESS), Transition("5", "Resolve Issue", RESOLVED, (RESOLUTION,))],
}
# No direct way to done: Backlog -> Selected -> In Progress -> Review -> Done.
BACKLOG, SELECTED = StatusRef("10", "Backlog", "new"), StatusRef("11", "Selected", "new")
WORKING, REVIEW, DONE = StatusRef("12", "In Progress", "indeterminate"), StatusRef("13", "Review", "indeterminate"), \
    StatusRef("14", "Done", "done")
GATED = {
    "10": [Transition("1", "Select", SELECTED)],
    "11": [Transition("2", "Back to backlog", BACKLOG), Transition("3", "Start", WORKING)],
    "12": [Transition("4", "Submit", REVIEW), Transition("9", "Deselect", SELECTED)],
    "13": [Transition("5", "Request changes", WORKING), Transition("6", "Approve", DONE)],
    "14": [Transition("7", "Reopen", BACKLOG)],
}


def walk(workflow: dict[str, list[Transition]], start: StatusRef, target: StatusTarget) -> list[str]:
    """Follow next_transition as the sync does: statuses reached, in order (empty when stuck at once)."""
    by_id = {t.to.id: t.to for options in workflow.values() for t in options}
    current, seen, path = start, {start.id}, []
    for _ in range(MAX_HOPS):
        if target.matches(current):
            return path
        step = next_transition(current, workflow[current.id], target, seen)
        if step is None:
            return [*path, "stuck"]
        current = by_id[step.to.id]
        seen.add(current.id)
        path.append(current.name)
    return [*path, "too far"]


@pytest.mark.parametrize(("text", "expected"), [
    ("category:done", StatusTarget(category="done")),
    ("category:Done", StatusTarget(category="done")),
    ("category:new", StatusTarget(category="new")),
    ("Category: To Do", StatusTarget(category="new")),
    ("category:indeterminate", StatusTarget(category="indeterminate")),
    ("category:in progress", StatusTarget(category="indeterminate")),
    ("In Review", StatusTarget(name="In Review")),
])
def test_a_target_is_a_category_or_a_status(text: str, expected: StatusTarget) -> None:
    assert parse_target(text) == expected


def test_an_unknown_category_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'finished'"):
        parse_target("category:finished")


def test_a_status_target_matches_by_id_or_by_name_in_any_case() -> None:
    assert StatusTarget(name="resolved").matches(RESOLVED)
    assert StatusTarget(name="5").matches(RESOLVED)
    assert not StatusTarget(name="Done").matches(RESOLVED)
    assert StatusTarget(category="done").matches(RESOLVED) and StatusTarget(category="done").matches(CLOSED)
    assert not StatusTarget(category="done").matches(REOPENED)


@pytest.mark.parametrize(("start", "target", "path"), [
    (OPEN, "category:done", ["Resolved"]),  # the first transition Jira lists that gets there
    (OPEN, "category:indeterminate", ["In Progress"]),
    (RESOLVED, "category:new", ["Reopened"]),
    (CLOSED, "category:new", ["Reopened"]),
    (CLOSED, "category:indeterminate", ["Reopened", "In Progress"]),  # two hops
    (IN_PROGRESS, "Closed", ["Closed"]),
    (OPEN, "category:new", []),  # already there
])
def test_classic_paths(start: StatusRef, target: str, path: list[str]) -> None:
    assert walk(CLASSIC, start, parse_target(target)) == path


def test_a_workflow_without_a_direct_path_to_done_is_walked() -> None:
    assert walk(GATED, BACKLOG, parse_target("category:done")) == ["Selected", "In Progress", "Review", "Done"]
    assert walk(GATED, DONE, parse_target("category:indeterminate")) == ["Backlog", "Selected", "In Progress"]


def test_no_hop_moves_away_from_the_target_or_back_to_a_status_seen() -> None:
    # From In Progress toward done, "Deselect" (new) moves away; Review is a sideways hop.
    assert next_transition(WORKING, GATED["12"], parse_target("category:done"), {"12"}) == GATED["12"][0]
    # From Review, In Progress was seen: only Approve is left (and it reaches the target anyway).
    assert next_transition(REVIEW, GATED["13"][:1], parse_target("category:done"), {"12", "13"}) is None


def test_a_status_name_never_offered_leaves_the_walk_stuck_unless_its_category_is_known() -> None:
    target = parse_target("Verified")
    assert next_transition(OPEN, CLASSIC["1"], target) is None
    assert next_transition(OPEN, CLASSIC["1"], target, known={"verified": "done"}) == CLASSIC["1"][1]


def test_a_direct_transition_whose_screen_we_can_fill_is_preferred() -> None:
    needs_worklog = ScreenField("worklog", "Log Work", required=True, has_default=False)
    hard = Transition("1", "Finish", DONE, (needs_worklog,))
    easy = Transition("2", "Done", DONE, (RESOLUTION,))
    assert next_transition(WORKING, [hard, easy], parse_target("category:done")) is easy


@pytest.mark.parametrize(("allowed", "wanted", "chosen"), [
    (("Fixed", "Won't Fix", "Done"), "", "Done"),
    (("Won't Fix", "Fixed"), "", "Fixed"),
    (("Won't Do", "Duplicate"), "", "Won't Do"),
    (("Fixed", "Won't Fix"), "won't fix", "Won't Fix"),  # the mapping's, spelled as Jira spells it
    (("Fixed",), "Declined", "Fixed"),  # not allowed: the usual choice
    ((), "Declined", "Declined"),  # Jira listed nothing: the mapping's choice stands
    ((), "", None),
])
def test_choose_resolution(allowed: tuple[str, ...], wanted: str, chosen: str | None) -> None:
    assert choose_resolution(allowed, wanted) == chosen


def test_screen_values_fill_resolution_and_mapped_fields_and_name_the_rest() -> None:
    severity = ScreenField("customfield_10010", "Severity", required=True, has_default=False)
    worklog = ScreenField("worklog", "Log Work", required=True, has_default=False)
    comment = ScreenField("comment", "Comment", required=False, has_default=False)
    priority = ScreenField("priority", "Priority", required=True, has_default=True)
    move = Transition("5", "Resolve Issue", RESOLVED, (RESOLUTION, severity, worklog, comment, priority))
    values, missing = screen_values(move, {"customfield_10010": {"value": "Major"}, "summary": "x"}, "Fixed")
    assert values == {"resolution": {"name": "Fixed"}, "customfield_10010": {"value": "Major"}}
    assert missing == [worklog]
    assert screen_values(Transition("4", "Start Progress", IN_PROGRESS), {"summary": "x"}) == ({}, [])
