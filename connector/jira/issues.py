"""Issue operations of the Jira gateway: create, update, read back, transition, comments, remote links.

Each is one explicit request (or one per page), because several high-level ``jira.JIRA`` methods
send extra requests (``create_issue`` re-fetches the issue, ``add_remote_link`` lists application
links first) or bodies the spec does not describe (``transition_issue`` sends the transition id as a
number). A create is sent exactly once: an answer that does not name the new issue is an unknown
outcome, for the worker to resolve by searching.
"""

from __future__ import annotations

from typing import Any

from connector.http_api import json_or_none
from connector.jira.client import MAX_PAGES, PAGE_SIZE, IssueState, JiraClient, JiraError, Transition, path_segment

__all__ = ["IssueCalls"]


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
        """Status and available transitions in ONE request (``expand=transitions``), not two."""
        data = self._json("get_issue", "GET", f"issue/{path_segment(key)}", dict,
                          params={"fields": "status", "expand": "transitions"})
        status = ((data.get("fields") or {}).get("status") or {}).get("name", "")
        transitions = [Transition(id=str(t.get("id", "")), name=str(t.get("name", "")),
                                  to_status=str((t.get("to") or {}).get("name", "")))
                       for t in data.get("transitions") or [] if isinstance(t, dict)]
        return IssueState(key=str(data.get("key") or key), status=str(status), transitions=transitions)

    def transition_issue(self, key: str, transition_id: str) -> None:
        # The spec types the transition id as a string (the jira client would send a number).
        self._send("transition_issue", "POST", f"issue/{path_segment(key)}/transitions",
                   body={"transition": {"id": str(transition_id)}})

    def add_comment(self, key: str, body: str) -> str:
        """Add a plain-text (v2, wiki markup) comment; returns its id."""
        data = self._json("add_comment", "POST", f"issue/{path_segment(key)}/comment", dict, body={"body": body})
        if not data.get("id"):
            raise JiraError("Jira accepted the comment but its answer has no comment id",
                            status=201, retryable=True, outcome_unknown=True)
        return str(data["id"])

    def comments(self, key: str) -> list[tuple[str, str]]:
        """(id, body) of every comment on the issue, oldest first (v2 bodies are plain strings)."""
        found: list[tuple[str, str]] = []
        for _ in range(MAX_PAGES):
            params = {"startAt": len(found), "maxResults": PAGE_SIZE, "orderBy": "created"}
            page = self._json("comments", "GET", f"issue/{path_segment(key)}/comment", dict, params=params)
            batch = [c for c in page.get("comments") or [] if isinstance(c, dict)]
            found += [(str(c.get("id", "")), c["body"] if isinstance(c.get("body"), str) else str(c.get("body", "")))
                      for c in batch]
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


def _normalise_create(fields: dict[str, Any]) -> dict[str, Any]:
    result = dict(fields)
    if isinstance(result.get("project"), str):
        result["project"] = {"key": result["project"]}
    if isinstance(result.get("issuetype"), str):
        result["issuetype"] = {"name": result["issuetype"]}
    return result
