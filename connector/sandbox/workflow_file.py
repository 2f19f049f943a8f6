"""Choosing the workflow at start-up: a built-in one by name, or one described by a JSON file, checked whole
before the sandbox starts (every problem is a ValueError naming the file and the offending entry).

    {"statuses": [{"id": "1", "name": "Open", "category": "new", "description": "..."}, ...],
     "initial": "1",
     "transitions": [{"id": "11", "name": "Resolve", "to": "5", "from": ["1"],      # from [] or absent: global
                      "screen": {"resolution": {"required": true}}}, ...],
     "resolutions": ["Fixed", "Won't Fix"]}                                       # optional

Categories are Jira's status category keys: new, indeterminate, done. A screen may hold `resolution` and
any field an edit may set. Without `resolutions` the workflow has the sandbox's defaults (Done, Won't Do,
Duplicate); listed resolutions get the ids 10000, 10001, ... in order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from connector.sandbox.fields import FIELDS_BY_ID
from connector.sandbox.reference import Named
from connector.sandbox.workflows import (
    CATEGORIES,
    DEFAULT_RESOLUTIONS,
    WORKFLOWS,
    ScreenField,
    Status,
    Transition,
    WorkflowDef,
)

TOP_KEYS = frozenset({"statuses", "initial", "transitions", "resolutions"})
STATUS_KEYS = frozenset({"id", "name", "category", "description"})
TRANSITION_KEYS = frozenset({"id", "name", "to", "from", "screen"})
# Fields a transition screen may hold: resolution, and whatever an edit may set.
SCREEN_FIELDS = frozenset(s.id for s in FIELDS_BY_ID.values() if "edit" in s.screens or s.id == "resolution")


class WorkflowProblem(ValueError):
    """What is wrong with a workflow description."""


def load_workflow(choice: str) -> WorkflowDef:
    """The built-in workflow named `choice`, or the one the JSON file at path `choice` describes."""
    if choice in WORKFLOWS:
        return WORKFLOWS[choice]
    path = Path(choice)
    if not path.is_file():
        raise ValueError(f"workflow must be one of {', '.join(WORKFLOWS)} or a JSON file, not {choice!r} "
                         "(no such file)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"workflow file {choice}: cannot be read: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"workflow file {choice}: not valid JSON: {exc}") from None
    try:
        return workflow_from_json(data, name=choice)
    except WorkflowProblem as exc:
        raise ValueError(f"workflow file {choice}: {exc}") from None


def workflow_from_json(data: Any, name: str = "custom") -> WorkflowDef:
    """A `WorkflowDef` from its JSON description; WorkflowProblem names the first thing wrong."""
    if not isinstance(data, dict):
        raise WorkflowProblem("expected a JSON object with statuses, initial and transitions")
    unknown(data, TOP_KEYS, "the workflow")
    statuses = parse_statuses(data.get("statuses"))
    ids = {s.id for s in statuses}
    if "initial" not in data:
        raise WorkflowProblem("'initial' (the id of the status new issues start in) is missing")
    initial = ident(data["initial"], "initial")
    if initial not in ids:
        raise WorkflowProblem(f"initial status {initial!r} is not one of the statuses ({', '.join(sorted(ids))})")
    resolutions = parse_resolutions(data.get("resolutions"))
    transitions = parse_transitions(data.get("transitions"), ids, bool(resolutions))
    return WorkflowDef(name, statuses, initial, transitions, resolutions)


def unknown(entry: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    extra = sorted(set(entry) - allowed)
    if extra:
        raise WorkflowProblem(f"{where}: unknown key(s) {', '.join(map(repr, extra))} "
                              f"(expected {', '.join(sorted(allowed))})")


def ident(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value).strip() == "":
        raise WorkflowProblem(f"{where}: an id must be a non-empty string (or a number), not {value!r}")
    return str(value)


def text(entry: dict[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise WorkflowProblem(f"{where}: {key!r} must be a non-empty string, not {value!r}")
    return value


def parse_statuses(raw: Any) -> tuple[Status, ...]:
    if not isinstance(raw, list) or not raw:
        raise WorkflowProblem("'statuses' must be a non-empty list of {id, name, category}")
    statuses: list[Status] = []
    for index, entry in enumerate(raw):
        where = f"statuses[{index}]"
        if not isinstance(entry, dict):
            raise WorkflowProblem(f"{where}: expected an object with id, name and category")
        unknown(entry, STATUS_KEYS, where)
        status = Status(ident(entry.get("id"), f"{where}.id"), text(entry, "name", where),
                        str(entry.get("category")), str(entry.get("description") or ""))
        if status.category not in CATEGORIES:
            raise WorkflowProblem(f"{where} ({status.name}): category must be one of {', '.join(CATEGORIES)}, "
                                  f"not {entry.get('category')!r}")
        for other in statuses:
            if other.id == status.id or other.name.lower() == status.name.lower():
                raise WorkflowProblem(f"{where}: status {status.name!r} (id {status.id!r}) repeats the id or "
                                      f"name of status {other.name!r} (id {other.id!r})")
        statuses.append(status)
    if not any(s.category == "done" for s in statuses):
        raise WorkflowProblem("no status has category 'done': issues could never be finished")
    return tuple(statuses)


def parse_resolutions(raw: Any) -> tuple[Named, ...]:
    if raw is None:
        return DEFAULT_RESOLUTIONS
    if not isinstance(raw, list) or not all(isinstance(r, str) and r.strip() for r in raw):
        raise WorkflowProblem("'resolutions' must be a list of resolution names")
    if len({r.lower() for r in raw}) != len(raw):
        raise WorkflowProblem("'resolutions' lists a name twice")
    return tuple(Named(str(10000 + index), name) for index, name in enumerate(raw))


def parse_transitions(raw: Any, status_ids: set[str], has_resolutions: bool) -> tuple[Transition, ...]:
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise WorkflowProblem("'transitions' must be a list of {id, name, to, from, screen}")
    transitions: list[Transition] = []
    for index, entry in enumerate(raw):
        where = f"transitions[{index}]"
        if not isinstance(entry, dict):
            raise WorkflowProblem(f"{where}: expected an object with id, name, to and from")
        unknown(entry, TRANSITION_KEYS, where)
        transition_id, name = ident(entry.get("id"), f"{where}.id"), text(entry, "name", where)
        where = f"{where} ({name})"
        to = ident(entry.get("to"), f"{where}.to")
        sources = entry.get("from") or []
        if not isinstance(sources, list):
            raise WorkflowProblem(f"{where}: 'from' must be a list of status ids ([] for a global transition)")
        sources = [ident(s, f"{where}.from") for s in sources]
        for status_id in (to, *sources):
            if status_id not in status_ids:
                raise WorkflowProblem(f"{where}: status {status_id!r} is not one of the statuses "
                                      f"({', '.join(sorted(status_ids))})")
        if any(t.id == transition_id for t in transitions):
            raise WorkflowProblem(f"{where}: transition id {transition_id!r} is used twice")
        screen = parse_screen(entry.get("screen"), where, has_resolutions)
        transitions.append(Transition(transition_id, name, to, tuple(dict.fromkeys(sources)), screen))
    return tuple(transitions)


def parse_screen(raw: Any, where: str, has_resolutions: bool) -> tuple[ScreenField, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise WorkflowProblem(f"{where}: 'screen' must be an object {{fieldId: {{\"required\": bool}}}}")
    fields: list[ScreenField] = []
    for field_id, options in raw.items():
        if field_id not in SCREEN_FIELDS:
            raise WorkflowProblem(f"{where}: field {field_id!r} cannot be on a transition screen "
                                  f"(one of {', '.join(sorted(SCREEN_FIELDS))})")
        if field_id == "resolution" and not has_resolutions:
            raise WorkflowProblem(f"{where}: the screen has 'resolution' but the workflow has no resolutions")
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise WorkflowProblem(f"{where}: screen field {field_id!r} must be an object like {{\"required\": true}}")
        unknown(options, frozenset({"required"}), f"{where}: screen field {field_id!r}")
        required = options.get("required", False)
        if not isinstance(required, bool):
            raise WorkflowProblem(f"{where}: screen field {field_id!r}: 'required' must be true or false")
        fields.append(ScreenField(field_id, required))
    return tuple(fields)
