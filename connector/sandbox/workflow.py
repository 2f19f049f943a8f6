"""Moving issues through the configured workflow: the transitions open to an issue, and performing one.

The workflow itself (statuses, transitions, screens, resolutions) is `SandboxConfig.definition` (see
`connector.sandbox.workflows`). A transition's `fields` may only name fields on its screen; a required
screen field must be given unless the issue already has a value. Entering a done status keeps the
resolution given or already set, else sets the workflow's default one (first resolution), and stamps
resolutiondate; entering any other status clears both (unless the transition's screen set a resolution).
"""

from __future__ import annotations

import copy
from typing import Any

from connector.sandbox.errors import JiraError, JsonDict
from connector.sandbox.fields import FIELDS_BY_ID
from connector.sandbox.issues import Issue, IssueStore
from connector.sandbox.workflows import Transition, WorkflowDef


def is_empty(value: Any) -> bool:
    return value is None or value == [] or value == ""


def required_message(field_id: str) -> str:
    """Jira's words for a required field left out: "Resolution is required."."""
    spec = FIELDS_BY_ID.get(field_id)
    return f"{spec.name if spec else field_id} is required."


class Workflow:
    """Transitions of the store's issues (under the store's lock)."""

    def __init__(self, store: IssueStore) -> None:
        self.store = store

    @property
    def definition(self) -> WorkflowDef:
        return self.store.config.definition

    def transitions(self, ref: str) -> tuple[Issue, list[Transition]]:
        with self.store.lock:
            issue = self.store.find(ref)
            return copy.deepcopy(issue), self.definition.transitions_from(issue.fields["status"])

    def transition(self, ref: str, body: JsonDict, actor: str) -> Issue:
        store = self.store
        with store.lock:
            issue = store.find(ref)
            chosen = self._chosen_transition(issue, body.get("transition"))
            values, errors = store.catalog.screen_values(body.get("fields"), [f.field_id for f in chosen.screen])
            for screen_field in chosen.screen:
                field_id = screen_field.field_id
                if (screen_field.required and field_id not in errors
                        and is_empty(values.get(field_id, issue.fields.get(field_id)))):
                    errors[field_id] = required_message(field_id)
            merged = {**issue.fields, **values}
            comments = store.apply_operations(merged, body.get("update"), "edit", errors)
            if errors:
                raise JiraError(400, [], errors)
            now = store.clock()
            self._enter_status(merged, chosen.to, "resolution" in values, issue.fields.get("resolution"), now)
            issue.fields = merged
            for text in comments:
                store.append_comment(issue, text, actor, None, now)
            store.touch(issue, now)
            store.counters["transitions"] += 1
            return copy.deepcopy(issue)

    def _chosen_transition(self, issue: Issue, ref: Any) -> Transition:
        if not isinstance(ref, dict) or ref.get("id") is None:
            raise JiraError(400, ["Missing 'transition' identifier"])
        wanted = str(ref["id"])
        available = self.definition.transitions_from(issue.fields["status"])
        chosen = next((t for t in available if t.id == wanted), None)
        if chosen is None:
            raise JiraError(400, [f"Transition id '{wanted}' is not valid for this issue."])
        return chosen

    def _enter_status(self, fields: JsonDict, status_id: str, resolution_given: bool, before: Any,
                      now: float) -> None:
        fields["status"] = status_id
        if self.definition.status(status_id).category == "done":
            fields["resolution"] = fields.get("resolution") or self.definition.default_resolution
        elif not resolution_given:
            fields["resolution"] = None
        if fields["resolution"] is None:
            fields["resolutiondate"] = None
        elif fields["resolution"] != before or fields.get("resolutiondate") is None:
            fields["resolutiondate"] = now
