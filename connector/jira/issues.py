"""Issue operations of the Jira gateway: create, update, read back, transition, comments, remote links.

Each is one explicit request (or one per page), because several high-level ``jira.JIRA`` methods
send extra requests (``create_issue`` re-fetches the issue, ``add_remote_link`` lists application
links first) or bodies the spec does not describe (``transition_issue`` sends the transition id as a
number). ``get_issue`` brings the transitions and their screens along (one request; a second only
when the server ignored the expansion). A create is sent exactly once: an answer that does not name
the new issue is an unknown outcome, for the worker to resolve by searching.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from connector.http_api import json_or_none
from connector.jira.client import (
    MAX_PAGES,
    PAGE_SIZE,
    IssueState,
    JiraClient,
    JiraError,
    ScreenField,
    StatusRef,
    Transition,
    path_segment,
)

__all__ = ["COMMENT_PROPERTY", "IssueCalls", "PostedComment"]

COMMENT_PROPERTY = "nc-connector"


class PostedComment(NamedTuple):
    id: str
    body: str
    comment_key: str  # from our property; "" when the comment has none (or Jira sent no properties)


class IssueCalls(JiraClient):
    def create_issue(self, fields: dict[str, Any]) -> str:
        """POST issue, exactly once; returns the new key.

        A ``project`` or ``issuetype`` given as a plain string is sent as ``{"key": ...}`` /
        ``{"name": ...}`` so that creating stays a single request.
        """
        response = self._send("create_issue", "POST", "issue", body={"fields": _normalise_create(fields)})
        key = (json_or_none(response, dict) or {}).get("key")
        if not isinstance(key, str) or not key:
            # The create was accepted but we cannot tell which issue it made: treat as unknown outcome.
            raise JiraError("Jira accepted the create but its answer has no issue key",
                            status=response.status_code, retryable=True, outcome_unknown=True)
        return key

    def update_issue(self, key: str, fields: dict[str, Any]) -> None:
        self._send("update_issue", "PUT", f"issue/{path_segment(key)}", body={"fields": fields})

    def get_issue(self, key: str) -> IssueState:
        """Status and available transitions, with each transition's screen fields, in one request
        (``expand=transitions.fields``).

        Some servers ignore the expansion and answer without a ``transitions`` key: an absent key is
        not taken as "no transitions" but asked for again (``GET issue/{key}/transitions``). An empty
        list in the answer is Jira saying that no transition is available.
        """
        data = self._json("get_issue", "GET", f"issue/{path_segment(key)}", dict,
                          params={"fields": "status", "expand": "transitions.fields"})
        raw = data.get("transitions")
        if not isinstance(raw, list):
            raw = self._transitions(key)
        status = (data.get("fields") or {}).get("status")
        return IssueState(key=str(data.get("key") or key), status=_status_ref(status),
                          transitions=[_transition(t) for t in raw if isinstance(t, dict)])

    def _transitions(self, key: str) -> list[Any]:
        path = f"issue/{path_segment(key)}/transitions"
        data = self._json("get_transitions", "GET", path, dict, params={"expand": "transitions.fields"})
        raw = data.get("transitions")
        if not isinstance(raw, list):
            raise JiraError(f"unexpected answer to GET {path}: no transitions", status=200, retryable=True)
        return raw

    def issue_labels(self, key: str) -> list[str] | None:
        """The labels of issue `key`, None when Jira has no such issue (404). Reading an issue by key is
        consistent at once, unlike the search index."""
        try:
            data = self._json("issue_labels", "GET", f"issue/{path_segment(key)}", dict, params={"fields": "labels"})
        except JiraError as exc:
            if exc.status == 404:
                return None
            raise
        labels = (data.get("fields") or {}).get("labels")
        return [str(label) for label in labels] if isinstance(labels, list) else []

    def transition_issue(self, key: str, transition_id: str, fields: dict[str, Any] | None = None) -> None:
        """Run a transition; ``fields`` fill its screen (``{"resolution": {"name": "Fixed"}}``), in
        the shape an edit takes. None or {} sends no ``fields``."""
        # The spec types the transition id as a string (the jira client would send a number).
        body: dict[str, Any] = {"transition": {"id": str(transition_id)}}
        if fields:
            body["fields"] = fields
        self._send("transition_issue", "POST", f"issue/{path_segment(key)}/transitions", body=body)

    def add_comment(self, key: str, body: str, comment_key: str = "") -> str:
        """Add a plain-text (v2, wiki markup) comment; returns its id. With `comment_key`, the comment carries
        it as the property `nc-connector` (`{"commentKey": ...}`): how a post whose answer was lost is found
        again, whatever Jira did to the text (Cloud's v2 bodies round-trip through ADF)."""
        payload: dict[str, Any] = {"body": body}
        if comment_key:
            payload["properties"] = [{"key": COMMENT_PROPERTY, "value": {"commentKey": comment_key}}]
        data = self._json("add_comment", "POST", f"issue/{path_segment(key)}/comment", dict, body=payload)
        if not data.get("id"):
            raise JiraError("Jira accepted the comment but its answer has no comment id",
                            status=201, retryable=True, outcome_unknown=True)
        return str(data["id"])

    def comments(self, key: str) -> list[PostedComment]:
        """Every comment on the issue, oldest first (v2 bodies are plain strings), with our property if set."""
        found: list[PostedComment] = []
        for _ in range(MAX_PAGES):
            params = {"startAt": len(found), "maxResults": PAGE_SIZE, "orderBy": "created", "expand": "properties"}
            page = self._json("comments", "GET", f"issue/{path_segment(key)}/comment", dict, params=params)
            batch = [c for c in page.get("comments") or [] if isinstance(c, dict)]
            found += [PostedComment(str(c.get("id", "")), c["body"] if isinstance(c.get("body"), str)
                                    else str(c.get("body", "")), _comment_key(c)) for c in batch]
            if not batch or len(found) >= int(page.get("total") or 0):
                break
        return found

    def upsert_remote_link(self, key: str, link: dict[str, Any]) -> None:
        """Create or update (same ``globalId``) a remote link: ``{"globalId", "object": {"url", "title"}}``."""
        if not link.get("globalId"):
            # Without a globalId every call would add another link instead of updating the one.
            raise ValueError("a remote link needs a globalId so that posting it again updates it")
        obj = link.get("object") or {}
        if not (obj.get("url") and obj.get("title")):
            raise ValueError("a remote link needs object.url and object.title")
        self._send("upsert_remote_link", "POST", f"issue/{path_segment(key)}/remotelink", body=link)


def _status_ref(raw: Any) -> StatusRef:
    """A status (``fields.status`` or a transition's ``to``) as id, name and category key."""
    if not isinstance(raw, dict):
        return StatusRef(id="", name="", category="")
    category = raw.get("statusCategory")
    key = category.get("key") if isinstance(category, dict) else None
    return StatusRef(id=str(raw.get("id") or ""), name=str(raw.get("name") or ""), category=str(key or ""))


def _transition(raw: dict[str, Any]) -> Transition:
    screen = raw.get("fields")
    fields = tuple(_screen_field(str(ident), meta) for ident, meta in screen.items()
                   if isinstance(meta, dict)) if isinstance(screen, dict) else ()
    return Transition(id=str(raw.get("id", "")), name=str(raw.get("name", "")), to=_status_ref(raw.get("to")),
                      fields=fields)


def _screen_field(ident: str, meta: dict[str, Any]) -> ScreenField:
    values = meta.get("allowedValues")
    allowed = tuple(name for name in (_allowed_name(v) for v in values) if name) if isinstance(values, list) else ()
    return ScreenField(id=ident, name=str(meta.get("name") or ident), required=meta.get("required") is True,
                       has_default=meta.get("hasDefaultValue") is True, allowed=allowed)


def _allowed_name(value: Any) -> str:
    """An allowed value by its name, else its value (options), else its id."""
    if isinstance(value, dict):
        for part in ("name", "value", "id"):
            if value.get(part) not in (None, ""):
                return str(value[part])
        return ""
    return "" if value is None else str(value)


def _comment_key(comment: dict[str, Any]) -> str:
    """The commentKey of our property on a comment, "" when absent (an absent expansion is not "none")."""
    for prop in comment.get("properties") or []:
        if isinstance(prop, dict) and prop.get("key") == COMMENT_PROPERTY and isinstance(prop.get("value"), dict):
            return str(prop["value"].get("commentKey") or "")
    return ""


def _normalise_create(fields: dict[str, Any]) -> dict[str, Any]:
    result = dict(fields)
    if isinstance(result.get("project"), str):
        result["project"] = {"key": result["project"]}
    if isinstance(result.get("issuetype"), str):
        result["issuetype"] = {"name": result["issuetype"]}
    return result
