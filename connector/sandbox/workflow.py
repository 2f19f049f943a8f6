"""Moving issues through the workflow: the transitions open to an issue, and performing one.

The statuses and transitions themselves are reference data (`connector.sandbox.reference`). Entering a
done status sets the resolution (default "Done") and resolutiondate; leaving one clears both.
"""

from __future__ import annotations

import copy
from typing import Any

from connector.sandbox.errors import JiraError, JsonDict
from connector.sandbox.issues import Issue, IssueStore
from connector.sandbox.reference import DEFAULT_RESOLUTION, Transition, status, transitions_from


class Workflow:
    """Transitions of the store's issues (under the store's lock)."""

    def __init__(self, store: IssueStore) -> None:
        self.store = store

    def transitions(self, ref: str) -> tuple[Issue, list[Transition]]:
        with self.store.lock:
            issue = self.store.find(ref)
            return copy.deepcopy(issue), transitions_from(issue.fields["status"])

    def transition(self, ref: str, body: JsonDict, actor: str) -> Issue:
        store = self.store
        with store.lock:
            issue = store.find(ref)
            chosen = self._chosen_transition(issue, body.get("transition"))
            values, errors = store.catalog.values(body.get("fields"), "transition" if chosen.screen else "none")
            merged = {**issue.fields, **values}
            comments = store.apply_operations(merged, body.get("update"), "edit", errors)
            if errors:
                raise JiraError(400, [], errors)
            now = store.clock()
            self._enter_status(merged, chosen.to, now)
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
        chosen = next((t for t in transitions_from(issue.fields["status"]) if t.id == wanted), None)
        if chosen is None:
            raise JiraError(400, [f"Transition id '{wanted}' is not valid for this issue."])
        return chosen

    @staticmethod
    def _enter_status(fields: JsonDict, status_id: str, now: float) -> None:
        fields["status"] = status_id
        if status(status_id).category == "done":
            fields["resolution"] = fields.get("resolution") or DEFAULT_RESOLUTION
            fields["resolutiondate"] = now
        else:
            fields["resolution"] = None
            fields["resolutiondate"] = None
