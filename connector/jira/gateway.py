"""The narrow Jira gateway: the few Jira calls the sync engine makes, over REST API v2.

``JiraGateway`` is the interface the sync logic depends on (tests use a fake). ``JiraClientGateway``
implements it with the ``jira`` library used as transport only, assembled from one part per concern:

- ``connector.jira.client``: the session, one request at a time, every failure as ``JiraError``
  (nothing is retried: the worker decides), and the workflow value types ``IssueState``,
  ``StatusRef``, ``Transition`` and ``ScreenField``;
- ``connector.jira.pressure``: Jira's rate-limit signals (``Pressure``), handed out by ``take_pressure()``;
- ``connector.jira.issues``: create, update, read back, transition, comments, remote links;
- ``connector.jira.search``: the label search (Cloud and Server/Data Center paging);
- ``connector.jira.project``: fields, users and the project checks.

The names the rest of the connector uses are importable from here.
"""

from __future__ import annotations

from typing import Any, Protocol

from connector.jira.client import MAX_PAGES, PAGE_SIZE, IssueState, JiraError, ScreenField, StatusRef, Transition
from connector.jira.field_shapes import FieldInfo
from connector.jira.issues import IssueCalls, PostedComment
from connector.jira.pressure import Pressure
from connector.jira.project import REQUIRED_PERMISSIONS, ProjectCalls
from connector.jira.search import SearchCalls
from connector.settings import ENV_PREFIX

__all__ = [
    "MAX_PAGES",
    "PAGE_SIZE",
    "REQUIRED_PERMISSIONS",
    "FieldInfo",
    "IssueState",
    "JiraClientGateway",
    "JiraError",
    "JiraGateway",
    "PostedComment",
    "Pressure",
    "ScreenField",
    "StatusRef",
    "Transition",
    "gateway_from_settings",
]


class JiraGateway(Protocol):
    """What the sync engine needs from Jira. Every method raises ``JiraError`` on failure.

    ``take_pressure`` returns (and forgets) the strongest rate-limit signal that the calling thread's
    calls have met since it last asked, or None. ``find_issues_by_label`` with ``project`` None
    searches every project. ``user_ref`` answers a user in the shape this deployment's user fields
    take (``{"accountId": ...}`` on Cloud, ``{"name": ...}`` on Server/Data Center), looking an
    e-mail up; None when no single active user has that e-mail.
    """

    def take_pressure(self) -> Pressure | None: ...

    def find_issues_by_label(self, label: str, project: str | None) -> list[str]: ...

    def create_issue(self, fields: dict[str, Any]) -> str: ...

    def update_issue(self, key: str, fields: dict[str, Any]) -> None: ...

    def get_issue(self, key: str) -> IssueState: ...

    def transition_issue(self, key: str, transition_id: str, fields: dict[str, Any] | None = None) -> None: ...

    def add_comment(self, key: str, body: str, comment_key: str = "") -> str: ...

    def comments(self, key: str) -> list[PostedComment]: ...

    def upsert_remote_link(self, key: str, link: dict[str, Any]) -> None: ...

    def fields(self) -> list[FieldInfo]: ...

    def user_ref(self, ref: str) -> dict[str, str] | None: ...

    def check_project(self, project: str, issue_type: str) -> list[str]: ...

    def permission_problems(self, project: str) -> list[str]: ...

    def newest_issue(self, project: str) -> str | None: ...

    def issue_labels(self, key: str) -> list[str] | None: ...


class JiraClientGateway(IssueCalls, SearchCalls, ProjectCalls):
    """``JiraGateway`` over ``jira.JIRA`` (REST v2), with client retries off and explicit timeouts.

    Building one sends nothing: the client is created with ``get_server_info=False`` and the
    deployment type (Cloud or Server/Data Center, which decides the search endpoint) is read from
    ``serverInfo`` on first need. Auth: ``email`` + ``api_token`` (Cloud, basic) or ``pat`` (Data
    Center, bearer).
    """


def gateway_from_settings(settings: Any) -> JiraClientGateway:
    """A gateway from validated settings; ValueError names the missing or conflicting setting."""
    url, email = settings.jira_url, settings.jira_email
    token, pat = settings.jira_api_token, settings.jira_pat
    if not url:
        raise ValueError(f"{ENV_PREFIX}JIRA_URL is not set")
    if token and pat:
        raise ValueError(f"set either {ENV_PREFIX}JIRA_API_TOKEN (Cloud) or {ENV_PREFIX}JIRA_PAT "
                         "(Data Center), not both")
    if token and not email:
        raise ValueError(f"{ENV_PREFIX}JIRA_EMAIL is required with {ENV_PREFIX}JIRA_API_TOKEN")
    if not token and not pat:
        raise ValueError(f"no Jira credentials: set {ENV_PREFIX}JIRA_EMAIL and {ENV_PREFIX}JIRA_API_TOKEN "
                         f"(Jira Cloud) or {ENV_PREFIX}JIRA_PAT (Data Center)")
    return JiraClientGateway(url, email=email or "", api_token=token, pat=pat, timeout=settings.jira_timeout)
