"""Comments and remote links on the store's issues: adding comments, and upserting (by globalId), reading
and deleting remote links.

Comment bodies are checked by `connector.sandbox.fields.comment_body` (shared with edit and transition
`update` operations); the store numbers comments, `RemoteLinks` numbers links.
"""

from __future__ import annotations

import copy
from typing import Any

from connector.sandbox.errors import JiraError, JsonDict
from connector.sandbox.fields import LINE_LIMIT, comment_body
from connector.sandbox.issues import Comment, Issue, IssueStore, RemoteLink


class Comments:
    """Comments added through the comment resource (edits and transitions add theirs via the store)."""

    def __init__(self, store: IssueStore) -> None:
        self.store = store

    def add(self, ref: str, body: Any, actor: str, visibility: Any = None,
            properties: Any = None) -> tuple[Issue, Comment]:
        store = self.store
        with store.lock:
            issue = store.find(ref)
            text = comment_body(body)
            if visibility is not None and not isinstance(visibility, dict):
                raise JiraError(400, [], {"visibility": "'visibility' must be an object."})
            props = entity_properties(properties)
            now = store.clock()
            comment = store.append_comment(issue, text, actor, visibility, now)
            comment.properties = props
            store.touch(issue, now)
            return copy.deepcopy(issue), copy.deepcopy(comment)


def entity_properties(raw: Any) -> list[JsonDict]:
    """Entity properties given on create (`[{"key": "...", "value": {...}}]`), checked as Jira checks them."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(p, dict) and isinstance(p.get("key"), str) and p["key"]
                                            and len(p["key"]) <= 255 and "value" in p for p in raw):
        raise JiraError(400, ["Each property needs a key (1 to 255 characters) and a value."])
    return [{"key": p["key"], "value": copy.deepcopy(p["value"])} for p in raw]


class RemoteLinks:
    """Remote links of the store's issues, numbered from 10001 (per sandbox, not per issue)."""

    def __init__(self, store: IssueStore) -> None:
        self.store = store
        self.reset()

    def reset(self) -> None:
        with self.store.lock:
            self._next_link = 10000

    def upsert(self, ref: str, payload: Any) -> tuple[Issue, RemoteLink, bool]:
        """Add a remote link, or update the one with the same globalId; True when it was added."""
        store = self.store
        with store.lock:
            issue = store.find(ref)
            global_id, obj, application, relationship = remote_link_parts(payload)
            link = next((lk for lk in issue.remote_links if global_id and lk.global_id == global_id), None)
            created = link is None
            if link is None:
                self._next_link += 1
                link = RemoteLink(self._next_link, global_id, obj, application, relationship)
                issue.remote_links.append(link)
            else:
                link.object, link.application, link.relationship = obj, application, relationship
            store.counters["remoteLinksCreated" if created else "remoteLinksUpdated"] += 1
            return copy.deepcopy(issue), copy.deepcopy(link), created

    def get(self, ref: str, link_id: str) -> tuple[Issue, RemoteLink]:
        with self.store.lock:
            issue = self.store.find(ref)
            link = next((lk for lk in issue.remote_links if str(lk.id) == link_id), None)
            if link is None:
                raise JiraError(404, [f"No remote link with id '{link_id}' exists on this issue."])
            return copy.deepcopy(issue), copy.deepcopy(link)

    def delete(self, ref: str, link_id: str) -> None:
        with self.store.lock:
            _, link = self.get(ref, link_id)
            live = self.store.find(ref)
            live.remote_links = [lk for lk in live.remote_links if lk.id != link.id]
            self.store.counters["remoteLinksDeleted"] += 1


def remote_link_parts(payload: Any) -> tuple[str | None, JsonDict, JsonDict, str | None]:
    """Validate a remote link request: (globalId, object, application, relationship)."""
    if not isinstance(payload, dict):
        raise JiraError(400, ["Can not deserialize the remote link: expected an object."])
    obj = payload.get("object")
    errors = {}
    if not isinstance(obj, dict):
        errors["object"] = "'object' is required."
    else:
        for key in ("url", "title"):
            if not isinstance(obj.get(key), str) or not obj[key]:
                errors[key] = f"'{key}' is required."
    global_id = payload.get("globalId")
    if global_id is not None and (not isinstance(global_id, str) or len(global_id) > LINE_LIMIT):
        errors["globalId"] = "globalId must be a string of at most 255 characters."
    application = payload.get("application") or {}
    if not isinstance(application, dict):
        errors["application"] = "'application' must be an object."
    relationship = payload.get("relationship")
    if errors:
        raise JiraError(400, [], errors)
    assert isinstance(obj, dict)
    return global_id, obj, application, relationship if isinstance(relationship, str) else None
