"""Jira workflows, pure: statuses, transitions and their screens as read back, status targets, and the way
from one status to another.

A target names a status (by id or name, names compared case-insensitively) or a status category (Jira's
three: ``new`` "To Do", ``indeterminate`` "In Progress", ``done`` "Done"), so one mapping works on Cloud's
simplified workflow, Data Center's classic one and custom ones. Jira only shows the transitions open from
the current status, so a path is found one hop at a time (`next_transition`): a transition that reaches
the target, else one that brings the category closer (or keeps it, for a workflow with several statuses in
a row of one category), never to a status seen before, at most `MAX_HOPS` hops. Nothing here makes a call.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["CATEGORIES", "MAX_HOPS", "IssueState", "ScreenField", "StatusRef", "StatusTarget", "Transition",
           "choose_resolution", "is_category", "next_transition", "parse_target", "screen_values"]

# Jira's status categories by key, in workflow order, with the names Jira gives them.
CATEGORIES = {"new": "To Do", "indeterminate": "In Progress", "done": "Done"}
_RANK = {key: rank for rank, key in enumerate(CATEGORIES)}
_CATEGORY_PREFIX = "category:"
# Enough for a workflow like Backlog -> Selected -> In Progress -> Review -> Done; a bound, not a goal.
MAX_HOPS = 6
# Resolutions taken, in this order, when the mapping names none the screen allows.
PREFERRED_RESOLUTIONS = ("done", "fixed")


@dataclass(frozen=True)
class StatusRef:
    id: str  # Jira's status id ("" when the answer had none)
    name: str  # as Jira names it (may be localised)
    category: str  # statusCategory.key: "new", "indeterminate" or "done" ("" when not given)


@dataclass(frozen=True)
class ScreenField:
    id: str  # field id, e.g. "resolution", "customfield_10010"
    name: str
    required: bool
    has_default: bool
    allowed: tuple[str, ...] = ()  # allowedValues' names (else value, else id), in Jira's order


@dataclass(frozen=True)
class Transition:
    id: str
    name: str
    to: StatusRef
    fields: tuple[ScreenField, ...] = ()  # the transition screen (from expand=transitions.fields)

    @property
    def to_status(self) -> str:
        return self.to.name


@dataclass(frozen=True)
class IssueState:
    """An issue's workflow state as read back: ``key`` is the key Jira answered with (it differs from the
    asked key after a move); ``transitions`` are the ones open from ``status``."""

    key: str
    status: StatusRef
    transitions: list[Transition]


@dataclass(frozen=True)
class StatusTarget:
    """Where the mapping wants the issue: a status (id or name) or a category; `resolution` for a done one."""

    name: str = ""
    category: str = ""
    resolution: str = ""  # the mapping's resolution for this target ("" = the screen's Done/Fixed/first)

    def matches(self, status: StatusRef) -> bool:
        if self.category:
            return status.category == self.category
        return status.id == self.name or status.name.casefold() == self.name.casefold()

    def __str__(self) -> str:
        return f"category {self.category!r} ({CATEGORIES[self.category]})" if self.category else repr(self.name)


def is_category(text: str) -> bool:
    return text.strip().casefold().startswith(_CATEGORY_PREFIX)


def parse_target(text: str, resolution: str = "") -> StatusTarget:
    """``category:<key or name>`` is a category (ValueError for an unknown one); anything else a status."""
    text = text.strip()
    if not is_category(text):
        return StatusTarget(name=text, resolution=resolution)
    wanted = text[len(_CATEGORY_PREFIX):].strip().casefold()
    for key, name in CATEGORIES.items():
        if wanted in (key, name.casefold()):
            return StatusTarget(category=key, resolution=resolution)
    raise ValueError(f"unknown status category {wanted!r} (use one of {', '.join(CATEGORIES)})")


def next_transition(current: StatusRef, options: Sequence[Transition], target: StatusTarget,
                    seen: Collection[str] = (), known: Mapping[str, str] | None = None) -> Transition | None:
    """The next hop toward `target` from `current`, or None when no transition helps.

    `seen` holds the ids (or names) of statuses already visited on this walk; `known` maps status names
    (casefolded) to their categories as seen so far, so a status target's category can guide the walk.
    """
    direct = [t for t in options if target.matches(t.to)]
    if direct:
        return min(direct, key=lambda t: len(unfillable(t)))  # fewest required fields we cannot fill
    goal = target.category or (known or {}).get(target.name.casefold(), "")
    if goal not in _RANK or current.category not in _RANK:
        return None
    here = abs(_RANK[current.category] - _RANK[goal])
    steps = [t for t in options if _key(t.to) not in seen and _key(t.to) != _key(current)
             and t.to.category in _RANK and abs(_RANK[t.to.category] - _RANK[goal]) <= here]
    if not steps:
        return None
    # Closer first; among equals, the one Jira lists first (workflows list the forward transition first).
    return min(steps, key=lambda t: abs(_RANK[t.to.category] - _RANK[goal]))


def _key(status: StatusRef) -> str:
    return status.id or status.name.casefold()


def choose_resolution(allowed: Sequence[str], wanted: str = "") -> str | None:
    """The resolution to send: the mapping's if allowed (or if Jira lists none), else Done or Fixed, else
    the first allowed one; None when there is nothing to choose from."""
    by_fold = {name.casefold(): name for name in allowed}
    if wanted and (not allowed or wanted.casefold() in by_fold):
        return by_fold.get(wanted.casefold(), wanted)
    for name in PREFERRED_RESOLUTIONS:
        if name in by_fold:
            return by_fold[name]
    return allowed[0] if allowed else None


def screen_values(transition: Transition, fields: Mapping[str, Any],
                  resolution: str = "") -> tuple[dict[str, Any], list[ScreenField]]:
    """What to send on `transition`'s screen, and the required fields left unfilled.

    The resolution comes from the mapping (or `choose_resolution`); any other field on the screen that
    the mapping rendered (`fields`, by id) is sent as rendered. A required field without a default that
    neither fills is returned: Jira may still accept the move when the issue already has a value.
    """
    values: dict[str, Any] = {}
    missing: list[ScreenField] = []
    for field in transition.fields:
        if field.id == "resolution":
            chosen = choose_resolution(field.allowed, resolution)
            if chosen is not None:
                values["resolution"] = {"name": chosen}
                continue
        elif field.id in fields:
            values[field.id] = fields[field.id]
            continue
        if field.required and not field.has_default:
            missing.append(field)
    return values, missing


def unfillable(transition: Transition) -> list[ScreenField]:
    """Required fields of the screen that only the mapping's own fields could fill (for ranking hops)."""
    return [f for f in transition.fields if f.required and not f.has_default and f.id != "resolution"]
