"""What the Jira gateway reads about the instance and the target project: fields, users, and the
checks that the project is usable (``check_project``: visible, issue type, permissions, create screen).
"""

from __future__ import annotations

from typing import Any

from connector.jira.client import JiraClient, JiraError, path_segment
from connector.jira.field_shapes import FieldInfo

__all__ = ["REQUIRED_PERMISSIONS", "ProjectCalls"]

# Permissions the connector needs in the target project (mypermissions keys, Cloud and Data Center).
REQUIRED_PERMISSIONS = ("BROWSE_PROJECTS", "CREATE_ISSUES", "EDIT_ISSUES", "TRANSITION_ISSUES",
                        "ADD_COMMENTS", "LINK_ISSUES")


class ProjectCalls(JiraClient):
    def fields(self) -> list[FieldInfo]:
        return [_field_info(raw) for raw in self._json("fields", "GET", "field", list)]

    def user_ref(self, ref: str) -> dict[str, str] | None:
        """A user as this deployment's user fields take one: ``{"accountId": ...}`` on Cloud,
        ``{"name": ...}`` (the user name) on Server/Data Center.

        An e-mail is looked up (``GET user/search``: ``query=`` on Cloud, ``username=`` on Server/DC);
        None when no single active user matches it. Anything else is taken as the id itself (an
        accountId, or a user name) and shaped without a look-up.
        """
        text = ref.strip()
        if not text:
            return None
        cloud = self._is_cloud()
        if "@" not in text:
            return {"accountId": text} if cloud else {"name": text}
        params = {"query": text} if cloud else {"username": text}
        users = [u for u in self._json("user_ref", "GET", "user/search", list, params=params)
                 if isinstance(u, dict) and u.get("active", True)]
        user = _pick_user(users, text)
        ident = user.get("accountId" if cloud else "name") if user is not None else None
        if not ident:
            return None
        return {"accountId": str(ident)} if cloud else {"name": str(ident)}

    def check_project(self, project: str, issue_type: str) -> list[str]:
        """Problems that would stop the connector in this project (empty when all is well).

        Checks that the project is visible, the issue type exists in it, the user holds the
        permissions the connector needs and that ``labels`` (how issues are found again) is on the
        create screen. Failures to ask are reported as problems too.
        """
        try:
            data = self._json("check_project", "GET", f"project/{path_segment(project)}", dict)
        except JiraError as exc:
            if exc.status == 404:
                return [f"project {project!r} does not exist or the Jira user cannot browse it"]
            return [f"cannot read project {project!r}: {exc}"]
        problems: list[str] = []
        type_id = _issue_type_id(data, issue_type)
        if type_id is None:
            names = ", ".join(sorted(str(t.get("name")) for t in data.get("issueTypes") or []))
            problems.append(f"issue type {issue_type!r} is not available in project {project!r} "
                            f"(available: {names or 'none'})")
        problems += self._permission_problems(project)
        if type_id is not None:
            problems += self._create_screen_problems(project, issue_type, type_id)
        return problems

    def _permission_problems(self, project: str) -> list[str]:
        try:
            return self.permission_problems(project)
        except JiraError as exc:
            return [f"cannot read the Jira user's permissions in {project!r}: {exc}"]

    def permission_problems(self, project: str) -> list[str]:
        """The permissions the connector needs in `project` that its Jira user lacks (one request)."""
        params = {"projectKey": project, "permissions": ",".join(REQUIRED_PERMISSIONS)}
        data = self._json("check_project", "GET", "mypermissions", dict, params=params)
        held = data.get("permissions") or {}
        return [f"the Jira user lacks the {name} permission in project {project!r}"
                for name in REQUIRED_PERMISSIONS if not (held.get(name) or {}).get("havePermission")]

    def _create_screen_problems(self, project: str, issue_type: str, type_id: str) -> list[str]:
        path = f"issue/createmeta/{path_segment(project)}/issuetypes/{path_segment(type_id)}"
        try:
            data = self._json("check_project", "GET", path, dict, params={"maxResults": 200})
        except JiraError as exc:
            return [f"cannot read the create screen of {project}/{issue_type}: {exc}"]
        # Cloud names the list "fields", Data Center (8.4+) "values".
        ids = {str(f.get("fieldId")) for f in data.get("fields") or data.get("values") or []}
        if "labels" not in ids:
            return [f"the labels field is not on the create screen of {project}/{issue_type}: "
                    "the connector finds its issues again by label"]
        return []


def _field_info(raw: dict[str, Any]) -> FieldInfo:
    schema = raw.get("schema") or {}
    items = schema.get("items")
    return FieldInfo(id=str(raw.get("id", "")), name=str(raw.get("name", "")),
                     schema_type=str(schema.get("type", "")), items=str(items) if items else None)


def _pick_user(users: list[dict[str, Any]], email: str) -> dict[str, Any] | None:
    """The one user whose e-mail matches exactly (case-blind). Cloud often hides e-mails: then the
    only result counts, provided it shows no other e-mail (a search also matches names)."""
    exact = [u for u in users if str(u.get("emailAddress") or "").casefold() == email.casefold()]
    if len(exact) == 1:
        return exact[0]
    if not exact and len(users) == 1 and not users[0].get("emailAddress"):
        return users[0]
    return None


def _issue_type_id(project: dict[str, Any], issue_type: str) -> str | None:
    """The id of the project's issue type of this name; an exact match wins over a case-blind one."""
    types = {str(t.get("name", "")): str(t.get("id")) for t in project.get("issueTypes") or []
             if isinstance(t, dict)}
    if issue_type in types:
        return types[issue_type]
    blind = [ident for name, ident in types.items() if name.casefold() == issue_type.casefold()]
    return blind[0] if len(blind) == 1 else None
