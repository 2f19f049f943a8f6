"""Label search of the Jira gateway: how the connector finds its issues again.

Cloud uses ``GET search/jql`` (token pages); Server/Data Center ``GET search`` (startAt pages). Both
are sent as explicit requests: ``jira.JIRA.search_issues`` would load ``/field`` first.
"""

from __future__ import annotations

from typing import Any

from connector.jira.client import MAX_PAGES, PAGE_SIZE, JiraClient

__all__ = ["SearchCalls"]


class SearchCalls(JiraClient):
    def find_issues_by_label(self, label: str, project: str | None) -> list[str]:
        """Keys of the issues with exactly this label, oldest first: in ``project``, or in every
        project the user can browse when ``project`` is None (an issue a person moved to another
        project keeps its labels but not its project).

        Jira's search index may lag a create by a few seconds: an empty answer right after a create
        does not prove there is no issue.
        """
        where = f"labels = {_jql_string(label)}"
        if project is not None:
            where = f"project = {_jql_string(project)} AND {where}"
        jql = f"{where} ORDER BY created ASC"
        if self._is_cloud():
            return self._search_cloud(jql)
        return self._search_server(jql)

    def newest_issue(self, project: str) -> str | None:
        """The key of the project's newest issue (one request), for checks that need an issue to look at."""
        jql = f"project = {_jql_string(project)} ORDER BY created DESC"
        params: dict[str, Any] = {"jql": jql, "fields": "key", "maxResults": 1}
        path = "search/jql" if self._is_cloud() else "search"
        keys = _issue_keys(self._json("newest_issue", "GET", path, dict, params=params))
        return keys[0] if keys else None

    def _search_cloud(self, jql: str) -> list[str]:
        keys: list[str] = []
        token: str | None = None
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"jql": jql, "fields": "key", "maxResults": PAGE_SIZE}
            if token:
                params["nextPageToken"] = token
            page = self._json("find_issues_by_label", "GET", "search/jql", dict, params=params)
            keys += _issue_keys(page)
            next_token = page.get("nextPageToken")
            if not next_token or page.get("isLast") or next_token == token:
                break
            token = str(next_token)
        return keys

    def _search_server(self, jql: str) -> list[str]:
        keys: list[str] = []
        for _ in range(MAX_PAGES):
            params = {"jql": jql, "fields": "key", "startAt": len(keys), "maxResults": PAGE_SIZE}
            page = self._json("find_issues_by_label", "GET", "search", dict, params=params)
            found = _issue_keys(page)
            keys += found
            if not found or len(keys) >= int(page.get("total") or 0):
                break
        return keys


def _jql_string(value: str) -> str:
    """A JQL string literal: double quotes, with backslash and quote escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _issue_keys(page: dict[str, Any]) -> list[str]:
    return [str(issue["key"]) for issue in page.get("issues") or [] if isinstance(issue, dict) and issue.get("key")]
