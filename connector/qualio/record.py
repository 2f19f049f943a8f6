"""Qualio's ``eventDetailed`` record mapped to our NC record (the camelCase keys of the webhook contract). Pure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["nc_record_from_event"]

# -- eventDetailed -> NC record (pure) ------------------------------------------------------------

# Qualio's own status (open, closed, imported, rejected, cancelled) is `qualioStatus`: the webhook's `status`
# is the NC's workflow status, which drives the Jira transition, and must not be replaced by the coarse one.
_SCALARS = {"ncId": "code", "title": "title", "description": "description", "qualioStatus": "status", "url": "url",
            "createdAt": "created_at", "dueAt": "due_at", "modifiedAt": "modified_at",
            "closedAt": "closed_at", "risk": "risk"}


def nc_record_from_event(event: dict[str, Any]) -> dict[str, Any]:
    """Map Qualio's ``eventDetailed`` to our NC record (the camelCase keys of the webhook contract).

    ``fields`` holds each form field by label, in step and field order: the value for a single
    field (None when empty), a list for a multi field. Linked events appear as their code, other
    linked records (documents, suppliers, ...) as their name. ``sections`` holds each content
    section's content by label. A label seen before (in an earlier step) is kept as
    ``"<step label> / <label>"`` so that nothing is lost and the first keeps its plain name.
    Missing keys become None (or empty), so a partial record maps too.
    """
    record: dict[str, Any] = {ours: event.get(theirs) for ours, theirs in _SCALARS.items()}
    record["ownerUserId"] = _number(event.get("owner_user_id"))
    record["tagIds"] = [_number(t) for t in event.get("tag_ids") or []]
    record["escalatedFrom"] = list(event.get("escalated_from") or [])
    record["escalatedTo"] = list(event.get("escalated_to") or [])
    steps = _ordered([s for s in event.get("steps") or [] if isinstance(s, dict)])
    record["fields"] = _form_fields(steps)
    record["sections"] = _content_sections(steps)
    return record


def _form_fields(steps: list[dict[str, Any]]) -> dict[str, Any]:
    # A "section" inside a form is a heading: it holds no value.
    return _step_values(steps, "form", "fields", _field_value, skip_type="section")


def _content_sections(steps: list[dict[str, Any]]) -> dict[str, Any]:
    return _step_values(steps, "content", "sections", lambda section: section.get("content"))


def _step_values(steps: list[dict[str, Any]], step_type: str, key: str, value_of: Callable[[dict[str, Any]], Any],
                 skip_type: str | None = None) -> dict[str, Any]:
    """Label -> value over the steps of `step_type`, each step's `key` list in its own order."""
    found: dict[str, Any] = {}
    for step in steps:
        if step.get("type") != step_type:
            continue
        for item in _ordered(step.get(key) or []):
            if skip_type is None or item.get("type") != skip_type:
                _put(found, step, str(item.get("label", "")), value_of(item))
    return found


def _put(found: dict[str, Any], step: dict[str, Any], label: str, value: Any) -> None:
    key = label if label not in found else f"{step.get('label', '')} / {label}"
    found.setdefault(key, value)


def _field_value(field: dict[str, Any]) -> Any:
    is_event = field.get("type") == "event"
    values = [_value(v, is_event) for v in field.get("values") or []]
    if field.get("multi"):
        return values
    return values[0] if values else None


def _value(value: Any, is_event: bool) -> Any:
    if not isinstance(value, dict):
        return value
    if is_event and value.get("code"):
        return value["code"]
    return value.get("name")


def _ordered(items: list[Any]) -> list[dict[str, Any]]:
    """Dict items sorted by their ``order`` (stable; those without one keep their place at the end)."""
    dicts = [i for i in items if isinstance(i, dict)]
    return sorted(dicts, key=lambda i: (not isinstance(i.get("order"), int | float), i.get("order") or 0))


def _number(value: Any) -> Any:
    """JSON numbers that are whole (1.0) as int: ids compare and print as ids."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
